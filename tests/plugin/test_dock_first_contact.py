"""What a new user meets in the dock (issue 17): the generic model preselected, models that cannot
take the chosen layers marked with the reason, outputs named after input and model in a folder the
user chose, train and fine-tune from a labels layer, the area table and accuracy of a run, and the
hyperspectral layer drawn in true colour from its wavelengths. Against the real backend."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT, wait_for
from landfuse.qgis_plugin import backend_env, models
from landfuse.qgis_plugin import outputs as naming
from osgeo import gdal
from qgis.core import (
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsSettings,
)
from scenes import make_scene
from test_real_backend import ARTIFACTS, drawn_labels

GENERIC = ROOT / "models" / "generic-landcover"
WAVELENGTHS_8 = [450.0, 500.0, 550.0, 600.0, 650.0, 700.0, 800.0, 860.0]


@pytest.fixture(scope="module", autouse=True)
def _backend(backend_python):
    os.environ[backend_env.ENV_VAR] = backend_python
    yield


@pytest.fixture
def out_folder(tmp_path):
    """A chosen output folder for the test, forgotten afterwards."""
    folder = tmp_path / "results"
    folder.mkdir()
    naming.remember_folder(str(folder))
    yield folder
    naming.remember_folder("")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("first_contact"))


def _layers(scene, *keys):
    layers = [QgsRasterLayer(scene[k], k, "gdal") for k in keys]
    QgsProject.instance().addMapLayers(layers)
    return layers


def _dock(qgis_iface):
    from landfuse.qgis_plugin.dock import LandFuseDock
    dock = LandFuseDock(qgis_iface)
    dock.resize(380, 900)
    dock.show()
    return dock


def _run(dock, timeout=240):
    finished = []
    dock.jobFinished.connect(finished.append)
    task = dock.run()
    assert task is not None, dock.log_view.toPlainText()[-2000:]
    wait_for(lambda: finished, timeout)
    assert finished[0].error is None, finished[0].error.user_message()
    return finished[0]


def _with_wavelength_metadata(path, wavelengths):
    ds = gdal.Open(path, gdal.GA_Update)
    for i, w in enumerate(wavelengths, start=1):
        ds.GetRasterBand(i).SetMetadataItem("wavelength", str(w))
    ds.SetMetadataItem("wavelength_units", "Nanometers")
    ds = None
    return path


def test_generic_model_is_preselected(qgis_iface, qgis_new_project):
    dock = _dock(qgis_iface)
    try:
        assert os.path.samefile(dock.model_combo.currentData(), GENERIC)
        # its card says what it is for, and that its manifest holds no accuracy figure
        text = dock.model_info.text()
        assert "For: A first map on any imaging spectrometer" in text
        assert "No single accuracy" in text and "94.8 %" in text     # the figures of its card
    finally:
        dock.teardown()
        dock.deleteLater()


def test_models_that_cannot_take_the_layers_are_marked(qgis_iface, qgis_new_project, scene):
    from landfuse.qgis_plugin.dock import UNFIT
    hsi, dsm = _layers(scene, "hsi", "dsm")
    dock = _dock(qgis_iface)
    try:
        dock.hsi_combo.setLayer(hsi)
        dock.aux_combo.setLayer(dsm)
        dock.aux_add.click()
        labels = {dock.model_combo.itemData(i): dock.model_combo.itemText(i) for i in range(dock.model_combo.count())}
        tips = {dock.model_combo.itemData(i): dock.model_combo.itemData(i, 0x0003) for i in range(dock.model_combo.count())}
        tiny = str(ROOT / "models" / "demo-tiny")
        assert labels[tiny].endswith(UNFIT) and "8 band(s)" in tips[tiny] and "expects 64" in tips[tiny]
        # the generic model takes any band count, but needs wavelengths this raster does not give
        assert labels[str(GENERIC)].endswith(UNFIT) and "wavelength" in tips[str(GENERIC)]
        dock.wavelength_widget.setFilePath(",".join(str(w) for w in WAVELENGTHS_8))
        labels = {dock.model_combo.itemData(i): dock.model_combo.itemText(i) for i in range(dock.model_combo.count())}
        assert not labels[str(GENERIC)].endswith(UNFIT)
        dock.select_model(tiny)
        text = dock.model_info.text()
        assert text.startswith("Cannot take the chosen layers") and "8 band(s)" in text
        assert "Validation overall accuracy 98.8 % on 164 labelled pixels of the scene it was trained on" in text
        assert "For: A scene-specific model" in text
        assert dock.run() is None and "8 band(s)" in dock.log_view.toPlainText()
    finally:
        dock.teardown()
        dock.deleteLater()


def test_output_names_follow_input_and_model(qgis_iface, qgis_new_project, scene, out_folder):
    hsi, dsm = _layers(scene, "hsi", "dsm")
    dock = _dock(qgis_iface)
    try:
        dock.hsi_combo.setLayer(hsi)
        dock.select_model(str(GENERIC))
        params = dock.params()
        out, conf = params.resolved_outputs()
        assert out == str(out_folder / "hsi_generic-landcover.tif") and conf == str(out_folder / "hsi_generic-landcover_confidence.tif")
        assert "hsi_generic-landcover.tif" in dock.output_widget.lineEdit().placeholderText()
        (out_folder / "hsi_generic-landcover_confidence.tif").write_text("not ours")
        assert params.resolved_outputs()[0] == str(out_folder / "hsi_generic-landcover_2.tif")   # never replaced
        # no chosen folder, unsaved project: QGIS's temporary folder (deleted when QGIS exits)
        naming.remember_folder("")
        assert os.path.dirname(dock.params().resolved_outputs()[0]) == QgsProcessingUtils.tempFolder()
        # an output that is an input is refused
        dock.output_widget.setFilePath(scene["dsm"])
        dock.aux_combo.setLayer(dsm)
        dock.aux_add.click()
        check = dock.preflight(dock.params())
        assert any("is one of the inputs" in e for e in check.errors), check.errors
    finally:
        dock.teardown()
        dock.deleteLater()


def test_true_colour_from_wavelengths(qgis_iface, qgis_new_project, tmp_path):
    folder = tmp_path / "wl"
    folder.mkdir()
    path = _with_wavelength_metadata(make_scene(folder)["hsi"], WAVELENGTHS_8)
    plain = make_scene(tmp_path)["hsi"]
    hsi = QgsRasterLayer(path, "hsi with wavelengths", "gdal")
    other = QgsRasterLayer(plain, "hsi without", "gdal")
    QgsProject.instance().addMapLayers([hsi, other])
    dock = _dock(qgis_iface)
    try:
        dock.hsi_combo.setLayer(hsi)
        renderer = hsi.renderer()
        assert isinstance(renderer, QgsMultiBandColorRenderer)
        assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (5, 3, 1)   # 650, 550, 450 nm
        dock.display_combo.setCurrentText("colour infrared")
        renderer = hsi.renderer()
        assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (8, 5, 3)   # 860, 650, 550 nm
        before = other.renderer().clone()
        dock.hsi_combo.setLayer(other)               # no wavelengths: left as QGIS drew it
        assert type(other.renderer()) is type(before)
    finally:
        dock.teardown()
        dock.deleteLater()


def test_aux_combo_has_room(qgis_iface, qgis_new_project, scene):
    _layers(scene, "hsi", "dsm")
    dock = _dock(qgis_iface)
    try:
        dock.resize(380, 900)
        from qgis.core import QgsApplication
        QgsApplication.processEvents()
        scroll = dock.widget()
        assert scroll.widget().width() <= scroll.viewport().width()     # nothing cut off on the right
        assert dock.aux_combo.width() > 150, dock.aux_combo.width()
    finally:
        dock.teardown()
        dock.deleteLater()


def test_train_then_classify_with_reference_then_finetune(qgis_iface, qgis_new_project, scene, out_folder):
    """Draw labels, train in the dock, classify with the new model against a reference; the area
    table and the accuracy come back; then fine-tune it on a label raster, in the dock too."""
    from landfuse.qgis_plugin.dock import LandFuseDock  # noqa: F401  (the dock module loads)
    hsi, dsm, truth, sparse = _layers(scene, "hsi", "dsm", "truth", "labels")
    labels = drawn_labels()
    QgsProject.instance().addMapLayer(labels)
    dock = _dock(qgis_iface)
    try:
        dock.task_combo.setCurrentIndex(dock.task_combo.findData("train"))
        assert dock.labels_combo.isVisible() and not dock.output_widget.isVisible()
        dock.hsi_combo.setLayer(hsi)
        dock.aux_combo.setLayer(dsm)
        dock.aux_add.click()
        dock.labels_combo.setLayer(labels)
        assert dock.class_field_combo.currentField() == "class"      # from the categorized style
        dock.arch_combo.setCurrentText("tiny")
        dock.epochs_spin.setValue(2)
        dock.device_combo.setCurrentText("cpu")
        task = _run(dock)
        assert task.call.command == "train" and "--arch" in task.call.args
        model = str(out_folder / "hsi_tiny")
        assert os.path.isfile(os.path.join(model, "model.json"))
        assert os.path.abspath(dock.model_combo.currentData()) == os.path.abspath(model)
        assert os.path.abspath(model) in [os.path.abspath(f) for f in models.user_folders()]
        # the few-label recipe's honest estimate, with the forest's figure on the same folds beside it
        assert "Cross-validated estimate on your labels" in dock.result_label.text()
        assert "a random forest on the same folds" in dock.result_label.text()
        assert not any(n.startswith("landfuse_run_") for n in os.listdir(QgsProcessingUtils.tempFolder()))

        dock.task_combo.setCurrentIndex(dock.task_combo.findData("classify"))
        dock.tile_spin.setValue(32)
        dock.reference_combo.setLayer(truth)
        _run(dock)
        classes, conf = dock.result_layers
        assert classes.source() == str(out_folder / "hsi_hsi_tiny.tif") and classes.name() == "hsi — hsi_tiny"
        assert isinstance(classes.renderer(), QgsPalettedRasterRenderer)
        tree = QgsProject.instance().layerTreeRoot().layerOrder()
        assert tree.index(classes) < tree.index(conf)                 # the class map on top
        rows = dock.result_rows
        assert [r["name"] for r in rows] == ["meadow", "roofs", "bare soil"]
        assert sum(r["pixels"] for r in rows) == 48 * 48
        assert sum(r["ha"] for r in rows) == pytest.approx(48 * 48 / 10000.0)   # 1 m pixels
        assert sum(r["percent"] for r in rows) == pytest.approx(100.0)
        assert dock.area_table.rowCount() == 3 and dock.area_table.item(0, 0).text() == "meadow"
        log = dock.log_view.toPlainText()
        assert "Area per class" in log and " ha " in log
        assert dock.accuracy is not None and dock.accuracy["oa"] > 0.8
        assert "overall accuracy" in dock.result_label.text()
        assert os.path.isfile(str(out_folder / "hsi_hsi_tiny_accuracy.html"))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        body = dock.widget().widget()                  # the whole dock, not just what the scroll area shows
        body.resize(body.width(), body.sizeHint().height())
        assert body.grab().save(str(ARTIFACTS / "dock_after_run.png"))

        dock.task_combo.setCurrentIndex(dock.task_combo.findData("finetune"))
        dock.labels_combo.setLayer(sparse)
        dock.epochs_spin.setValue(1)
        task = _run(dock)
        assert task.call.command == "finetune"
        assert task.call.args[task.call.args.index("--model") + 1] == model
        tuned = str(out_folder / "hsi_hsi_tiny_finetuned")
        assert os.path.isfile(os.path.join(tuned, "model.json"))
        assert os.path.abspath(dock.model_combo.currentData()) == os.path.abspath(tuned)
    finally:
        dock.teardown()
        dock.deleteLater()


def test_new_labelling_layer_leads_to_training(qgis_iface, qgis_new_project, tmp_path):
    import landfuse
    from qgis.core import QgsApplication
    assert QgsApplication.processingRegistry().providerById("landfuse") is None   # the plugin registers its own
    plugin = landfuse.classFactory(qgis_iface)
    plugin.initGui()
    try:
        dialog = plugin.new_label_layer()
        dialog.path_widget.setFilePath(str(tmp_path / "my_labels.gpkg"))
        dialog.model_combo.setCurrentIndex(0)
        dialog.names_edit.setText("water, trees, roofs")
        dialog.create()
        assert dialog.layer is not None
        dock = plugin.dock
        assert dock is not None and dock.labels_combo.currentLayer() is dialog.layer
        assert dock.task_combo.currentData() == "train"
    finally:
        plugin.unload()


def test_plugin_side_wavelength_reader_loads_no_heavy_module(plugin_root):
    code = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("landfuse", {str(plugin_root / '__init__.py')!r},
                                              submodule_search_locations=[{str(plugin_root)!r}])
module = importlib.util.module_from_spec(spec); sys.modules["landfuse"] = module; spec.loader.exec_module(module)
import landfuse.qgis_plugin.backend_api as api
print(sorted(m for m in ("torch", "rasterio", "numpy") if m in sys.modules), hasattr(api.spectral, "band_wavelengths"))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] True"


def test_settings_key_is_the_documented_one():
    assert naming.SETTING_FOLDER == "LandFuse/output_folder"
    QgsSettings().remove(naming.SETTING_FOLDER)
    assert naming.chosen_folder() == ""


# --- Processing (issue 17: wavelength file, short labels, the class map on top) -------------------

def test_processing_labels_are_short(processing_mod):
    """Long labels made the dialogs too narrow for their text: the detail is in each tooltip."""
    from qgis.core import QgsApplication
    provider = QgsApplication.processingRegistry().providerById("landfuse")
    checked = {"landfuse:classify_raster", "landfuse:train_model", "landfuse:finetune_model",
               "landfuse:assess_accuracy", "landfuse:backend_diagnostics"}
    long_ones = [(alg.id(), p.description()) for alg in provider.algorithms() if alg.id() in checked
                 for p in alg.parameterDefinitions() if len(p.description()) > 40]
    assert long_ones == []
    alg = QgsApplication.processingRegistry().algorithmById("landfuse:classify_raster")
    assert "nm" in alg.parameterDefinition("WAVELENGTHS_FILE").help()


def test_processing_wavelength_file_and_layer_order(processing_mod, qgis_new_project, scene, tmp_path):
    wl_file = tmp_path / "centres.txt"
    wl_file.write_text("# band centres, nm\n" + "\n".join(str(w) for w in WAVELENGTHS_8) + "\n")
    out, conf = str(tmp_path / "generic.tif"), str(tmp_path / "generic_conf.tif")
    processing_mod.runAndLoadResults("landfuse:classify_raster", {
        "INPUT_HSI": scene["hsi"], "AUX_LAYERS": [scene["dsm"]], "MODEL_FOLDER": str(GENERIC), "DEVICE": 1,
        "WAVELENGTHS_FILE": str(wl_file), "OUTPUT_CLASSES": out, "OUTPUT_CONFIDENCE": conf})
    from qgis.core import QgsApplication
    QgsApplication.processEvents()
    order = [layer.source() for layer in QgsProject.instance().layerTreeRoot().layerOrder()]
    assert out in order and conf in order
    assert order.index(out) < order.index(conf)           # the class map on top of its confidence
    from qgis.core import QgsProcessingContext
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    alg = QgsApplication.processingRegistry().createAlgorithmById("landfuse:classify_raster")
    ok, message = alg.checkParameterValues(
        {"INPUT_HSI": scene["hsi"], "MODEL_FOLDER": str(GENERIC), "WAVELENGTHS_FILE": str(wl_file),
         "WAVELENGTHS": "1,2,3", "OUTPUT_CLASSES": "TEMPORARY_OUTPUT"}, context)
    assert not ok and "once" in message


def test_training_in_the_dock_cancels_and_cleans_up(qgis_iface, qgis_new_project, scene, out_folder):
    """Cancel works for training as for classifying; the exported labels do not outlive the run."""
    hsi, dsm = _layers(scene, "hsi", "dsm")
    labels = drawn_labels()
    QgsProject.instance().addMapLayer(labels)
    dock = _dock(qgis_iface)
    try:
        dock.task_combo.setCurrentIndex(dock.task_combo.findData("train"))
        dock.hsi_combo.setLayer(hsi)
        dock.aux_combo.setLayer(dsm)
        dock.aux_add.click()
        dock.labels_combo.setLayer(labels)
        dock.arch_combo.setCurrentText("tiny")
        dock.epochs_spin.setValue(500)
        dock.device_combo.setCurrentText("cpu")
        finished = []
        dock.jobFinished.connect(finished.append)
        task = dock.run()
        assert task is not None and dock.cancel_button.isEnabled()
        run_folder = dock._run_folder.path
        assert os.path.isfile(os.path.join(run_folder, "labels.gpkg"))
        wait_for(lambda: any(e for e in [dock.progress.value()]) or dock.stage_label.text().startswith("train"), 120)
        dock.cancel_button.click()
        wait_for(lambda: finished, 30)
        assert finished[0].error is not None and finished[0].error.cancelled
        assert dock.run_button.isEnabled() and not dock.cancel_button.isEnabled()
        assert not os.path.exists(run_folder)
        assert not os.path.exists(out_folder / "hsi_tiny" / "model.json")
    finally:
        dock.teardown()
        dock.deleteLater()
