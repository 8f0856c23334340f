"""The plugin zip installs like a user would install it: built by scripts/package_plugin.py, accepted by
scripts/validate_plugin.py's checks, unzipped into a fresh QGIS profile's plugins folder, enabled with
`qgis_process plugins enable landfuse`, listed by `qgis_process list`, and
`qgis_process run landfuse:classify_raster` classifies the synthetic demo scene with the bundled
`models/demo-tiny` package.

Everything runs in separate qgis_process processes against the unzipped copy: nothing is imported from
the checkout. The unzipped plugin has no `.venv`, so the backend Python comes from
LANDFUSE_BACKEND_PYTHON (the `backend_python` fixture), as a managed install would set it.

qgis_process 3.22 notes: with QGIS_CUSTOM_CONFIG_PATH=<dir> the profile is <dir>/profiles/default and
plugins are read from <dir>/profiles/default/python/plugins/. Parameters are given as `--NAME=value`
(a multiple-layer parameter repeats `--AUX_LAYERS=path`); do not mix that with a bare `--` separator,
after which `--NAME=value` is not recognised and the parameter is silently dropped.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

PLUGIN = "landfuse"
MODEL_ID = "demo-tiny"
ALGORITHMS = {f"{PLUGIN}:{name}" for name in
              ("classify_raster", "classify_batch", "train_model", "finetune_model", "assess_accuracy",
               "backend_diagnostics")}


def _load_script(name):
    spec = importlib.util.spec_from_file_location(f"_landfuse_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _qgis_process():
    for name in ("qgis_process.bin", "qgis_process"):
        path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.isfile(f"/usr/bin/{name}") else None)
        if path:
            return path
    return None


class Install:
    """A fresh QGIS profile with the unzipped plugin, and qgis_process run against it."""

    def __init__(self, base, zip_path, backend_python):
        self.base = Path(base)
        self.zip_path = Path(zip_path)
        self.config = self.base / "qgis-config"
        self.plugins_dir = self.config / "profiles" / "default" / "python" / "plugins"
        self.plugin_dir = self.plugins_dir / PLUGIN
        self.exe = _qgis_process()
        runtime = self.base / "xdg-runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(self.config),
                   XDG_RUNTIME_DIR=str(runtime), LANDFUSE_BACKEND_PYTHON=backend_python)
        self.env = env

    def unzip(self):
        self.plugins_dir.mkdir(parents=True)
        with zipfile.ZipFile(self.zip_path) as zf:
            zf.extractall(self.plugins_dir)

    def run(self, *args, timeout=120):
        proc = subprocess.run([self.exe, *args], env=self.env, cwd=str(self.base), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
        return proc

    def run_json(self, *args, timeout=120):
        proc = self.run("--json", *args, timeout=timeout)
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            data = None
        return proc, data


def _explain(proc):
    return f"exit code {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    return Path(_load_script("package_plugin").build(str(out)))


@pytest.fixture(scope="module")
def install(tmp_path_factory, built_zip, backend_python):
    if _qgis_process() is None:
        pytest.skip("qgis_process is not installed (run `make setup-qgis`)")
    inst = Install(tmp_path_factory.mktemp("profile"), built_zip, backend_python)
    inst.unzip()
    proc = inst.run("plugins", "enable", PLUGIN, timeout=60)
    assert proc.returncode == 0, _explain(proc)
    assert f"Enabled {PLUGIN}" in proc.stdout, _explain(proc)
    return inst


def test_zip_passes_the_repository_checks(built_zip):
    problems, top, size = _load_script("validate_plugin").check_zip(str(built_zip))
    assert problems == []
    assert top == PLUGIN
    with zipfile.ZipFile(built_zip) as zf:
        names = set(zf.namelist())
    for required in ("__init__.py", "metadata.txt", "LICENSE", "qgis_plugin/plugin.py",
                     "qgis_plugin/processing/provider.py", "qgis_plugin/backend_launch.py", "backend/__main__.py",
                     "backend/requirements.txt", "resources/icon.svg",
                     f"models/{MODEL_ID}/model.json", f"models/{MODEL_ID}/weights.safetensors"):
        assert f"{PLUGIN}/{required}" in names, f"{required} is not in the zip"
    assert not any("/.venv/" in n or n.startswith(f"{PLUGIN}/.venv") for n in names)


def test_profile_folder_is_the_one_qgis_process_reads(install):
    """The unzipped copy (no .venv inside) is the plugin qgis_process sees, in the custom profile."""
    assert (install.plugin_dir / "metadata.txt").is_file()
    assert not (install.plugin_dir / ".venv").exists()
    proc = install.run("plugins", timeout=60)
    assert proc.returncode == 0, _explain(proc)
    listed = [line.strip() for line in proc.stdout.splitlines()]
    assert f"* {PLUGIN}" in listed, _explain(proc)
    ini = install.config / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    assert ini.is_file() and PLUGIN in ini.read_text(encoding="utf-8", errors="replace")


def test_list_shows_the_landfuse_algorithms(install):
    proc, data = install.run_json("list", timeout=60)
    assert proc.returncode == 0 and data is not None, _explain(proc)
    provider = data["providers"].get(PLUGIN)
    assert provider is not None, f"provider {PLUGIN!r} missing: {sorted(data['providers'])}"
    assert provider["is_active"]
    assert set(provider["algorithms"]) == ALGORITHMS
    # the plain-text listing a person reads shows them too
    proc = install.run("list", timeout=60)
    assert proc.returncode == 0, _explain(proc)
    listed = {line.strip().split("\t")[0] for line in proc.stdout.splitlines() if line.startswith("\t")}
    assert ALGORITHMS <= listed


@pytest.fixture(scope="module")
def demo_scene(tmp_path_factory, backend_python):
    out = tmp_path_factory.mktemp("scene")
    proc = subprocess.run([backend_python, "-m", "backend", "synth", "--out", str(out), "--seed", "2026", "--size", "96"],
                          cwd=str(ROOT), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, _explain(proc)
    scene = {"hsi": out / "hsi.tif", "dsm": out / "dsm.tif", "labels": out / "labels.tif"}
    for path in scene.values():
        assert path.is_file()
    return scene


def _read_band(path):
    from osgeo import gdal
    ds = gdal.Open(str(path))
    assert ds is not None, f"GDAL cannot open {path}"
    band = ds.GetRasterBand(1)
    return band.ReadAsArray(), band.GetNoDataValue(), (ds.RasterXSize, ds.RasterYSize)


def _valid_mask(path):
    from osgeo import gdal
    ds = gdal.Open(str(path))
    return ds.GetRasterBand(1).GetMaskBand().ReadAsArray() > 0


def test_classify_demo_scene_with_bundled_model(install, demo_scene, tmp_path):
    model_dir = install.plugin_dir / "models" / MODEL_ID
    assert (model_dir / "model.json").is_file(), f"the zip holds no models/{MODEL_ID}"
    class_table = json.loads((model_dir / "model.json").read_text(encoding="utf-8")).get("classes") or []
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    classes_tif, confidence_tif = out_dir / "landcover.tif", out_dir / "confidence.tif"
    started = time.monotonic()
    proc, data = install.run_json(
        "run", f"{PLUGIN}:classify_raster",
        f"--INPUT_HSI={demo_scene['hsi']}", f"--AUX_LAYERS={demo_scene['dsm']}", f"--MODEL_FOLDER={model_dir}",
        "--DEVICE=1", f"--OUTPUT_CLASSES={classes_tif}", f"--OUTPUT_CONFIDENCE={confidence_tif}")
    elapsed = time.monotonic() - started
    assert proc.returncode == 0 and data is not None, _explain(proc)

    results = data["results"]
    assert results["OUTPUT_CLASSES"] == str(classes_tif)
    assert results["OUTPUT_CONFIDENCE"] == str(confidence_tif)
    assert results["CLASS_COUNT"] == 6
    # the backend was the interpreter we named, run from the unzipped plugin, not from the checkout
    log = "\n".join(data.get("log", {}).get("info", []))
    assert "LANDFUSE_BACKEND_PYTHON" in log, log
    assert str(install.plugin_dir / "qgis_plugin" / "backend_launch.py") in log, log

    assert classes_tif.is_file() and confidence_tif.is_file()
    assert (out_dir / "landcover.qml").is_file()
    classes, nodata, size = _read_band(classes_tif)
    assert size == (96, 96)
    assert nodata == 0
    # the demo HSI has a ragged nodata strip (a flight-line edge): nodata there, a class 1..6 elsewhere
    valid = _valid_mask(demo_scene["hsi"])
    assert 0 < int(valid.sum()) < valid.size
    assert (classes[~valid] == 0).all(), "pixels outside the HSI's valid area were classified"
    values = set(int(v) for v in set(classes[valid].ravel().tolist()))
    assert values <= set(range(1, 7)), f"class values outside 1..6 on valid pixels: {sorted(values)}"
    assert len(values) >= 2, f"a single class over the whole scene: {sorted(values)}"
    if class_table:
        assert {int(c["value"]) for c in class_table} == set(range(1, 7))
    confidence, _, _ = _read_band(confidence_tif)
    assert float(confidence[valid].min()) >= 0.0 and float(confidence[valid].max()) <= 1.0 + 1e-6

    reference, _, _ = _read_band(demo_scene["labels"])
    labelled = reference > 0
    agreement = float((classes[labelled] == reference[labelled]).mean()) if labelled.any() else float("nan")
    sys.stdout.write(f"\nqgis_process classify_raster: {elapsed:.1f} s, classes {sorted(values)}, "
                     f"agreement with the demo reference {agreement:.3f}\n")
