"""landfuse:classify_batch in real QGIS: its parameters and argv (pinned), a run against the real
backend on a local Dask cluster (a folder of scenes with their DSMs and one corrupt file), and the
same algorithm as a step of a graphical model."""

import json
import os
import subprocess

import numpy as np
import pytest
from conftest import ROOT
from landfuse.qgis_plugin.backend_api import DEFAULT_TILE_SIZE
from landfuse.qgis_plugin.params import ClassifyBatchParams
from landfuse.qgis_plugin.processing.common import LandFuseAlgorithm
from qgis.core import (
    QgsApplication,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
)
from scenes import make_scene, write_raster

DEMO_TINY = str(ROOT / "models" / "demo-tiny")   # 64-band HSI + 1 aux


@pytest.fixture
def archive(tmp_path):
    """A folder of two 64-band scenes, each with its DSM beside it, and one corrupt 'scene'."""
    folder = tmp_path / "archive"
    for name, seed in (("north", 1), ("south", 2)):
        sub = tmp_path / name
        sub.mkdir()
        scene = make_scene(sub, seed=seed, bands=64)
        folder.mkdir(exist_ok=True)
        os.replace(scene["hsi"], folder / f"{name}.tif")
        os.replace(scene["dsm"], folder / f"{name}_dsm.tif")
    (folder / "broken.tif").write_bytes(b"II*\x00" + b"\x00" * 64)
    write_raster(folder / "broken_dsm.tif", np.ones((1, 8, 8), np.float32))
    return folder


def test_parameters_and_argv(registry, monkeypatch, tmp_path):
    alg = registry.createAlgorithmById("landfuse:classify_batch")
    names = [p.name() for p in alg.parameterDefinitions()]
    assert names == ["INPUT_RASTERS", "INPUT_FOLDER", "AUX_LAYERS", "AUX_PATTERN", "MODEL_FOLDER", "DEVICE",
                     "WRITE_CONFIDENCE", "SCHEDULER", "WORKERS", "TILE_SIZE", "LOAD_MAPS", "OUTPUT_FOLDER",
                     "MIN_CONFIDENCE"]
    assert [o.name() for o in alg.outputDefinitions()] == [
        "OUTPUT_FOLDER", "OUTPUT_SUMMARY", "OUTPUT_MAPS", "SCENES_OK", "SCENES_FAILED", "SCENES_SKIPPED"]
    calls = []
    monkeypatch.setattr(LandFuseAlgorithm, "run_backend", lambda self, command, args, feedback: calls.append(
        (command, list(args))) or {"outputs": {"summary": str(tmp_path / "s.json")}})
    (tmp_path / "s.json").write_text(json.dumps({"scenes": [], "totals": {}}))
    hsi = make_scene(tmp_path)["hsi"]
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    alg.run({"INPUT_RASTERS": [hsi], "INPUT_FOLDER": str(tmp_path), "AUX_PATTERN": "{stem}_dsm.tif; {stem}_sar.tif",
             "MODEL_FOLDER": DEMO_TINY, "DEVICE": 1, "SCHEDULER": "tcp://10.0.0.5:8786", "WRITE_CONFIDENCE": True,
             "OUTPUT_FOLDER": str(tmp_path / "maps")}, context, QgsProcessingFeedback())
    assert calls == [("classify-batch", [
        "--inputs", hsi, str(tmp_path), "--aux-pattern", "{stem}_dsm.tif", "--aux-pattern", "{stem}_sar.tif",
        "--model", DEMO_TINY, "--out-dir", str(tmp_path / "maps"), "--device", "cpu",
        "--tile-size", str(DEFAULT_TILE_SIZE), "--scheduler", "tcp://10.0.0.5:8786", "--confidence",
        "--allow-failures"])]
    assert ClassifyBatchParams(inputs=["a.tif"], model_dir="m", out_dir="d", aux=["dsm.tif"], workers=3,
                               tile_size=256.0, min_confidence=0.6).backend_args() == [
        "--inputs", "a.tif", "--aux", "dsm.tif", "--model", "m", "--out-dir", "d", "--device", "auto",
        "--tile-size", "256", "--workers", "3", "--min-confidence", "0.6", "--allow-failures"]


def test_preflight_refuses_no_inputs_and_mixed_aux(registry, tmp_path):
    alg = registry.createAlgorithmById("landfuse:classify_batch")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    ok, message = alg.checkParameterValues({"MODEL_FOLDER": DEMO_TINY, "OUTPUT_FOLDER": str(tmp_path)}, context)
    assert not ok and "folder of them" in message
    hsi = make_scene(tmp_path)["hsi"]
    ok, message = alg.checkParameterValues({"INPUT_RASTERS": [hsi], "AUX_LAYERS": [hsi], "AUX_PATTERN": "{stem}_d.tif",
                                            "MODEL_FOLDER": DEMO_TINY, "SCHEDULER": "nonsense",
                                            "OUTPUT_FOLDER": str(tmp_path)}, context)
    assert not ok and "not both" in message and "tcp://host:8786" in message


