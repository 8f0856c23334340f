"""Against the REAL backend (LANDFUSE_BACKEND_PYTHON or .venv): Processing algorithms through
processing.run, the dock driven like a person would, preflight refusals, cancel and a killed backend.
A tiny model is trained once per session through `landfuse:train_model` on drawn polygons."""

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from conftest import ROOT, SHARED_DATA, wait_for
from landfuse.qgis_plugin import backend_env, models
from landfuse.qgis_plugin.errors import CRASHED
from landfuse.qgis_plugin.labels import categorized_renderer
from landfuse.qgis_plugin.runner import BackendCall, BackendTask
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsGeometry,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize
from scenes import label_polygons_wkt, make_scene, write_raster

CLASS_TABLE = [{"value": 1, "name": "meadow", "color": "#7fc97f"}, {"value": 2, "name": "roofs", "color": "#f0027f"},
               {"value": 3, "name": "bare soil", "color": "#fdc086"}]
ARTIFACTS = Path(os.environ.get("LANDFUSE_ARTIFACTS", ROOT / "build" / "test-artifacts" / "plugin"))
REAL_HSI = SHARED_DATA / "dfc2018_hsi_tile" / "testHSI.tif"


@pytest.fixture(scope="session", autouse=True)
def _backend_env(backend_python):
    os.environ[backend_env.ENV_VAR] = backend_python
    yield


@pytest.fixture(scope="session")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene"))


def drawn_labels():
    """Polygons drawn in WGS 84 (so they must be reprojected), class field with a categorized style."""
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326&field=class:integer", "drawn labels", "memory")
    to_wgs = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:32633"),
                                    QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    feats = []
    for value, wkt in label_polygons_wkt():
        geom = QgsGeometry.fromWkt(wkt)
        geom.transform(to_wgs)
        f = QgsFeature(layer.fields())
        f.setGeometry(geom)
        f.setAttributes([value])
        feats.append(f)
    layer.dataProvider().addFeatures(feats)
    layer.setRenderer(categorized_renderer(CLASS_TABLE, layer.geometryType(), "class"))
    return layer


@pytest.fixture(scope="module")
def trained_model(processing_mod, scene, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("models") / "tiny")
    labels = drawn_labels()
    QgsProject.instance().addMapLayer(labels)
    t0 = time.monotonic()
    result = processing_mod.run("landfuse:train_model", {
        "INPUT_HSI": scene["hsi"], "AUX_LAYERS": [scene["dsm"]], "LABELS_VECTOR": labels,
        "ARCHITECTURE": 2, "EPOCHS": 2, "DEVICE": 1, "SEED": 1, "TILE_SIZE": 32, "MODEL_NAME": "test tiny",
        "OUTPUT_MODEL": out})
    print(f"train_model took {time.monotonic() - t0:.1f} s")
    assert result["OUTPUT_MODEL"] == out
    return out


def test_train_model_registers_the_model(trained_model):
    manifest = json.load(open(os.path.join(trained_model, "model.json")))
    assert manifest["architecture"]["name"] == "tiny"
    assert [m["bands"] for m in manifest["modalities"]] == [8, 1]
    assert os.path.abspath(trained_model) in [os.path.abspath(f) for f in models.user_folders()]
    assert any(e.path == os.path.abspath(trained_model) for e in models.list_models())


def test_style_names_and_colours_reach_the_model(trained_model):
    manifest = json.load(open(os.path.join(trained_model, "model.json")))
    assert [c["name"] for c in manifest["classes"]] == [c["name"] for c in CLASS_TABLE]
    assert [c["color"].lower() for c in manifest["classes"]] == [c["color"].lower() for c in CLASS_TABLE]


