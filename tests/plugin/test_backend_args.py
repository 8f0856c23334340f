"""The backend argv each job sends, pinned: the Processing algorithms and the dock build it through
the job dataclasses of `qgis_plugin/params.py`, and it must stay what users' runs have always sent.
Also pinned: the Processing parameters themselves (users' batch files and models name them), and
that the params module is pure Python (no qgis), so its argv can be unit-tested anywhere.

No backend job runs here: `run_backend` is replaced by a recorder (only the backend's argument
parser is asked, once, how it reads the dock's former argument order)."""

import os
import re
import subprocess
import sys

import pytest
from landfuse.qgis_plugin.backend_api import DEFAULT_TILE_SIZE
from landfuse.qgis_plugin.models import default_model_dir
from landfuse.qgis_plugin.processing.common import LandFuseAlgorithm
from qgis.core import (
    QgsFeature,
    QgsGeometry,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from scenes import label_polygons_wkt, make_scene, write_raster

# A label GeoPackage exported to a fresh temporary folder: its path differs on every run.
EXPORTED = re.compile(r".*[/\\](landfuse_labels|landfuse_reference)_[^/\\]+[/\\]\1\.gpkg$")


@pytest.fixture
def inputs(tmp_path, qgis_new_project):
    import numpy as np
    scene = make_scene(tmp_path)
    scene["sar"] = write_raster(tmp_path / "sar.tif", np.ones((2, scene["size"], scene["size"]), np.float32))
    labels = QgsVectorLayer("Polygon?crs=EPSG:32633&field=kind:integer", "drawn", "memory")
    features = []
    for value, wkt in label_polygons_wkt():
        feature = QgsFeature(labels.fields())
        feature.setGeometry(QgsGeometry.fromWkt(wkt))
        feature.setAttributes([value])
        features.append(feature)
    labels.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(labels)
    scene["vector"] = labels
    scene["model"] = str(tmp_path / "some-model")
    scene["out"] = str(tmp_path / "out")
    return scene


def backend_argv(registry, monkeypatch, alg_id, parameters, result=None):
    """(command, argv) that the algorithm hands to the backend, with exported label paths named."""
    calls = []

    def record(self, command, args, feedback):
        calls.append((command, list(args)))
        return dict(result or {})

    monkeypatch.setattr(LandFuseAlgorithm, "run_backend", record)
    alg = registry.createAlgorithmById(alg_id)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    feedback = QgsProcessingFeedback()
    assert alg.prepareAlgorithm(parameters, context, feedback)
    alg.processAlgorithm(parameters, context, feedback)
    assert len(calls) == 1
    command, args = calls[0]
    return command, [f"<{EXPORTED.match(a).group(1)}.gpkg>" if EXPORTED.match(a) else a for a in args]


# --- classify -------------------------------------------------------------------------------------

def test_classify_raster_argv_everything(registry, monkeypatch, inputs):
    s = inputs
    out, conf = s["out"] + ".tif", s["out"] + "_conf.tif"
    command, args = backend_argv(registry, monkeypatch, "landfuse:classify_raster", {
        "INPUT_HSI": s["hsi"], "AUX_LAYERS": [s["dsm"], s["sar"]], "MODEL_FOLDER": s["model"], "DEVICE": 2,
        "WAVELENGTHS": " 400,500,600 ", "TILE_SIZE": 256, "OUTPUT_CLASSES": out, "OUTPUT_CONFIDENCE": conf},
        {"outputs": {"classes": out}, "class_table": []})
    assert command == "classify"
    assert args == ["--hsi", s["hsi"], "--aux", s["dsm"], "--aux", s["sar"], "--model", s["model"], "--out", out,
                    "--device", "cuda", "--tile-size", "256", "--wavelengths", "400,500,600", "--confidence", conf]


def test_classify_raster_argv_defaults(registry, monkeypatch, inputs):
    s = inputs
    out = s["out"] + ".tif"
    command, args = backend_argv(registry, monkeypatch, "landfuse:classify_raster", {
        "INPUT_HSI": s["hsi"], "MODEL_FOLDER": s["model"], "OUTPUT_CLASSES": out},
        {"outputs": {"classes": out}, "class_table": []})
    assert command == "classify"
    assert args == ["--hsi", s["hsi"], "--model", s["model"], "--out", out, "--device", "auto",
                    "--tile-size", str(DEFAULT_TILE_SIZE)]


def test_classify_raster_argv_min_confidence(registry, monkeypatch, inputs):
    s = inputs
    out = s["out"] + ".tif"
    command, args = backend_argv(registry, monkeypatch, "landfuse:classify_raster", {
        "INPUT_HSI": s["hsi"], "MODEL_FOLDER": s["model"], "OUTPUT_CLASSES": out, "MIN_CONFIDENCE": 0.65},
        {"outputs": {"classes": out}, "class_table": []})
    assert args == ["--hsi", s["hsi"], "--model", s["model"], "--out", out, "--device", "auto",
                    "--tile-size", str(DEFAULT_TILE_SIZE), "--min-confidence", "0.65"]
    alg = registry.createAlgorithmById("landfuse:classify_raster")
    definition = alg.parameterDefinition("MIN_CONFIDENCE")
    assert (definition.minimum(), definition.maximum()) == (0.0, 0.99)
    assert definition.dataType() == definition.Double and "unclassified" in definition.help()
    assert definition.checkValueIsAcceptable(0.5) and not definition.checkValueIsAcceptable(1.0)


# --- train / finetune -----------------------------------------------------------------------------

def test_train_model_argv_vector_labels(registry, monkeypatch, inputs):
    s = inputs
    command, args = backend_argv(registry, monkeypatch, "landfuse:train_model", {
        "INPUT_HSI": s["hsi"], "AUX_LAYERS": [s["dsm"], s["sar"]], "LABELS_VECTOR": s["vector"],
        "CLASS_FIELD": "kind", "ARCHITECTURE": 1, "EPOCHS": 3, "DEVICE": 1, "SEED": 7, "MODEL_NAME": "my model",
        "TILE_SIZE": 32, "OUTPUT_MODEL": s["out"]}, {"outputs": {"model": ""}})
    assert command == "train"
    assert args == ["--hsi", s["hsi"], "--aux", s["dsm"], "--aux", s["sar"],
                    "--labels", "<landfuse_labels.gpkg>", "--class-field", "class", "--out", s["out"],
                    "--device", "cpu", "--epochs", "3", "--name", "my model", "--tile-size", "32",
                    "--arch", "bdgf", "--seed", "7"]


def test_train_model_argv_label_raster_defaults(registry, monkeypatch, inputs):
    s = inputs
    command, args = backend_argv(registry, monkeypatch, "landfuse:train_model", {
        "INPUT_HSI": s["hsi"], "LABELS_RASTER": s["labels"], "OUTPUT_MODEL": s["out"]}, {"outputs": {"model": ""}})
    assert command == "train"
    assert args == ["--hsi", s["hsi"], "--labels", s["labels"], "--out", s["out"], "--device", "auto",
                    "--tile-size", "64", "--arch", "m3amba", "--seed", "0"]


def test_finetune_model_argv_vector_labels(registry, monkeypatch, inputs):
    s = inputs
    command, args = backend_argv(registry, monkeypatch, "landfuse:finetune_model", {
        "MODEL_FOLDER": s["model"], "INPUT_HSI": s["hsi"], "AUX_LAYERS": [s["dsm"], s["sar"]],
        "LABELS_VECTOR": s["vector"], "CLASS_FIELD": "kind", "EPOCHS": 2, "DEVICE": 2, "SEED": 3,
        "MODEL_NAME": "tuned", "TILE_SIZE": 48, "OUTPUT_MODEL": s["out"]}, {"outputs": {"model": ""}})
    assert command == "finetune"
    assert args == ["--hsi", s["hsi"], "--aux", s["dsm"], "--aux", s["sar"],
                    "--labels", "<landfuse_labels.gpkg>", "--class-field", "class", "--out", s["out"],
                    "--device", "cuda", "--epochs", "2", "--name", "tuned", "--tile-size", "48",
                    "--model", s["model"], "--seed", "3"]


def test_finetune_model_argv_label_raster_defaults(registry, monkeypatch, inputs):
    s = inputs
    command, args = backend_argv(registry, monkeypatch, "landfuse:finetune_model", {
        "MODEL_FOLDER": s["model"], "INPUT_HSI": s["hsi"], "LABELS_RASTER": s["labels"],
        "OUTPUT_MODEL": s["out"]}, {"outputs": {"model": ""}})
    assert command == "finetune"
    assert args == ["--hsi", s["hsi"], "--labels", s["labels"], "--out", s["out"], "--device", "auto",
                    "--tile-size", "64", "--model", s["model"], "--seed", "0"]


# --- assess (backend `evaluate`) -----------------------------------------------------------------

def test_assess_accuracy_argv_raster_reference(registry, monkeypatch, inputs):
    s = inputs
    html = s["out"] + ".html"
    command, args = backend_argv(registry, monkeypatch, "landfuse:assess_accuracy", {
        "INPUT_CLASSES": s["truth"], "REFERENCE_RASTER": s["labels"], "OUTPUT_HTML": html}, {"metrics": {}})
    assert command == "evaluate"
    assert args == ["--prediction", s["truth"], "--reference", s["labels"], "--out-html", html]


def test_assess_accuracy_argv_vector_reference_and_json(registry, monkeypatch, inputs):
    s = inputs
    html, report = s["out"] + ".html", s["out"] + ".json"
    command, args = backend_argv(registry, monkeypatch, "landfuse:assess_accuracy", {
        "INPUT_CLASSES": s["truth"], "REFERENCE_VECTOR": s["vector"], "REFERENCE_FIELD": "kind",
        "OUTPUT_HTML": html, "OUTPUT_JSON": report}, {"metrics": {}})
    assert command == "evaluate"
    assert args == ["--prediction", s["truth"], "--reference", "<landfuse_reference.gpkg>", "--class-field", "class",
                    "--out-html", html, "--out-json", report]


# --- the Processing parameters users' batch files and models refer to -----------------------------

def _definitions(alg):
    from qgis.core import QgsProcessingParameterDefinition as Definition
    params = [(p.name(), p.type(), p.defaultValue(), bool(p.flags() & Definition.FlagOptional),
               bool(p.flags() & Definition.FlagAdvanced)) for p in alg.parameterDefinitions()]
    return params, [(o.name(), o.type()) for o in alg.outputDefinitions()]


def test_processing_parameters_unchanged(registry):
    model = default_model_dir() or None
    inputs = [("INPUT_HSI", "raster", None, False, False), ("AUX_LAYERS", "multilayer", None, True, False)]
    labels = [("LABELS_VECTOR", "vector", None, True, False), ("CLASS_FIELD", "field", None, True, False),
              ("LABELS_RASTER", "raster", None, True, False)]
    training = [("EPOCHS", "number", None, True, False), ("DEVICE", "enum", 0, False, False),
                ("SEED", "number", 0, False, False), ("MODEL_NAME", "string", None, True, False),
                ("TILE_SIZE", "number", 64, False, True), ("OUTPUT_MODEL", "folderDestination", None, False, False)]
    training_outputs = [("OUTPUT_MODEL", "outputFolder"), ("OVERALL_ACCURACY", "outputNumber")]
    expected = {
        "landfuse:classify_raster": (
            inputs + [("MODEL_FOLDER", "file", model, False, False), ("DEVICE", "enum", 0, False, False),
                      ("WAVELENGTHS_FILE", "file", None, True, False),
                      ("WAVELENGTHS", "string", None, True, True),
                      ("TILE_SIZE", "number", DEFAULT_TILE_SIZE, False, True),
                      ("OUTPUT_CLASSES", "rasterDestination", None, False, False),
                      ("OUTPUT_CONFIDENCE", "rasterDestination", None, True, False),
                      ("MIN_CONFIDENCE", "number", 0.0, True, False)],
            [("OUTPUT_CLASSES", "outputRaster"), ("OUTPUT_CONFIDENCE", "outputRaster"),
             ("CLASS_COUNT", "outputNumber")]),
        "landfuse:train_model": (
            inputs + labels + [("ARCHITECTURE", "enum", 0, False, False)] + training, training_outputs),
        "landfuse:finetune_model": (
            [("MODEL_FOLDER", "file", model, False, False)] + inputs + labels + training, training_outputs),
        "landfuse:assess_accuracy": (
            [("INPUT_CLASSES", "raster", None, False, False), ("REFERENCE_RASTER", "raster", None, True, False),
             ("REFERENCE_VECTOR", "vector", None, True, False), ("REFERENCE_FIELD", "field", None, True, False),
             ("OPEN_REPORT", "boolean", False, False, False),
             ("OUTPUT_HTML", "fileDestination", None, False, False),
             ("OUTPUT_JSON", "fileDestination", None, True, False)],
            [("OUTPUT_HTML", "outputHtml"), ("OUTPUT_JSON", "outputFile"), ("OVERALL_ACCURACY", "outputNumber"),
             ("AVERAGE_ACCURACY", "outputNumber"), ("KAPPA", "outputNumber")]),
        "landfuse:backend_diagnostics": (
            [("OUTPUT_JSON", "fileDestination", None, True, False)],
            [("OUTPUT_JSON", "outputFile"), ("DIAGNOSTICS", "outputString"), ("BACKEND_PYTHON", "outputString")]),
    }
    for alg_id, want in expected.items():
        alg = registry.createAlgorithmById(alg_id)
        assert _definitions(alg) == want, alg_id
    for alg_id in ("landfuse:classify_raster", "landfuse:train_model", "landfuse:finetune_model"):
        alg = registry.createAlgorithmById(alg_id)  # held: the definitions belong to it
        assert alg.parameterDefinition("DEVICE").options() == ["auto", "cpu", "cuda"]
    alg = registry.createAlgorithmById("landfuse:train_model")
    # new architectures join at the end: batch files hold the index
    assert alg.parameterDefinition("ARCHITECTURE").options() == ["m3amba", "bdgf", "tiny", "spectral"]
    for alg_id, field, parent in (("landfuse:train_model", "CLASS_FIELD", "LABELS_VECTOR"),
                                  ("landfuse:finetune_model", "CLASS_FIELD", "LABELS_VECTOR"),
                                  ("landfuse:assess_accuracy", "REFERENCE_FIELD", "REFERENCE_VECTOR")):
        alg = registry.createAlgorithmById(alg_id)
        assert alg.parameterDefinition(field).parentLayerParameterName() == parent


# --- the dock: its settings resolve to the same ClassifyParams ------------------------------------

def _parsed_by_backend(backend_python, argv):
    """The real backend's argparse namespace for `argv` (backend/cli.py imports no torch)."""
    import json

    from conftest import ROOT
    from landfuse.qgis_plugin.backend_launch import clean_environment
    code = ("import json, sys\nfrom backend.cli import build_parser\n"
            "print(json.dumps(vars(build_parser().parse_args(sys.argv[1:]))))")
    out = subprocess.run([backend_python, "-c", code] + argv, capture_output=True, text=True, timeout=60,
                         cwd=str(ROOT), env=clean_environment(os.environ))
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_dock_classify_argv(qgis_iface, inputs):
    from landfuse.qgis_plugin.dock import LandFuseDock
    s = inputs
    hsi, dsm, sar = (QgsRasterLayer(s[k], k, "gdal") for k in ("hsi", "dsm", "sar"))
    QgsProject.instance().addMapLayers([hsi, dsm, sar])
    model = s["model"]     # not a package: the argv does not care, only preflight would
    dock = LandFuseDock(qgis_iface)
    try:
        dock.hsi_combo.setLayer(hsi)
        for layer in (dsm, sar):
            dock.aux_combo.setLayer(layer)
            dock.aux_add.click()
        dock.select_model(model)
        dock.device_combo.setCurrentText("cuda")
        dock.tile_spin.setValue(256)
        out = s["out"] + ".tif"
        dock.output_widget.setFilePath(out)
        dock.confidence_check.setChecked(True)
        job = dock.params().classify_params()
        conf = s["out"] + "_confidence.tif"
        assert job.command == "classify"
        assert job.backend_args() == ["--hsi", s["hsi"], "--aux", s["dsm"], "--aux", s["sar"], "--model", model,
                                      "--out", out, "--device", "cuda", "--tile-size", "256", "--confidence", conf]

        dock.aux_list.clear()
        dock.output_widget.setFilePath("")
        dock.confidence_check.setChecked(False)
        dock.device_combo.setCurrentText("auto")
        dock.tile_spin.setValue(DEFAULT_TILE_SIZE)
        args = dock.params().classify_params().backend_args()
        assert args[:4] == ["--hsi", s["hsi"], "--model", model] and args[4] == "--out"
        assert args[5].endswith(".tif") and not os.path.exists(args[5])    # a fresh temporary file
        assert args[6:] == ["--device", "auto", "--tile-size", str(DEFAULT_TILE_SIZE)]
    finally:
        dock.teardown()
        dock.deleteLater()


def test_dock_min_confidence_is_sent_and_saved(qgis_iface, inputs):
    from landfuse.qgis_plugin.dock import LandFuseDock
    from landfuse.qgis_plugin.dock_settings import DockSettings
    s = inputs
    hsi = QgsRasterLayer(s["hsi"], "hsi", "gdal")
    QgsProject.instance().addMapLayer(hsi)
    dock = LandFuseDock(qgis_iface)
    try:
        assert dock.min_confidence_spin.value() == 0.0 and dock.min_confidence_spin.text() == "off"
        dock.hsi_combo.setLayer(hsi)
        dock.select_model(s["model"])
        dock.output_widget.setFilePath(s["out"] + ".tif")
        assert "--min-confidence" not in dock.params().classify_params().backend_args()    # off by default
        dock.min_confidence_spin.setValue(0.6)
        settings = dock.params()
        assert settings.min_confidence == 0.6
        assert settings.classify_params().backend_args()[-2:] == ["--min-confidence", "0.6"]
        settings.save()
        assert QgsProject.instance().readDoubleEntry("LandFuse", "classify/min_confidence")[0] == 0.6
        assert DockSettings.load().min_confidence == 0.6
        dock.task_combo.setCurrentIndex(dock.task_combo.findData("train"))
        assert dock.min_confidence_spin.isHidden()          # a classify option only
        dock.task_combo.setCurrentIndex(dock.task_combo.findData("classify"))
        assert not dock.min_confidence_spin.isHidden()
    finally:
        dock.teardown()
        dock.deleteLater()
    again = LandFuseDock(qgis_iface)        # a new dock reads the project's settings
    try:
        assert again.min_confidence_spin.value() == pytest.approx(0.6)
    finally:
        again.teardown()
        again.deleteLater()
    QgsProject.instance().writeEntryDouble("LandFuse", "classify/min_confidence", 1.5)
    assert DockSettings.load().min_confidence == 0.0      # out of range in a project: off


def test_dock_argv_reads_as_it_did(backend_python):
    """Until the job classes, the dock put --aux after --tile-size (Processing, before --model):
    the dock now sends Processing's order, which the backend reads exactly alike."""
    from landfuse.qgis_plugin.params import ClassifyParams
    job = ClassifyParams(hsi="h.tif", aux=["dsm.tif", "sar.tif"], model_dir="m", out="o.tif", device="cuda",
                         tile_size=256, confidence="o_confidence.tif")
    before = ["--hsi", "h.tif", "--model", "m", "--out", "o.tif", "--device", "cuda", "--tile-size", "256",
              "--aux", "dsm.tif", "--aux", "sar.tif", "--confidence", "o_confidence.tif"]
    assert job.backend_args() != before
    assert (_parsed_by_backend(backend_python, ["classify"] + job.backend_args())
            == _parsed_by_backend(backend_python, ["classify"] + before))


def test_dock_settings_read_from_saved_projects(inputs):
    """Projects saved before hold `LandFuse/classify/<field>`: they still load."""
    from landfuse.qgis_plugin.dock_settings import DockSettings
    project = QgsProject.instance()
    for key, value in (("hsi_layer_id", "hsi_1"), ("model_dir", "/models/x"), ("device", "cpu"),
                       ("output_path", "/out/classes.tif")):
        project.writeEntry("LandFuse", f"classify/{key}", value)
    project.writeEntry("LandFuse", "classify/aux_layer_ids", ["dsm_1", "sar_1"])
    project.writeEntryBool("LandFuse", "classify/confidence", False)
    project.writeEntry("LandFuse", "classify/tile_size", 128)
    assert DockSettings.load() == DockSettings("hsi_1", ["dsm_1", "sar_1"], "/models/x", "cpu", "/out/classes.tif",
                                               False, 128)
    DockSettings(device="cuda", tile_size=64).save()
    assert project.readEntry("LandFuse", "classify/device")[0] == "cuda"
    assert project.readNumEntry("LandFuse", "classify/tile_size")[0] == 64


# --- the job classes alone (pure Python) ----------------------------------------------------------

def test_params_module_imports_no_qgis(plugin_root):
    """In a fresh interpreter that could import qgis: the params module does not, and works."""
    code = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("landfuse", {str(plugin_root / '__init__.py')!r},
                                              submodule_search_locations=[{str(plugin_root)!r}])
mod = importlib.util.module_from_spec(spec); sys.modules["landfuse"] = mod; spec.loader.exec_module(mod)
from landfuse.qgis_plugin.params import ClassifyParams
args = ClassifyParams(hsi="h.tif", model_dir="m", out="o.tif").backend_args()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("qgis", "PyQt5", "sip", "osgeo"))
print("LOADED", loaded, args[:2])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LOADED [] ['--hsi', 'h.tif']" in out.stdout, out.stdout


