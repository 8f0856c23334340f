"""LandFuse ▸ Backend environment: choose an existing backend Python, or create a venv in the
QGIS profile folder (CPU or CUDA torch, chosen from the machine) with progress and a log."""

import os

from qgis.core import QgsApplication
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
)

from . import backend_env


class EnvSetupDialog(QDialog):
    finishedSetup = pyqtSignal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("LandFuse backend environment")
        self.resize(680, 520)
        self.task = None
        layout = QVBoxLayout(self)
        python, source = backend_env.find_backend_python()
        state = backend_env.env_state(python) if python else "missing"
        self.current = QLabel(f"Current backend Python: {python or 'none'} ({source}; {state})")
        self.current.setWordWrap(True)
        layout.addWidget(self.current)

        form = QFormLayout()
        self.python_widget = QgsFileWidget()
        self.python_widget.setStorageMode(QgsFileWidget.GetFile)
        self.python_widget.setFilePath(backend_env.configured_python())
        use_button = QPushButton("Use this Python")
        row = QHBoxLayout()
        row.addWidget(self.python_widget, 1)
        row.addWidget(use_button)
        form.addRow("Existing backend Python", row)

        self.target = backend_env.profile_venv_dir()
        form.addRow("New environment in", QLabel(self.target))
        self.base_combo = QComboBox()
        self.base_combo.setEditable(True)
        self.base_combo.addItems(backend_env.base_python_candidates())
        form.addRow("Create it with", self.base_combo)
        has_cuda = backend_env.detect_cuda()
        self.cpu_radio = QRadioButton("CPU")
        self.cuda_radio = QRadioButton("CUDA (NVIDIA GPU detected)" if has_cuda else "CUDA (no NVIDIA GPU detected)")
        (self.cuda_radio if has_cuda else self.cpu_radio).setChecked(True)
        variant_row = QHBoxLayout()
        variant_row.addWidget(self.cpu_radio)
        variant_row.addWidget(self.cuda_radio)
        form.addRow("PyTorch build", variant_row)
        layout.addLayout(form)

        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        layout.addWidget(self.progress)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        layout.addWidget(self.log, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.create_button = QPushButton("Create environment")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons.addButton(self.create_button, QDialogButtonBox.ActionRole)
        buttons.addButton(self.cancel_button, QDialogButtonBox.ActionRole)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

        use_button.clicked.connect(self.use_existing)
        self.create_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)

    def variant(self):
        return backend_env.CUDA if self.cuda_radio.isChecked() else backend_env.CPU

    def use_existing(self):
        path = self.python_widget.filePath().strip()
        if path and not (os.path.isfile(path) and os.access(path, os.X_OK)):
            self.log.appendPlainText(f"Not an executable file: {path}")
            return
        backend_env.set_configured_python(path)
        self.log.appendPlainText(f"Backend Python set to {path or '(automatic)'}")
        self.finishedSetup.emit(True)

    def plan(self):
        return backend_env.install_plan(self.base_combo.currentText().strip(), self.target, variant=self.variant())

    def start(self):
        base = self.base_combo.currentText().strip()
        if not base:
            self.log.appendPlainText("No Python found to create the environment with: enter its path.")
            return None
        os.makedirs(os.path.dirname(self.target), exist_ok=True)
        self.task = backend_env.EnvInstallTask(self.plan(), self.target, variant=self.variant(), on_finished=self._done)
        self.task.line.connect(self.log.appendPlainText)
        self.task.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        self.create_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def cancel(self):
        if self.task is not None:
            self.task.cancel()

    def _done(self, task, ok):
        self.task = None
        self.create_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.log.appendPlainText(task.message)
        if ok:
            backend_env.set_configured_python(backend_env.venv_python(self.target))
            self.current.setText(f"Current backend Python: {backend_env.venv_python(self.target)} (current)")
        self.finishedSetup.emit(ok)