def test_classify_raster_styled_and_accurate(processing_mod, trained_model, scene, tmp_path, qgis_new_project):
    out = str(tmp_path / "classes.tif")
    conf = str(tmp_path / "confidence.tif")
    result = processing_mod.runAndLoadResults("landfuse:classify_raster", {
        "INPUT_HSI": scene["hsi"], "AUX_LAYERS": [scene["dsm"]], "MODEL_FOLDER": trained_model, "DEVICE": 1,
        "TILE_SIZE": 32, "OUTPUT_CLASSES": out, "OUTPUT_CONFIDENCE": conf})
    assert result["OUTPUT_CLASSES"] == out and os.path.isfile(out) and os.path.isfile(conf)
    QgsApplication.processEvents()
    loaded = [l for l in QgsProject.instance().mapLayers().values() if l.source() == out]
    assert loaded, "the class raster was not loaded"
    renderer = loaded[0].renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    manifest = json.load(open(os.path.join(trained_model, "model.json")))
    expected = {c["value"]: (c["name"], c["color"].lower()) for c in manifest["classes"]}
    assert {c.value: (c.label, c.color.name()) for c in renderer.classes()} == expected
    # accuracy of the map against the full truth raster
    report = str(tmp_path / "report.html")
    report_json = str(tmp_path / "report.json")
    acc = processing_mod.run("landfuse:assess_accuracy", {
        "INPUT_CLASSES": out, "REFERENCE_RASTER": scene["truth"], "OUTPUT_HTML": report, "OUTPUT_JSON": report_json})
    assert acc["OVERALL_ACCURACY"] > 0.8, acc
    assert acc["KAPPA"] > 0.7
    html = open(report).read()
    assert "Confusion matrix" in html and "Overall accuracy" in html
    assert json.load(open(report_json))


def test_classify_raster_min_confidence_styles_unclassified(processing_mod, trained_model, scene, tmp_path,
                                                          qgis_new_project):
    out = str(tmp_path / "unsure.tif")
    result = processing_mod.runAndLoadResults("landfuse:classify_raster", {
        "INPUT_HSI": scene["hsi"], "AUX_LAYERS": [scene["dsm"]], "MODEL_FOLDER": trained_model, "DEVICE": 1,
        "TILE_SIZE": 32, "OUTPUT_CLASSES": out, "MIN_CONFIDENCE": 0.99})
    assert result["CLASS_COUNT"] == len(CLASS_TABLE)          # "unclassified" is not one of the model's classes
    QgsApplication.processEvents()
    loaded = [l for l in QgsProject.instance().mapLayers().values() if l.source() == out]
    assert loaded and isinstance(loaded[0].renderer(), QgsPalettedRasterRenderer)
    classes = {c.value: (c.label, c.color.name()) for c in loaded[0].renderer().classes()}
    assert classes[255] == ("unclassified", "#000000") and len(classes) == len(CLASS_TABLE) + 1
    assert 'label="unclassified"' in open(str(tmp_path / "unsure.qml")).read()


def test_assess_accuracy_with_vector_reference(processing_mod, scene, tmp_path):
    labels = drawn_labels()
    acc = processing_mod.run("landfuse:assess_accuracy", {
        "INPUT_CLASSES": scene["truth"], "REFERENCE_VECTOR": labels, "REFERENCE_FIELD": "class",
        "OUTPUT_HTML": str(tmp_path / "r.html")})
    assert acc["OVERALL_ACCURACY"] == pytest.approx(1.0)


def test_classify_batch_of_two(processing_mod, trained_model, tmp_path):
    """Batch-style: the same algorithm over two generated scenes."""
    outs = []
    for seed in (5, 6):
        folder = tmp_path / f"s{seed}"
        folder.mkdir()
        s = make_scene(folder, seed=seed)
        out = str(folder / "classes.tif")
        processing_mod.run("landfuse:classify_raster", {"INPUT_HSI": s["hsi"], "AUX_LAYERS": [s["dsm"]],
                                                        "MODEL_FOLDER": trained_model, "DEVICE": 1,
                                                        "OUTPUT_CLASSES": out})
        outs.append(out)
    assert all(os.path.isfile(o) for o in outs)


