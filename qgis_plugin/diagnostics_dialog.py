"""LandFuse ▸ Diagnostics: runs `python -m backend diagnostics` in a task, shows it, copies it."""

from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
)

from . import backend_env
from .diagnostics import format_report
from .errors import NO_BACKEND, BackendError
from .runner import BackendCall, BackendTask


class DiagnosticsDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("LandFuse diagnostics")
        self.resize(640, 480)
        layout = QVBoxLayout(self)
        self.status = QLabel("Asking the backend…")
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.copy_button = QPushButton("Copy to clipboard")
        self.rerun_button = QPushButton("Run again")
        buttons.addButton(self.copy_button, QDialogButtonBox.ActionRole)
        buttons.addButton(self.rerun_button, QDialogButtonBox.ActionRole)
        buttons.rejected.connect(self.reject)
        self.copy_button.clicked.connect(self.copy)
        self.rerun_button.clicked.connect(self.start)
        layout.addWidget(self.status)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.task = None

    def start(self):
        python, source = backend_env.find_backend_python()
        self.python, self.source = python, source
        if not python:
            self.show_error(BackendError(NO_BACKEND, "No backend Python was found."))
            return None
        self.rerun_button.setEnabled(False)
        self.status.setText(f"Running diagnostics with {python} …")
        self.task = BackendTask("LandFuse diagnostics", BackendCall(python, "diagnostics"), self._done)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def _done(self, task):
        self.rerun_button.setEnabled(True)
        if task.error is not None:
            self.show_error(task.error)
            return
        self.status.setText("Backend diagnostics")
        self.text.setPlainText(format_report(task.result, self.python, self.source))

    def show_error(self, error):
        self.status.setText(error.title)
        self.text.setPlainText(format_report(None, getattr(self, "python", None), getattr(self, "source", None))
                               + "\n\nERROR: " + error.user_message())

    def copy(self):
        QApplication.clipboard().setText(self.text.toPlainText())
