"""The LandFuse dock: classify a scene, train a model from a labels layer, or fine-tune one; each
runs the backend in a QgsTask with live progress and Cancel, and ends in a result panel.

The widgets only read/write a `DockSettings`; all logic works on that, and the backend argv comes
from the job dataclass it resolves to (`ClassifyParams`, `TrainParams`, `FinetuneParams`,
`EvaluateParams`: the same classes Processing uses)."""

import os
from typing import Optional

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsMapLayerProxyModel,
    QgsMapLayerType,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.gui import QgsDockWidget, QgsFieldComboBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QIcon, QPixmap
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from . import backend_env
from . import outputs as naming
from .areas import area_lines, class_areas
from .backend_api import LandFuseError, read_manifest, summarize
from .dock_settings import TASKS, DockSettings
from .errors import NO_BACKEND, PREFLIGHT, BackendError
from .estimate import describe_estimate
from .labels import class_field_of, export_labels
from .models import default_model_dir, hub, list_models, load_entry, register_model_folder
from .params import ARCHITECTURES, DEVICES, MAX_MIN_CONFIDENCE, TILE_SIZE_HELP, EvaluateParams
from .preflight import (
    Preflight,
    check_inputs,
    check_labels,
    check_not_an_input,
    check_output_file,
    check_output_folder,
    model_problems,
    raster_path,
    vector_path,
)
from .runner import BackendCall, BackendTask
from .spectral import DISPLAYS, display_bands, raster_wavelengths
from .styling import add_result_layers, apply_spectral_renderer, has_default_renderer

TASK_LABELS = {"classify": "Classify a scene", "train": "Train a new model from labels",
               "finetune": "Fine-tune the chosen model on labels"}
UNFIT = " — cannot take these layers"
DISPLAY_AS_LOADED = "as QGIS draws it"