def test_finetune_with_label_raster(processing_mod, trained_model, scene, tmp_path):
    out = str(tmp_path / "finetuned")
    result = processing_mod.run("landfuse:finetune_model", {
        "MODEL_FOLDER": trained_model, "INPUT_HSI": scene["hsi"], "AUX_LAYERS": [scene["dsm"]],
        "LABELS_RASTER": scene["labels"], "EPOCHS": 1, "DEVICE": 1, "TILE_SIZE": 32, "OUTPUT_MODEL": out})
    assert os.path.isfile(os.path.join(result["OUTPUT_MODEL"], "model.json"))


def _check(alg_id, params):
    alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    return alg.checkParameterValues(params, context)


def test_preflight_refuses_band_mismatch(processing_mod, trained_model, scene, tmp_path):
    wrong = make_scene(tmp_path, bands=5)["hsi"]
    ok, message = _check("landfuse:classify_raster", {"INPUT_HSI": wrong, "AUX_LAYERS": [scene["dsm"]],
                                                       "MODEL_FOLDER": trained_model, "OUTPUT_CLASSES": "TEMPORARY_OUTPUT"})
    assert not ok and "5 band(s)" in message and "expects 8" in message
    ok, message = _check("landfuse:classify_raster", {"INPUT_HSI": scene["hsi"], "MODEL_FOLDER": trained_model,
                                                       "OUTPUT_CLASSES": "TEMPORARY_OUTPUT"})
    assert not ok and "plus 1 auxiliary" in message
    with pytest.raises(QgsProcessingException):
        processing_mod.run("landfuse:classify_raster", {"INPUT_HSI": wrong, "AUX_LAYERS": [scene["dsm"]],
                                                         "MODEL_FOLDER": trained_model, "OUTPUT_CLASSES": "TEMPORARY_OUTPUT"})


@pytest.mark.skipif(not REAL_HSI.is_file(), reason="../shared/data/dfc2018_hsi_tile/testHSI.tif is absent")
def test_preflight_real_hsi_tile(processing_mod, trained_model, tmp_path):
    """The real 48-band DFC2018 tile vs the 8-band model; and an aux raster far away from it."""
    import numpy as np
    far = write_raster(tmp_path / "far.tif", np.ones((1, 10, 10), np.float32))  # UTM 33N, the tile is in 15N
    ok, message = _check("landfuse:classify_raster", {"INPUT_HSI": str(REAL_HSI), "AUX_LAYERS": [far],
                                                       "MODEL_FOLDER": trained_model, "OUTPUT_CLASSES": "TEMPORARY_OUTPUT"})
    assert not ok
    assert "48 band(s)" in message
    assert "does not overlap" in message


def test_backend_diagnostics(processing_mod, tmp_path):
    out = str(tmp_path / "diag.json")
    result = processing_mod.run("landfuse:backend_diagnostics", {"OUTPUT_JSON": out})
    assert "torch" in result["DIAGNOSTICS"].lower()
    assert result["BACKEND_PYTHON"] == os.environ[backend_env.ENV_VAR]
    assert json.load(open(out))["type"] == "result"


def test_diagnostics_dialog(qgis_iface):
    from landfuse.qgis_plugin.diagnostics_dialog import DiagnosticsDialog
    dialog = DiagnosticsDialog()
    task = dialog.start()
    wait_for(lambda: dialog.rerun_button.isEnabled(), 60)
    assert task.error is None
    dialog.copy()
    assert "LandFuse diagnostics" in QgsApplication.clipboard().text()
    dialog.deleteLater()


def _render_png(layers, path, size=400):
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(layers[0].crs())
    settings.setExtent(layers[0].extent())
    settings.setOutputSize(QSize(size, size))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    assert image.save(str(path))
    return image