def test_folder_on_a_local_cluster_with_the_real_backend(registry, backend_python, archive, tmp_path,
                                                         qgis_new_project, monkeypatch):
    import processing
    from landfuse.qgis_plugin import backend_env
    monkeypatch.setenv(backend_env.ENV_VAR, backend_python)
    out = str(tmp_path / "maps")
    params = {"INPUT_FOLDER": str(archive), "AUX_PATTERN": "{stem}_dsm.tif", "MODEL_FOLDER": DEMO_TINY, "DEVICE": 1,
              "WORKERS": 2, "TILE_SIZE": 32, "WRITE_CONFIDENCE": True, "OUTPUT_FOLDER": out}
    result = processing.runAndLoadResults("landfuse:classify_batch", params)
    assert (result["SCENES_OK"], result["SCENES_FAILED"], result["SCENES_SKIPPED"]) == (2, 1, 0)
    assert sorted(os.path.basename(p) for p in result["OUTPUT_MAPS"]) == ["north_classes.tif", "south_classes.tif"]
    assert all(os.path.isfile(os.path.join(out, f"{n}_confidence.tif")) for n in ("north", "south"))
    summary = json.load(open(result["OUTPUT_SUMMARY"]))
    broken = [s for s in summary["scenes"] if s["name"] == "broken"][0]
    assert broken["status"] == "failed" and broken["error"]["code"] == "input_unreadable"
    QgsApplication.processEvents()
    loaded = [l for l in QgsProject.instance().mapLayers().values() if l.source() in result["OUTPUT_MAPS"]]
    assert len(loaded) == 2 and all(isinstance(l.renderer(), QgsPalettedRasterRenderer) for l in loaded)
    manifest = json.load(open(os.path.join(DEMO_TINY, "model.json")))
    assert {c.label for c in loaded[0].renderer().classes()} == {c["name"] for c in manifest["classes"]}
    # A second run (a batch-mode row repeated) skips what is done.
    again = processing.run("landfuse:classify_batch", dict(params, LOAD_MAPS=False))
    assert (again["SCENES_OK"], again["SCENES_FAILED"], again["SCENES_SKIPPED"]) == (0, 1, 2)


def test_as_a_step_of_a_graphical_model(registry, backend_python, archive, tmp_path, monkeypatch):
    import processing
    from landfuse.qgis_plugin import backend_env
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterFile,
    )
    monkeypatch.setenv(backend_env.ENV_VAR, backend_python)
    model = QgsProcessingModelAlgorithm("batch maps", "tests")
    model.addModelParameter(QgsProcessingParameterFile("scenes", "Scenes", QgsProcessingParameterFile.Folder),
                            QgsProcessingModelParameter("scenes"))
    child = QgsProcessingModelChildAlgorithm("landfuse:classify_batch")
    child.setChildId("classify")
    child.addParameterSources("INPUT_FOLDER", [QgsProcessingModelChildParameterSource.fromModelParameter("scenes")])
    for name, value in (("AUX_PATTERN", "{stem}_dsm.tif"), ("MODEL_FOLDER", DEMO_TINY), ("DEVICE", 1),
                        ("WORKERS", 1), ("TILE_SIZE", 32), ("LOAD_MAPS", False), ("WRITE_CONFIDENCE", False)):
        child.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    output = QgsProcessingModelOutput("maps", "Maps folder")
    output.setChildOutputName("OUTPUT_FOLDER")
    output.setChildId("classify")
    child.setModelOutputs({"maps": output})
    model.addChildAlgorithm(child)
    assert model.validate()[0], model.validate()[1]     # no MIN_CONFIDENCE: as a model saved before it existed
    out = str(tmp_path / "model_maps")
    result = processing.run(model, {"scenes": str(archive), "classify:maps": out})
    assert result["classify:maps"] == out
    assert sorted(f for f in os.listdir(out) if f.endswith("_classes.tif")) == ["north_classes.tif", "south_classes.tif"]


def test_backend_parses_the_argv(backend_python):
    """The backend's own argparse reads what ClassifyBatchParams sends."""
    argv = ClassifyBatchParams(inputs=["a.tif", "dir"], model_dir="m", out_dir="d", aux=["x.tif", "y.tif"],
                               scheduler="tcp://h:8786", confidence=True).backend_args()
    code = ("import json, sys\nfrom backend.cli import build_parser\n"
            "print(json.dumps(vars(build_parser().parse_args(['classify-batch'] + sys.argv[1:]))))")
    out = subprocess.run([backend_python, "-c", code] + argv, capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr[-2000:]
    parsed = json.loads(out.stdout)
    assert parsed["inputs"] == ["a.tif", "dir"] and parsed["aux"] == [["x.tif"], ["y.tif"]]
    assert parsed["scheduler"] == "tcp://h:8786" and parsed["confidence"] and parsed["allow_failures"]