class LandFuseDock(QgsDockWidget):
    jobFinished = pyqtSignal(object)   # the last BackendTask of a run, after its results were added

    def __init__(self, iface=None, parent=None):
        super().__init__("LandFuse", parent)
        self.setObjectName("LandFuseDock")
        self.iface = iface
        self.task = None
        self.result_layers = (None, None)
        self.result_rows = []          # the area table of the last classification
        self.accuracy = None           # the evaluate result of the last classification, if assessed
        self._run_folder = None
        self._pending = None           # what the running task's result leads to
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
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.WrapLongRows)     # a narrow dock puts labels above their fields
        self.form = form
        self.task_combo = QComboBox()
        for task in TASKS:
            self.task_combo.addItem(TASK_LABELS[task], task)
        form.addRow("Task", self.task_combo)

        self.hsi_combo = QgsMapLayerComboBox()
        self.hsi_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.hsi_combo.setAllowEmptyLayer(True)
        form.addRow("Hyperspectral", self.hsi_combo)
        self.wavelength_widget = QgsFileWidget()
        self.wavelength_widget.setStorageMode(QgsFileWidget.GetFile)
        self.wavelength_widget.setFilter("Wavelength lists (*.txt *.csv);;All files (*)")
        self.wavelength_widget.lineEdit().setPlaceholderText("[from the raster's metadata]")
        self.wavelength_widget.setToolTip("Band centres of the hyperspectral layer: a text file with one value (nm) "
                                          "a line, or a comma-separated list. Needed by the generic model when the "
                                          "raster's metadata does not give them.")
        form.addRow("Wavelengths", self.wavelength_widget)
        self.display_combo = QComboBox()
        self.display_combo.addItems([DISPLAY_AS_LOADED] + list(DISPLAYS))
        self.display_combo.setCurrentText("true colour")
        self.display_combo.setToolTip("How the hyperspectral layer is drawn, from its band wavelengths")
        form.addRow("Display", self.display_combo)

        aux_box = QWidget()
        aux_layout = QVBoxLayout(aux_box)
        aux_layout.setContentsMargins(0, 0, 0, 0)
        self.aux_combo = QgsMapLayerComboBox()     # a row of its own: beside buttons it shrank to "…"
        self.aux_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        aux_layout.addWidget(self.aux_combo)
        row = QHBoxLayout()
        self.aux_add = QPushButton("Add")
        self.aux_remove = QPushButton("Remove")
        row.addWidget(self.aux_add)
        row.addWidget(self.aux_remove)
        row.addStretch(1)
        aux_layout.addLayout(row)
        self.aux_list = QListWidget()
        self.aux_list.setMaximumHeight(56)
        aux_layout.addWidget(self.aux_list)
        form.addRow("Auxiliary", aux_box)

        self.labels_box = QWidget()
        labels_row = QHBoxLayout(self.labels_box)
        labels_row.setContentsMargins(0, 0, 0, 0)
        self.labels_combo = QgsMapLayerComboBox()
        self.labels_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer | QgsMapLayerProxyModel.PointLayer
                                     | QgsMapLayerProxyModel.RasterLayer)
        self.labels_combo.setAllowEmptyLayer(True)
        self.labels_new = QPushButton("New…")
        self.labels_new.setToolTip("A new polygon layer, styled with the model's classes or yours, to draw labels in")
        labels_row.addWidget(self.labels_combo, 1)
        labels_row.addWidget(self.labels_new)
        form.addRow("Labels", self.labels_box)
        self.class_field_combo = QgsFieldComboBox()
        self.class_field_combo.setAllowEmptyFieldName(True)
        self.class_field_combo.setToolTip("Empty: the field of the layer's categorized style")
        form.addRow("Class field", self.class_field_combo)

        self.model_box = QWidget()
        model_row = QHBoxLayout(self.model_box)
        model_row.setContentsMargins(0, 0, 0, 0)
        self.model_combo = QComboBox()
        self.model_browse = QPushButton("Browse…")
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.model_browse)
        form.addRow("Model", self.model_box)
        self.model_info = QLabel()
        self.model_info.setWordWrap(True)
        self.model_info.setMinimumWidth(60)
        self.model_info.setTextInteractionFlags(Qt.TextSelectableByMouse)
        form.addRow(self.model_info)
        self.arch_combo = QComboBox()
        self.arch_combo.addItems(list(ARCHITECTURES))
        form.addRow("Architecture", self.arch_combo)
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(0, 1000)
        self.epochs_spin.setSpecialValueText("backend default")
        form.addRow("Epochs", self.epochs_spin)

        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICES))
        form.addRow("Device", self.device_combo)
        self.reference_combo = QgsMapLayerComboBox()
        self.reference_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer | QgsMapLayerProxyModel.PointLayer
                                        | QgsMapLayerProxyModel.RasterLayer)
        self.reference_combo.setAllowEmptyLayer(True)
        self.reference_combo.setToolTip("Optional: a reference raster or labelled polygons/points; the map is then "
                                        "assessed against it (overall accuracy, kappa, HTML report)")
        form.addRow("Reference", self.reference_combo)
        self.folder_widget = QgsFileWidget()
        self.folder_widget.setStorageMode(QgsFileWidget.GetDirectory)
        self.folder_widget.setToolTip("Where results go when no file is given below; remembered across projects")
        form.addRow("Output folder", self.folder_widget)
        self.output_widget = QgsFileWidget()
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter("GeoTIFF (*.tif *.tiff)")
        self.output_widget.setConfirmOverwrite(True)
        form.addRow("Output", self.output_widget)
        self.model_out_widget = QgsFileWidget()
        self.model_out_widget.setStorageMode(QgsFileWidget.GetDirectory)
        form.addRow("Model folder", self.model_out_widget)
        self.confidence_check = QCheckBox("Also write a confidence raster")
        self.confidence_check.setToolTip("<output>_confidence.tif: the probability of each pixel's class (0–1)")
        form.addRow(self.confidence_check)
        self.min_confidence_spin = QDoubleSpinBox()
        self.min_confidence_spin.setRange(0.0, MAX_MIN_CONFIDENCE)
        self.min_confidence_spin.setDecimals(2)
        self.min_confidence_spin.setSingleStep(0.05)
        self.min_confidence_spin.setSpecialValueText("off")
        self.min_confidence_spin.setToolTip("Pixels whose calibrated confidence is below this are left "
                                            "“unclassified” (value 255, their own legend entry) instead of taking "
                                            "their most likely class. Off: every valid pixel gets a class.")
        form.addRow("Min. confidence", self.min_confidence_spin)
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(16, 4096)
        self.tile_spin.setSingleStep(64)
        self.tile_spin.setToolTip(TILE_SIZE_HELP)
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

        self.result_group = QGroupBox("Result")
        result_layout = QVBoxLayout(self.result_group)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.result_label.setMinimumWidth(60)
        self.result_label.setTextInteractionFlags(Qt.TextBrowserInteraction)
        self.result_label.setOpenExternalLinks(True)
        self.area_table = QTableWidget(0, 3)
        self.area_table.setHorizontalHeaderLabels(["Class", "ha", "%"])
        self.area_table.verticalHeader().setVisible(False)
        self.area_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        for column in (1, 2):
            self.area_table.horizontalHeader().setSectionResizeMode(column, QHeaderView.ResizeToContents)
        self.area_table.setEditTriggers(QTableWidget.NoEditTriggers)
        result_layout.addWidget(self.result_label)
        result_layout.addWidget(self.area_table)
        self.result_group.setVisible(False)
        layout.addWidget(self.result_group)

        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        self.log_view.setMinimumHeight(80)
        layout.addWidget(self.log_view, 1)

        backend_row = QHBoxLayout()
        self.backend_label = QLabel()
        self.backend_label.setWordWrap(True)
        # long paths must not widen the dock: a small minimum, and the text wraps
        self.backend_label.setMinimumWidth(60)
        self.setup_button = QPushButton("Set up…")
        backend_row.addWidget(self.backend_label, 1)
        backend_row.addWidget(self.setup_button)
        group = QGroupBox("Backend")
        group.setLayout(backend_row)
        layout.addWidget(group)
        # Combos size to a short minimum, not to their longest entry: the dock stays narrow.
        for combo in body.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(6)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        self.setWidget(scroll)

        self.task_combo.currentIndexChanged.connect(self._task_changed)
        self.hsi_combo.layerChanged.connect(self._hsi_changed)
        self.wavelength_widget.fileChanged.connect(self._layers_changed)
        self.display_combo.currentIndexChanged.connect(lambda *a: self.apply_display(force=True))
        self.aux_add.clicked.connect(self._add_aux)
        self.aux_remove.clicked.connect(self._remove_aux)
        self.labels_combo.layerChanged.connect(self._labels_changed)
        self.labels_new.clicked.connect(self.new_label_layer)
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.model_browse.clicked.connect(self._browse_model)
        self.arch_combo.currentIndexChanged.connect(self._update_placeholders)
        self.folder_widget.fileChanged.connect(self._folder_changed)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.setup_button.clicked.connect(self._open_setup)
        self._task_changed()

    def _set_row_visible(self, widget, visible):
        label = self.form.labelForField(widget)
        if label is not None:
            label.setVisible(visible)
        widget.setVisible(visible)

    def _task_changed(self, *args):
        task = self.task_combo.currentData() or "classify"
        classify, train = task == "classify", task == "train"
        for widget, visible in ((self.reference_combo, classify), (self.output_widget, classify),
                                (self.confidence_check, classify), (self.tile_spin, classify),
                                (self.min_confidence_spin, classify),
                                (self.model_out_widget, not classify), (self.epochs_spin, not classify),
                                (self.arch_combo, train), (self.model_info, not train),
                                (self.labels_box, not classify), (self.class_field_combo, not classify),
                                (self.model_box, not train)):
            self._set_row_visible(widget, visible)
        self.run_button.setText({"classify": "Classify", "train": "Train", "finetune": "Fine-tune"}[task])
        self._update_placeholders()

    # --- params <-> widgets ----------------------------------------------------------------
    def params(self) -> DockSettings:
        hsi = self.hsi_combo.currentLayer()
        labels = self.labels_combo.currentLayer()
        reference = self.reference_combo.currentLayer()
        return DockSettings(
            hsi_layer_id=hsi.id() if hsi is not None else "",
            aux_layer_ids=[self.aux_list.item(i).data(Qt.UserRole) for i in range(self.aux_list.count())],
            model_dir=self.model_combo.currentData() or "",
            device=self.device_combo.currentText(),
            output_path=self.output_widget.filePath().strip(),
            confidence=self.confidence_check.isChecked(),
            tile_size=self.tile_spin.value(),
            task=self.task_combo.currentData() or "classify",
            wavelengths=self.wavelength_widget.filePath().strip(),
            reference_layer_id=reference.id() if reference is not None else "",
            labels_layer_id=labels.id() if labels is not None else "",
            class_field=self.class_field_combo.currentField() or "",
            arch=self.arch_combo.currentText(),
            epochs=self.epochs_spin.value(),
            model_out=self.model_out_widget.filePath().strip(),
            min_confidence=round(self.min_confidence_spin.value(), 2))

    def set_params(self, params: DockSettings) -> None:
        project = QgsProject.instance()
        self.task_combo.setCurrentIndex(max(0, self.task_combo.findData(params.task)))
        self.hsi_combo.setLayer(params.layer(params.hsi_layer_id))
        self.wavelength_widget.setFilePath(params.wavelengths)
        self.aux_list.clear()
        for layer_id in params.aux_layer_ids:
            layer = project.mapLayer(layer_id)
            if layer is not None:
                self._append_aux(layer)
        self.select_model(params.model_dir or default_model_dir())
        self.device_combo.setCurrentText(params.device)
        self.output_widget.setFilePath(params.output_path)
        self.confidence_check.setChecked(bool(params.confidence))
        self.tile_spin.setValue(int(params.tile_size))
        self.min_confidence_spin.setValue(float(params.min_confidence))
        self.reference_combo.setLayer(params.layer(params.reference_layer_id))
        self.labels_combo.setLayer(params.layer(params.labels_layer_id))
        self._labels_changed()
        if params.class_field:
            self.class_field_combo.setField(params.class_field)
        self.arch_combo.setCurrentText(params.arch)
        self.epochs_spin.setValue(int(params.epochs))
        self.model_out_widget.setFilePath(params.model_out)
        self.folder_widget.blockSignals(True)
        self.folder_widget.setFilePath(naming.chosen_folder())
        self.folder_widget.blockSignals(False)
        self._layers_changed()

    def _project_read(self, *args):
        self.set_params(DockSettings.load())

    def _folder_changed(self, path):
        path = (path or "").strip()
        if not path or os.path.isdir(path):
            naming.remember_folder(path)
        self._update_placeholders()

    def _update_placeholders(self, *args):
        """The empty output fields say what name and folder a run would use."""
        folder, why = naming.default_folder()
        self.folder_widget.lineEdit().setPlaceholderText(
            "[beside the project]" if why == "project" else "[temporary: deleted when QGIS exits]")
        params = self.params()
        try:
            out = os.path.basename(params.resolved_outputs()[0]) if params.hsi_layer_id else "<input>_<model>.tif"
            model_out = os.path.basename(params.resolved_model_out()) if params.hsi_layer_id else "<input>_<model>"
        except (RuntimeError, OSError):
            out, model_out = "<input>_<model>.tif", "<input>_<model>"
        self.output_widget.lineEdit().setPlaceholderText(f"[{out} in the output folder]")
        self.model_out_widget.lineEdit().setPlaceholderText(f"[{model_out} in the output folder]")

    def _append_aux(self, layer):
        item = QListWidgetItem(f"{layer.name()}  ({layer.bandCount()} bands)")
        item.setData(Qt.UserRole, layer.id())
        item.setToolTip(layer.source())
        self.aux_list.addItem(item)
        self._layers_changed()

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
        self._layers_changed()

    def _labels_changed(self, *args):
        layer = self.labels_combo.currentLayer()
        vector = layer if isinstance(layer, QgsVectorLayer) else None
        self.class_field_combo.setLayer(vector)
        if vector is not None:
            self.class_field_combo.setField(class_field_of(vector) or "")
        self.class_field_combo.setEnabled(vector is not None)

    def set_labels_layer(self, layer, task="train"):
        """Use `layer` as the labels (after LandFuse ▸ New labelling layer…) and show that task."""
        self.labels_combo.setLayer(layer)
        self._labels_changed()
        self.task_combo.setCurrentIndex(max(0, self.task_combo.findData(task)))

    def new_label_layer(self):
        from .labels_dialog import LabelLayerDialog
        hsi = self.hsi_combo.currentLayer()
        dialog = LabelLayerDialog(self, hsi.crs() if hsi is not None else None, self.model_combo.currentData())
        dialog.accepted.connect(lambda: dialog.layer is not None and self.set_labels_layer(
            dialog.layer, "finetune" if dialog.model_combo.currentData() else "train"))
        dialog.show()
        return dialog

    # --- the hyperspectral layer and its display ----------------------------------------------
    def _hsi_changed(self, *args):
        self.apply_display(force=False)
        self._layers_changed()

    def hsi_wavelengths(self):
        """(band centres or None, source or why not) of the chosen HSI, the wavelength field first."""
        hsi = self.hsi_combo.currentLayer()
        path = raster_path(hsi) if hsi is not None else None
        if not path:
            return None, "no raster file"
        return raster_wavelengths(path, self.wavelength_widget.filePath().strip() or None)

    def apply_display(self, force=False):
        """Draw the HSI in true colour or colour infrared from its wavelengths. Without `force`,
        only while QGIS's own default renderer is on (a style the user chose stays)."""
        hsi = self.hsi_combo.currentLayer()
        display = self.display_combo.currentText()
        if not isinstance(hsi, QgsRasterLayer) or display == DISPLAY_AS_LOADED or hsi.bandCount() < 3:
            return None
        if not force and not has_default_renderer(hsi):
            return None
        wavelengths, source = self.hsi_wavelengths()
        bands = display_bands(wavelengths, display) if wavelengths else None
        if bands is None:
            if force:
                self.log(f"Cannot show '{hsi.name()}' in {display}: "
                         + (source if not wavelengths else "its bands do not reach the colours needed") + ".")
            return None
        apply_spectral_renderer(hsi, bands)
        self.log(f"Showing '{hsi.name()}' in {display}: bands {bands[0]}, {bands[1]}, {bands[2]} "
                 f"({', '.join(f'{wavelengths[b - 1]:.0f}' for b in bands)} nm, from {source}).")
        return bands

    # --- models --------------------------------------------------------------------------------
    def refresh_models(self):
        current = self.model_combo.currentData()
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for entry in list_models():
            self.model_combo.addItem(entry.label, entry.path)
        self.model_combo.blockSignals(False)
        self.select_model(current or default_model_dir())

    def select_model(self, path):
        if not path:
            self._model_changed()
            return
        path = os.path.abspath(path)
        index = self.model_combo.findData(path)
        if index < 0:
            entry = load_entry(path)
            self.model_combo.addItem(entry.label, path)
            index = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(index)
        self._layers_changed()

    def _browse_model(self):
        folder = QFileDialog.getExistingDirectory(self, "LandFuse model package folder")
        if folder:
            entry = load_entry(folder)
            if entry.ok:
                register_model_folder(folder)
            self.select_model(folder)

    def model_fit(self):
        """{model folder: [reasons it cannot take the chosen layers]} for every model listed."""
        hsi = self.hsi_combo.currentLayer()
        aux = [QgsProject.instance().mapLayer(self.aux_list.item(i).data(Qt.UserRole)) for i in range(self.aux_list.count())]
        if hsi is None:
            return {}
        known = None
        fit = {}
        for i in range(self.model_combo.count()):
            path = self.model_combo.itemData(i)
            entry = load_entry(path)
            if not entry.ok:
                fit[path] = [entry.problem]
                continue
            if entry.summary.get("generic") and known is None:
                known = self.hsi_wavelengths()[0] is not None
            fit[path] = model_problems(entry.summary, hsi, aux, bool(known) if entry.summary.get("generic") else True)
        return fit

    def _layers_changed(self, *args):
        """Mark the models that cannot take the chosen layers, with the reason, before Run."""
        fit = self.model_fit()
        for i in range(self.model_combo.count()):
            path = self.model_combo.itemData(i)
            entry = load_entry(path)
            problems = fit.get(path) or []
            self.model_combo.setItemText(i, entry.label + (UNFIT if problems else ""))
            self.model_combo.setItemData(i, "\n".join(problems) or entry.purpose() or entry.path, Qt.ToolTipRole)
            self.model_combo.setItemData(i, QColor("#a02020") if problems else None, Qt.ForegroundRole)
        self._model_changed()

    def _model_changed(self, *args):
        path = self.model_combo.currentData()
        if not path:
            self.model_info.setText("No model: train one, or browse to a package.")
            return
        text = load_entry(path).describe()
        problems = self.model_fit().get(path) or []
        if problems:
            text = "Cannot take the chosen layers:\n• " + "\n• ".join(problems) + "\n\n" + text
        self.model_info.setText(text)
        self._update_placeholders()

    def _update_backend_status(self):
        python, source = backend_env.find_backend_python()
        if python:
            state = backend_env.env_state(python)
            note = {"stale": " — out of date: set it up again", "incomplete": " — incomplete: set it up again"}.get(state, "")
            self.backend_label.setText(f"{python}\n({source}){note}")
            self.backend_label.setToolTip(f"{python} ({source})")
        else:
            self.backend_label.setText("No backend environment yet.")
        return python

    def _open_setup(self):
        from .env_dialog import EnvSetupDialog
        dialog = EnvSetupDialog(self)
        dialog.finishedSetup.connect(lambda *a: self._update_backend_status())
        dialog.show()

    # --- preflight ---------------------------------------------------------------------------------
    def preflight(self, params: DockSettings) -> Preflight:
        result = Preflight()
        summary = None
        if params.task != "train":
            if not params.model_dir:
                result.error("Choose a model.")
            else:
                try:
                    summary = summarize(read_manifest(params.model_dir))
                except LandFuseError as exc:
                    result.error(f"Model: {exc.message}")
        hsi, aux = params.layers()
        check_inputs(result, hsi, aux, summary)
        inputs = [raster_path(hsi) if hsi is not None else None] + [raster_path(a) for a in aux if a is not None]
        if params.wavelengths and hsi is not None and raster_path(hsi):
            wavelengths, why = raster_wavelengths(raster_path(hsi), params.wavelengths)
            if wavelengths is None:
                result.error(f"Wavelengths: {why}")
            inputs.append(params.wavelengths if os.path.isfile(params.wavelengths) else None)
        if params.task == "classify":
            reference = params.layer(params.reference_layer_id)
            if reference is not None:
                check_labels(result, hsi, reference)
                inputs.append(raster_path(reference) or vector_path(reference))
            check_output_file(result, params.output_path)
            if result.ok:
                out, conf = params.resolved_outputs()
                for path in (out, conf):
                    check_not_an_input(result, path, inputs)
        else:
            labels = params.layer(params.labels_layer_id)
            check_labels(result, hsi, labels, params.class_field or None)
            if labels is not None:
                inputs.append(raster_path(labels) or vector_path(labels))
            if params.model_out:
                check_output_folder(result, params.model_out)
                out = os.path.abspath(params.model_out)
                if params.model_dir and out == os.path.abspath(params.model_dir):
                    result.error("The new model folder is the model it starts from: choose another folder.")
                if any(m.bundled and m.path == out for m in list_models()):
                    result.error("The new model folder is a bundled model: choose another folder.")
        return result

    # --- running ---------------------------------------------------------------------------------
    def log(self, text):
        self.log_view.appendPlainText(text)

    def message(self, title, text, level=Qgis.Info, details=""):
        if self.iface is not None:
            if details:
                self.iface.messageBar().pushMessage(title, text, details, level, 0 if level == Qgis.Critical else 8)
            else:
                self.iface.messageBar().pushMessage(title, text, level, 8)

    def run(self) -> Optional[BackendTask]:
        """Preflight, then start the chosen task; returns the task, or None when refused."""
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
        self.result_group.setVisible(False)
        self.result_rows, self.accuracy = [], None
        folder, why = naming.default_folder()
        if params.task == "classify":
            job = params.classify_params()
            self.log(f"Classifying '{self.hsi_combo.currentLayer().name()}' with {load_entry(job.model_dir).stem} "
                     f"into {job.out}" + ("" if params.output_path else f" — {naming.describe_folder(folder, why)}"))
            return self._start(python, job, "classify", {"params": params, "job": job})
        try:
            labels, class_field = self._prepare_labels(params)
        except (ValueError, OSError) as exc:
            self._cleanup_run_folder()
            self.log(f"Not started:\n{exc}")
            self.message(BackendError(PREFLIGHT, "").title, str(exc), Qgis.Warning)
            return None
        job = params.training_params(labels, class_field)
        verb = "Training a new model" if params.task == "train" else f"Fine-tuning {load_entry(params.model_dir).stem}"
        self.log(f"{verb} into {job.out}" + ("" if params.model_out else f" — {naming.describe_folder(folder, why)}"))
        return self._start(python, job, params.task, {"params": params, "job": job})

    def _prepare_labels(self, params):
        """(label file, class field): a label raster's file, or a vector layer exported onto the
        HSI's CRS into this run's folder (removed when the run ends)."""
        labels = params.layer(params.labels_layer_id)
        hsi, _ = params.layers()
        if labels.type() == QgsMapLayerType.RasterLayer:
            return raster_path(labels), None
        field = params.class_field or class_field_of(labels)
        self._run_folder = naming.RunFolder()
        path, table, count = export_labels(labels, field, hsi.crs(), self._run_folder.file("labels.gpkg"))
        if not count:
            raise ValueError(f"No labelled feature in '{labels.name()}' (field '{field}').")
        self.log(f"{count} labelled features; classes: " + ", ".join(f"{r['value']}={r['name']}" for r in table))
        from .labels import CLASS_FIELD
        return path, CLASS_FIELD

    def _start(self, python, job, kind, pending):
        call = BackendCall(python, job.command, job.backend_args())
        self.task = BackendTask(f"LandFuse: {job.command}", call, self._finished)
        self.task.backendEvent.connect(self._on_event)
        self._pending = dict(pending, kind=kind)
        self.progress.setValue(0)
        self.stage_label.setText("starting…")
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

    def _cleanup_run_folder(self):
        if self._run_folder is not None:
            self._run_folder.cleanup()
            self._run_folder = None

    def _finished(self, task):
        self.task = None
        pending, self._pending = self._pending or {}, None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if pending.get("kind") != "classify":
            self._cleanup_run_folder()
        if task.error is not None:
            error = task.error
            self.stage_label.setText(error.title)
            self.log(error.user_message())
            level = Qgis.Info if error.cancelled else Qgis.Critical
            self.message(error.title, error.message + (f" — {error.hint}" if error.hint else ""), level, error.log_tail)
            self._cleanup_run_folder()
            self.jobFinished.emit(task)
            return
        handler = {"classify": self._classified, "train": self._trained, "finetune": self._trained,
                   "evaluate": self._assessed}[pending["kind"]]
        if handler(task, pending) is not None:
            return               # a follow-up job runs; jobFinished comes when it ends
        self.progress.setValue(100)
        self.jobFinished.emit(task)

    def _elapsed(self, task):
        return f" in {task.elapsed_s:.1f} s" if task.elapsed_s else ""

    def _classified(self, task, pending):
        outputs = task.result.get("outputs") or {}
        table = task.result.get("class_table") or []
        params, job = pending["params"], pending["job"]
        hsi = self.hsi_combo.currentLayer()
        name = f"{hsi.name() if hsi is not None else 'map'} — {load_entry(job.model_dir).stem}"
        try:
            self.result_layers = add_result_layers(outputs["classes"], table, outputs.get("confidence"), name=name)
        except (KeyError, RuntimeError) as exc:
            self.log(f"Could not add the result: {exc}")
            self.message("LandFuse", f"Could not add the result: {exc}", Qgis.Critical)
            return None
        elapsed = self._elapsed(task)
        self.stage_label.setText(f"done{elapsed}")
        self.log(f"Done{elapsed}: {outputs['classes']}")
        try:
            self.result_rows = class_areas(self.result_layers[0], table,
                                           (task.result.get("metrics") or {}).get("pixels_per_class"))
        except (RuntimeError, OSError, AttributeError, ImportError) as exc:
            self.log(f"Could not measure the class areas: {exc}")
            self.result_rows = []
        if self.result_rows:
            self.log("Area per class (share of mapped pixels):\n" + "\n".join(area_lines(self.result_rows)))
        self._show_result(f"<b>{name}</b><br>{outputs['classes']}{elapsed}", self.result_rows)
        self.message("LandFuse", f"Land-cover map added ({len(table)} classes){elapsed}.", Qgis.Success)
        reference = params.layer(params.reference_layer_id)
        if reference is None:
            return None
        return self._assess(outputs["classes"], reference, pending)

    def _assess(self, classes_path, reference, pending):
        python = self._update_backend_status()
        html = naming.report_path(classes_path)
        ref_path, field = raster_path(reference), None
        if ref_path is None:
            field = class_field_of(reference)
            if not field:
                self.log(f"Not assessed: choose a categorized style or a class field for '{reference.name()}'.")
                return None
            self._run_folder = self._run_folder or naming.RunFolder()
            hsi = self.hsi_combo.currentLayer()
            ref_path, _, _ = export_labels(reference, field, hsi.crs() if hsi is not None else reference.crs(),
                                           self._run_folder.file("reference.gpkg"))
            from .labels import CLASS_FIELD
            field = CLASS_FIELD
        job = EvaluateParams(prediction=classes_path, reference=ref_path, class_field=field, out_html=html,
                             out_json=os.path.splitext(html)[0] + ".json")
        self.log(f"Assessing the map against '{reference.name()}'…")
        return self._start(python, job, "evaluate", dict(pending, reference=reference.name()))

    def _assessed(self, task, pending):
        self._cleanup_run_folder()
        metrics = task.result.get("metrics") or {}
        self.accuracy = metrics
        html = (task.result.get("outputs") or {}).get("html", "")
        parts = [f"{label} {metrics[key]:.3f}" for key, label in (("oa", "overall accuracy"), ("aa", "average accuracy"),
                                                                   ("kappa", "kappa")) if isinstance(metrics.get(key), (int, float))]
        text = f"Against '{pending.get('reference', 'the reference')}': " + ", ".join(parts)
        if isinstance(metrics.get("n_pixels"), int):
            text += f" ({metrics['n_pixels']:,} reference pixels)"
        self.log(text + (f"\nReport: {html}" if html else ""))
        self.result_label.setText(self.result_label.text() + "<br>" + text
                                  + (f'<br><a href="file://{html}">accuracy report (HTML)</a>' if html else ""))
        self.stage_label.setText("done")
        return None

    def _trained(self, task, pending):
        outputs = task.result.get("outputs") or {}
        model = outputs.get("model") or pending["job"].out
        metrics = task.result.get("metrics") or {}
        elapsed = self._elapsed(task)
        register_model_folder(model)
        self.select_model(model)
        entry = load_entry(model)
        self.stage_label.setText(f"done{elapsed}")
        self.log(f"Done{elapsed}: model written to {model}")
        note = describe_estimate(metrics) or (entry.accuracy_note() if entry.ok else "")
        self.log(note)
        self._show_result(f"<b>New model {entry.stem}</b><br>{model}{elapsed}<br>{note}<br>"
                          "It is now the chosen model: switch the task to “Classify a scene” to map with it.", [])
        self.message("LandFuse", f"Model {entry.stem} written{elapsed}.", Qgis.Success)
        return None

    def _show_result(self, html, rows):
        self.result_label.setText(html)
        self.area_table.setRowCount(len(rows))
        hectares = any(r["ha"] is not None for r in rows)
        self.area_table.setHorizontalHeaderLabels(["Class", "ha" if hectares else "pixels", "%"])
        self.area_table.setToolTip("Area of each class and its share of the mapped pixels (nodata not counted)")
        for i, r in enumerate(rows):
            swatch = QPixmap(12, 12)
            swatch.fill(QColor(r["color"]))
            self.area_table.setItem(i, 0, QTableWidgetItem(QIcon(swatch), r["name"]))
            amount = f"{r['ha']:,.2f}" if r["ha"] is not None else f"{r['pixels']:,}"
            for column, text in ((1, amount), (2, f"{r['percent']:.1f}")):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.area_table.setItem(i, column, item)
        self.area_table.resizeRowsToContents()
        height = self.area_table.horizontalHeader().height() + 2 * self.area_table.frameWidth()
        self.area_table.setFixedHeight(height + sum(self.area_table.rowHeight(i) for i in range(len(rows))))
        self.area_table.setVisible(bool(rows))
        self.result_group.setVisible(True)

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
        self._cleanup_run_folder()
        for signal, slot in ((hub.modelsChanged, self.refresh_models),
                             (QgsProject.instance().readProject, self._project_read)):
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