def test_dock_driven_like_a_person(qgis_iface, qgis_new_project, trained_model, scene, tmp_path):
    from landfuse.qgis_plugin.dock import LandFuseDock
    hsi = QgsRasterLayer(scene["hsi"], "hsi", "gdal")
    dsm = QgsRasterLayer(scene["dsm"], "dsm", "gdal")
    QgsProject.instance().addMapLayers([hsi, dsm])
    dock = LandFuseDock(qgis_iface)
    dock.resize(420, 760)
    dock.show()
    try:
        dock.hsi_combo.setLayer(hsi)
        dock.aux_combo.setLayer(dsm)
        dock.aux_add.click()
        dock.select_model(trained_model)
        manifest = json.load(open(os.path.join(trained_model, "model.json")))
        names = [c["name"] for c in sorted(manifest["classes"], key=lambda c: c["value"])]
        colors = [c["color"].lower() for c in sorted(manifest["classes"], key=lambda c: c["value"])]
        assert "HSI: hsi — 8 bands" in dock.model_info.text() and names[0] in dock.model_info.text()
        dock.device_combo.setCurrentText("cpu")
        dock.tile_spin.setValue(32)
        out = str(tmp_path / "dock_classes.tif")
        dock.output_widget.setFilePath(out)
        dock.confidence_check.setChecked(True)
        finished = []
        dock.jobFinished.connect(finished.append)
        dock.run_button.click()
        assert dock.task is not None and dock.cancel_button.isEnabled()
        wait_for(lambda: finished, 120)
        task = finished[0]
        assert task.error is None, task.error and task.error.user_message()
        classes, conf = dock.result_layers
        assert classes.source() == out and conf is not None
        assert isinstance(classes.renderer(), QgsPalettedRasterRenderer)
        assert [c.label for c in classes.renderer().classes()] == names
        assert dock.progress.value() == 100
        # the choices persist in the project
        saved = type(dock.params()).load()
        assert saved.hsi_layer_id == hsi.id() and saved.aux_layer_ids == [dsm.id()] and saved.tile_size == 32
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert dock.grab().save(str(ARTIFACTS / "dock.png"))
        image = _render_png([classes], ARTIFACTS / "map.png")
        # left, middle and right thirds of the scene are classes 1, 2, 3
        assert [image.pixelColor(x, 200).name() for x in (60, 200, 340)] == colors
    finally:
        dock.teardown()
        dock.deleteLater()


def test_dock_preflight_refuses(qgis_iface, qgis_new_project, trained_model, scene, tmp_path):
    from landfuse.qgis_plugin.dock import LandFuseDock
    from qgis.core import Qgis
    wrong = QgsRasterLayer(make_scene(tmp_path, bands=5)["hsi"], "wrong", "gdal")
    QgsProject.instance().addMapLayer(wrong)
    dock = LandFuseDock(qgis_iface)
    try:
        qgis_iface.messageBar().clear_messages()
        dock.hsi_combo.setLayer(wrong)
        dock.select_model(trained_model)
        assert dock.run() is None
        warnings = qgis_iface.messageBar().get_messages(Qgis.Warning)
        assert any("5 band(s)" in m for m in warnings), warnings
        assert "Not started" in dock.log_view.toPlainText()
    finally:
        dock.teardown()
        dock.deleteLater()


def _training_call(scene, out):
    return BackendCall(os.environ[backend_env.ENV_VAR], "train",
                       ["--hsi", scene["hsi"], "--aux", scene["dsm"], "--labels", scene["labels"], "--arch", "tiny",
                        "--epochs", "50", "--device", "cpu", "--tile-size", "32", "--out", out])


