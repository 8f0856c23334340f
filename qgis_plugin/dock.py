"""The LandFuse dock: choose layers and a model, preflight, run the backend in a QgsTask, add
the styled result. The widgets only read/write a `DockSettings`; all logic works on that, and the
backend argv comes from the `ClassifyParams` it resolves to (the same job class Processing uses)."""

import os
from typing import Optional

from qgis.core import Qgis, QgsApplication, QgsMapLayerProxyModel, QgsProject
from qgis.gui import QgsDockWidget, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from . import backend_env
from .backend_api import LandFuseError, read_manifest, summarize
from .dock_settings import DockSettings
from .errors import NO_BACKEND, PREFLIGHT, BackendError
from .models import hub, list_models, load_entry, register_model_folder
from .params import DEVICES
from .preflight import Preflight, check_inputs, check_output_file
from .runner import BackendCall, BackendTask
from .styling import add_result_layers


class LandFuseDock(QgsDockWidget):
    jobFinished = pyqtSignal(object)   # the BackendTask, after layers were added

    def __init__(self, iface=None, parent=None):
        super().__init__("LandFuse", parent)
        self.setObjectName("LandFuseDock")
        self.iface = iface
        self.task = None
        self.result_layers = (None, None)
        self._build()
        self.refresh_models()
        hub.modelsChanged.connect(self.refresh_models)
        QgsProject.instance().readProject.connect(self._project_read)
        self.set_params(DockSettings.load())
        self._update_backend_status()

    # --- widgets -------------------------------------------------------------------------
    def _build(self):
        body = QWidget()
        layout = QVBoxLayout(body)
        form = QFormLayout()
        self.hsi_combo = QgsMapLayerComboBox()
        self.hsi_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.hsi_combo.setAllowEmptyLayer(True)
        form.addRow("Hyperspectral", self.hsi_combo)

        aux_box = QWidget()
        aux_layout = QVBoxLayout(aux_box)
        aux_layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.aux_combo = QgsMapLayerComboBox()
        self.aux_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.aux_add = QPushButton("Add")
        self.aux_remove = QPushButton("Remove")
        row.addWidget(self.aux_combo, 1)
        row.addWidget(self.aux_add)
        row.addWidget(self.aux_remove)
        self.aux_list = QListWidget()
        self.aux_list.setMaximumHeight(70)
        aux_layout.addLayout(row)
        aux_layout.addWidget(self.aux_list)
        form.addRow("Auxiliary", aux_box)

        model_row = QHBoxLayout()
        self.model_combo = QComboBox()
        self.model_browse = QPushButton("Browse…")
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.model_browse)
        form.addRow("Model", model_row)
        self.model_info = QLabel()
        self.model_info.setWordWrap(True)
        self.model_info.setTextInteractionFlags(Qt.TextSelectableByMouse)
        form.addRow("", self.model_info)

        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICES))
        form.addRow("Device", self.device_combo)
        self.output_widget = QgsFileWidget()
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter("GeoTIFF (*.tif *.tiff)")
        self.output_widget.lineEdit().setPlaceholderText("[temporary file]")
        form.addRow("Output", self.output_widget)
        self.confidence_check = QCheckBox("Also write a confidence raster")
        form.addRow("", self.confidence_check)
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(16, 4096)
        self.tile_spin.setSingleStep(64)
        form.addRow("Tile size", self.tile_spin)
        layout.addLayout(form)

        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.stage_label = QLabel("")
        layout.addWidget(self.progress)
        layout.addWidget(self.stage_label)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        layout.addWidget(self.log_view, 1)

        backend_row = QHBoxLayout()
        self.backend_label = QLabel()
        self.backend_label.setWordWrap(True)
        self.setup_button = QPushButton("Set up…")
        backend_row.addWidget(self.backend_label, 1)
        backend_row.addWidget(self.setup_button)
        group = QGroupBox("Backend")
        group.setLayout(backend_row)
        layout.addWidget(group)
        self.setWidget(body)

        self.aux_add.clicked.connect(self._add_aux)
        self.aux_remove.clicked.connect(self._remove_aux)
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.model_browse.clicked.connect(self._browse_model)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.setup_button.clicked.connect(self._open_setup)

    # --- params <-> widgets ----------------------------------------------------------------
    def params(self) -> DockSettings:
        hsi = self.hsi_combo.currentLayer()
        return DockSettings(
            hsi_layer_id=hsi.id() if hsi is not None else "",
            aux_layer_ids=[self.aux_list.item(i).data(Qt.UserRole) for i in range(self.aux_list.count())],
            model_dir=self.model_combo.currentData() or "",
            device=self.device_combo.currentText(),
            output_path=self.output_widget.filePath().strip(),
            confidence=self.confidence_check.isChecked(),
            tile_size=self.tile_spin.value())

    def set_params(self, params: DockSettings) -> None:
        project = QgsProject.instance()
        hsi = project.mapLayer(params.hsi_layer_id) if params.hsi_layer_id else None
        self.hsi_combo.setLayer(hsi)
        self.aux_list.clear()
        for layer_id in params.aux_layer_ids:
            layer = project.mapLayer(layer_id)
            if layer is not None:
                self._append_aux(layer)
        if params.model_dir:
            self.select_model(params.model_dir)
        self.device_combo.setCurrentText(params.device)
        self.output_widget.setFilePath(params.output_path)
        self.confidence_check.setChecked(bool(params.confidence))
        self.tile_spin.setValue(int(params.tile_size))

    def _project_read(self, *args):
        self.set_params(DockSettings.load())

    def _append_aux(self, layer):
        item = QListWidgetItem(f"{layer.name()}  ({layer.bandCount()} bands)")
        item.setData(Qt.UserRole, layer.id())
        self.aux_list.addItem(item)

    def _add_aux(self):
        layer = self.aux_combo.currentLayer()
        if layer is not None:
            self._append_aux(layer)

    def add_aux_layer(self, layer):
        self._append_aux(layer)

    def _remove_aux(self):
        for item in self.aux_list.selectedItems() or [self.aux_list.item(self.aux_list.count() - 1)]:
            if item is not None:
                self.aux_list.takeItem(self.aux_list.row(item))

    # --- models --------------------------------------------------------------------------------
    def refresh_models(self):
        current = self.model_combo.currentData()
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for entry in list_models():
            self.model_combo.addItem(entry.label, entry.path)
        self.model_combo.blockSignals(False)
        if current:
            self.select_model(current)
        self._model_changed()

    def select_model(self, path):
        path = os.path.abspath(path)
        index = self.model_combo.findData(path)
        if index < 0:
            entry = load_entry(path)
            self.model_combo.addItem(entry.label, path)
            index = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(index)
        self._model_changed()

    def _browse_model(self):
        folder = QFileDialog.getExistingDirectory(self, "LandFuse model package folder")
        if folder:
            entry = load_entry(folder)
            if entry.ok:
                register_model_folder(folder)
            self.select_model(folder)

    def _model_changed(self, *args):
        path = self.model_combo.currentData()
        self.model_info.setText(load_entry(path).describe() if path else "No model: train one, or browse to a package.")

    def _update_backend_status(self):
        python, source = backend_env.find_backend_python()
        if python:
            state = backend_env.env_state(python)
            note = {"stale": " — out of date: set it up again", "incomplete": " — incomplete: set it up again"}.get(state, "")
            self.backend_label.setText(f"{python}\n({source}){note}")
        else:
            self.backend_label.setText("No backend environment yet.")
        return python

    def _open_setup(self):
        from .env_dialog import EnvSetupDialog
        dialog = EnvSetupDialog(self)
        dialog.finishedSetup.connect(lambda *a: self._update_backend_status())
        dialog.show()

    # --- running ---------------------------------------------------------------------------------
    def preflight(self, params: DockSettings) -> Preflight:
        result = Preflight()
        summary = None
        if not params.model_dir:
            result.error("Choose a model.")
        else:
            try:
                summary = summarize(read_manifest(params.model_dir))
            except LandFuseError as exc:
                result.error(f"Model: {exc.message}")
        hsi, aux = params.layers()
        check_inputs(result, hsi, aux, summary)
        check_output_file(result, params.output_path)
        return result

    def log(self, text):
        self.log_view.appendPlainText(text)

    def message(self, title, text, level=Qgis.Info, details=""):
        if self.iface is not None:
            if details:
                self.iface.messageBar().pushMessage(title, text, details, level, 0 if level == Qgis.Critical else 8)
            else:
                self.iface.messageBar().pushMessage(title, text, level, 8)

    def run(self) -> Optional[BackendTask]:
        """Preflight, then start the job; returns the task, or None when refused."""
        if self.task is not None:
            return None
        params = self.params()
        params.save()
        python = self._update_backend_status()
        if not python:
            error = BackendError(NO_BACKEND, "No backend Python was found.")
            self.log(error.user_message())
            self.message(error.title, error.message + " " + error.hint, Qgis.Warning)
            return None
        check = self.preflight(params)
        for warning in check.warnings:
            self.log(f"Warning: {warning}")
        if not check.ok:
            text = "\n".join(check.errors)
            self.log("Not started:\n" + text)
            self.message(BackendError(PREFLIGHT, "").title, text, Qgis.Warning)
            return None
        job = params.classify_params()
        call = BackendCall(python, job.command, job.backend_args())
        self.task = BackendTask("LandFuse: classify", call, self._finished)
        self.task.backendEvent.connect(self._on_event)
        self.progress.setValue(0)
        self.stage_label.setText("starting…")
        self.log(f"Classifying into {job.out}")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def cancel(self):
        if self.task is not None:
            self.stage_label.setText("cancelling…")
            self.task.cancel()

    def _on_event(self, event):
        kind = event["type"]
        if kind == "progress":
            total = event.get("total") or 0
            if total > 0:
                self.progress.setValue(int(round(100.0 * event.get("done", 0) / total)))
            self.stage_label.setText(f"{event.get('stage', '')}: {event.get('done', 0)}/{total}")
        elif kind == "log":
            self.log(f"[{event.get('level', 'info')}] {event.get('message', '')}")

    def _finished(self, task):
        self.task = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if task.error is not None:
            error = task.error
            self.stage_label.setText(error.title)
            self.log(error.user_message())
            level = Qgis.Info if error.cancelled else Qgis.Critical
            self.message(error.title, error.message + (f" — {error.hint}" if error.hint else ""), level, error.log_tail)
            self.jobFinished.emit(task)
            return
        outputs = task.result.get("outputs") or {}
        table = task.result.get("class_table") or []
        try:
            self.result_layers = add_result_layers(outputs["classes"], table, outputs.get("confidence"))
        except (KeyError, RuntimeError) as exc:
            self.log(f"Could not add the result: {exc}")
            self.message("LandFuse", f"Could not add the result: {exc}", Qgis.Critical)
            self.jobFinished.emit(task)
            return
        self.progress.setValue(100)
        elapsed = f" in {task.elapsed_s:.1f} s" if task.elapsed_s else ""
        self.stage_label.setText(f"done{elapsed}")
        self.log(f"Done{elapsed}: {outputs['classes']}")
        self.message("LandFuse", f"Land-cover map added ({len(table)} classes){elapsed}.", Qgis.Success)
        self.jobFinished.emit(task)

    def teardown(self):
        """Disconnect from project/hub signals; cancel a running job (plugin unload)."""
        if self.task is not None:
            self.task.on_finished = None
            try:
                self.task.backendEvent.disconnect(self._on_event)
            except (TypeError, RuntimeError):
                pass
            self.task.cancel()
            self.task = None
        for signal, slot in ((hub.modelsChanged, self.refresh_models),
                             (QgsProject.instance().readProject, self._project_read)):
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