def test_job_classes_argv():
    from landfuse.qgis_plugin.params import ClassifyParams, EvaluateParams, FinetuneParams, TrainParams
    assert ClassifyParams(hsi="h", model_dir="m", out="o", aux=["a", "b"], device="cpu", tile_size=128.0,
                          confidence="c", wavelengths="w.txt").backend_args() == [
        "--hsi", "h", "--aux", "a", "--aux", "b", "--model", "m", "--out", "o", "--device", "cpu",
        "--tile-size", "128", "--wavelengths", "w.txt", "--confidence", "c"]
    assert ClassifyParams(hsi="h", model_dir="m", out="o", confidence="", wavelengths="").backend_args() == [
        "--hsi", "h", "--model", "m", "--out", "o", "--device", "auto", "--tile-size", str(DEFAULT_TILE_SIZE)]
    assert ClassifyParams(hsi="h", model_dir="m", out="o", confidence="c", min_confidence=0.5).backend_args()[-4:] == [
        "--confidence", "c", "--min-confidence", "0.5"]
    assert "--min-confidence" not in ClassifyParams(hsi="h", model_dir="m", out="o", min_confidence=0.0).backend_args()
    shared = dict(hsi="h", labels="l.gpkg", out="o", aux=["a", "b"], class_field="class", device="cuda",
                  epochs=5, name="n", tile_size=32, seed=9)
    middle = ["--hsi", "h", "--aux", "a", "--aux", "b", "--labels", "l.gpkg", "--class-field", "class", "--out", "o",
              "--device", "cuda", "--epochs", "5", "--name", "n", "--tile-size", "32"]
    assert TrainParams(arch="tiny", **shared).backend_args() == middle + ["--arch", "tiny", "--seed", "9"]
    assert FinetuneParams(model_dir="m", **shared).backend_args() == middle + ["--model", "m", "--seed", "9"]
    assert TrainParams(hsi="h", labels="l.tif", out="o").backend_args() == [
        "--hsi", "h", "--labels", "l.tif", "--out", "o", "--device", "auto", "--tile-size", "64",
        "--arch", "m3amba", "--seed", "0"]
    assert FinetuneParams(hsi="h", labels="l.tif", out="o", model_dir="m", epochs=0).backend_args() == [
        "--hsi", "h", "--labels", "l.tif", "--out", "o", "--device", "auto", "--epochs", "0", "--tile-size", "64",
        "--model", "m", "--seed", "0"]
    assert (TrainParams.command, FinetuneParams.command, ClassifyParams.command, EvaluateParams.command) == (
        "train", "finetune", "classify", "evaluate")
    assert EvaluateParams(prediction="p", reference="r", out_html="h.html").backend_args() == [
        "--prediction", "p", "--reference", "r", "--out-html", "h.html"]
    assert EvaluateParams(prediction="p", reference="r.gpkg", out_html="h.html", class_field="class",
                          out_json="j.json").backend_args() == [
        "--prediction", "p", "--reference", "r.gpkg", "--class-field", "class", "--out-html", "h.html",
        "--out-json", "j.json"]


def test_the_plugin_offers_exactly_the_backends_architectures():
    # The plugin keeps its own tuple because its order is public (Processing stores the enum index),
    # but it must name the same architectures as the backend's registry.
    from landfuse.backend import nets
    from landfuse.qgis_plugin.params import ARCHITECTURES
    assert set(ARCHITECTURES) == set(nets.ARCHITECTURES)