def test_real_backend_cancel_within_two_seconds(scene, tmp_path):
    out = str(tmp_path / "cancelled_model")
    done = []
    task = BackendTask("train", _training_call(scene, out), done.append)
    # the first event comes once torch is loaded and the scene read: cancel in the middle of training
    task.backendEvent.connect(lambda e: task.cancel() if not task.isCanceled() else None)
    QgsApplication.taskManager().addTask(task)
    wait_for(lambda: task.isCanceled() or done, 120)
    t0 = time.monotonic()
    wait_for(lambda: done, 10)
    assert time.monotonic() - t0 < 2.0
    assert done[0].error is not None and done[0].error.cancelled
    assert not os.path.exists(os.path.join(out, "model.json"))


def test_real_backend_killed_is_reported(scene, tmp_path):
    done = []
    task = BackendTask("train", _training_call(scene, str(tmp_path / "killed")), done.append)
    killed = {}

    def kill(event):
        if not killed:
            killed["pid"] = task.pid
            os.kill(task.pid, signal.SIGKILL)

    task.backendEvent.connect(kill)
    QgsApplication.taskManager().addTask(task)
    wait_for(lambda: done, 120)
    error = done[0].error
    assert error is not None and error.code == CRASHED and "-9" in error.message
    QgsApplication.processEvents()  # QGIS is alive and responsive
    assert QgsProject.instance() is not None


@pytest.mark.skipif(shutil.which("qgis_process.bin") is None and shutil.which("qgis_process") is None,
                    reason="qgis_process is not installed")
def test_qgis_process_command_line(trained_model, scene, tmp_path):
    """The provider works from `qgis_process` (the plugin installed as `landfuse` in a fresh profile)."""
    import subprocess
    exe = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    os.symlink(ROOT, plugins / "landfuse")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"),
               QGIS_PLUGINPATH=str(plugins))
    enable = subprocess.run([exe, "plugins", "enable", "landfuse"], env=env, capture_output=True, text=True, timeout=120)
    assert enable.returncode == 0, enable.stderr[-2000:]
    out = str(tmp_path / "cli_classes.tif")
    run = subprocess.run([exe, "--json", "run", "landfuse:classify_raster", "--", f"INPUT_HSI={scene['hsi']}",
                          f"AUX_LAYERS={scene['dsm']}", f"MODEL_FOLDER={trained_model}", "DEVICE=1",
                          f"OUTPUT_CLASSES={out}"], env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-2000:])
    start = run.stdout.index("{")
    results = json.loads(run.stdout[start:])["results"]
    assert results["OUTPUT_CLASSES"] == out and os.path.isfile(out)
    assert results["CLASS_COUNT"] == 3


def test_classify_then_assess_as_a_graphical_model(processing_mod, trained_model, scene, tmp_path):
    """The algorithms chain in a Processing model (what the graphical modeler builds and runs)."""
    from qgis.core import (
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
    )
    static = QgsProcessingModelChildParameterSource.fromStaticValue
    model = QgsProcessingModelAlgorithm("classify and assess", "landfuse tests")
    classify = QgsProcessingModelChildAlgorithm("landfuse:classify_raster")
    classify.setChildId("classify")
    for name, value in (("INPUT_HSI", scene["hsi"]), ("AUX_LAYERS", [scene["dsm"]]), ("MODEL_FOLDER", trained_model),
                        ("DEVICE", 1), ("TILE_SIZE", 32)):
        classify.addParameterSources(name, [static(value)])
    model.addChildAlgorithm(classify)
    assess = QgsProcessingModelChildAlgorithm("landfuse:assess_accuracy")
    assess.setChildId("assess")
    assess.addParameterSources("INPUT_CLASSES", [QgsProcessingModelChildParameterSource.fromChildOutput(
        "classify", "OUTPUT_CLASSES")])
    report = str(tmp_path / "model_report.html")
    for name, value in (("REFERENCE_RASTER", scene["truth"]), ("OUTPUT_HTML", report), ("OPEN_REPORT", False)):
        assess.addParameterSources(name, [static(value)])
    model.addChildAlgorithm(assess)
    context = QgsProcessingContext()
    feedback = QgsProcessingFeedback()
    results, ok = model.run({}, context, feedback)
    assert ok, feedback.textLog()
    html = open(report).read()
    assert "Overall accuracy" in html and "Confusion matrix" in html


GENERIC = ROOT / "models" / "generic-landcover"
CASI_WAVELENGTHS = ROOT / "resources" / "wavelengths" / "casi1500_dfc2018_48.txt"


@pytest.mark.skipif(not REAL_HSI.is_file(), reason="../shared/data/dfc2018_hsi_tile/testHSI.tif is absent")
def test_generic_model_is_the_default_and_maps_a_real_tile_without_aux(processing_mod, tmp_path, qgis_new_project):
    """The product promise: a real tile of a sensor the model never saw, no labels, no DSM, a styled map."""
    assert os.path.samefile(models.default_model_dir(), GENERIC)
    ok, message = _check("landfuse:classify_raster", {"INPUT_HSI": str(REAL_HSI), "AUX_LAYERS": [],
                                                       "MODEL_FOLDER": str(GENERIC), "OUTPUT_CLASSES": "TEMPORARY_OUTPUT"})
    assert ok, message          # 48 bands vs a generic model: no band-count rule; the DSM is optional
    with pytest.raises(QgsProcessingException, match="wavelength"):
        processing_mod.run("landfuse:classify_raster", {"INPUT_HSI": str(REAL_HSI), "AUX_LAYERS": [],
                                                        "MODEL_FOLDER": str(GENERIC), "OUTPUT_CLASSES": str(tmp_path / "no.tif")})
    assert not (tmp_path / "no.tif").exists()
    out = str(tmp_path / "generic.tif")
    processing_mod.runAndLoadResults("landfuse:classify_raster", {
        "INPUT_HSI": str(REAL_HSI), "AUX_LAYERS": [], "MODEL_FOLDER": str(GENERIC),
        "WAVELENGTHS": str(CASI_WAVELENGTHS), "OUTPUT_CLASSES": out})
    QgsApplication.processEvents()
    loaded = [l for l in QgsProject.instance().mapLayers().values() if l.source() == out]
    assert loaded and isinstance(loaded[0].renderer(), QgsPalettedRasterRenderer)
    assert [c.label for c in loaded[0].renderer().classes()] == ["roof", "pavement", "low vegetation", "tree",
                                                                  "soil", "water"]


@pytest.mark.skipif(not REAL_HSI.is_file(), reason="../shared/data/dfc2018_hsi_tile/testHSI.tif is absent")
def test_the_map_is_the_same_at_every_tile_size_processing_offers(processing_mod, tmp_path):
    """Issue 17: the tile size changes memory and speed, never a pixel. A real 48-band scene mirrored out
    to 640×120 px (two of the network's 512 px windows across), classified by the generic model at the
    smallest, the default and the largest tile size Processing offers."""
    import numpy as np
    from osgeo import gdal
    real = gdal.Open(str(REAL_HSI)).ReadAsArray().astype(np.float32)              # (48, 100, 100)
    wide = np.concatenate([real, real[:, :, ::-1]] * 4, axis=2)[:, :, :640]
    hsi = write_raster(tmp_path / "wide.tif", np.concatenate([wide, wide[:, ::-1]], axis=1)[:, :120])
    maps = {}
    for tile in (16, 512, 4096):
        out = str(tmp_path / f"tile{tile}.tif")
        processing_mod.run("landfuse:classify_raster", {
            "INPUT_HSI": hsi, "AUX_LAYERS": [], "MODEL_FOLDER": str(GENERIC), "WAVELENGTHS": str(CASI_WAVELENGTHS),
            "DEVICE": 1, "TILE_SIZE": tile, "OUTPUT_CLASSES": out})
        maps[tile] = gdal.Open(out).ReadAsArray()
    assert maps[512].shape == (120, 640) and len(np.unique(maps[512])) > 1
    assert np.array_equal(maps[16], maps[512]) and np.array_equal(maps[4096], maps[512])
