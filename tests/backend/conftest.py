"""Shared fixtures for the backend tests: generated rasters and small model packages."""

import hashlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")

if REPO not in sys.path:
    sys.path.insert(0, REPO)

needs_shared = pytest.mark.skipif(not os.path.isdir(SHARED_DATA),
                                  reason="../shared/data (real example files) is not beside the checkout")


def write_raster(path, data, crs="EPSG:32633", transform=None, nodata=None, band_tags=None, dtype=None):
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                   dtype=dtype or data.dtype, transform=transform or from_origin(389000, 5819000, 2, 2))
    if crs:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(profile["dtype"]))
        for b, tags in (band_tags or {}).items():
            dst.update_tags(b, **tags)
    return str(path)


def make_package(out_dir, modality_bands, classes=None, arch="tiny", seed=0, halo=8, mean=0.0, std=1.0, **extra):
    import torch

    from backend import nets
    from backend.engine import package
    torch.manual_seed(seed)
    classes = classes or [{"value": 1, "name": "roof", "color": "#d7301f"},
                          {"value": 2, "name": "grass", "color": "#a1d99b"},
                          {"value": 4, "name": "water", "color": "#2171b5"}]
    net = nets.build(arch, {}, modality_bands, len(classes))
    mods = [{"name": "hsi" if i == 0 else f"aux{i}", "kind": "hsi" if i == 0 else "aux", "bands": b,
             "mean": [mean] * b, "std": [std] * b} for i, b in enumerate(modality_bands)]
    manifest = {"format": "landfuse-model", "format_version": 1, "id": "test", "name": "test",
                "architecture": {"name": arch, "params": {}}, "modalities": mods, "classes": classes,
                "halo": halo, "weights": {"file": "weights.safetensors", "sha256": "0" * 64}}
    manifest.update(extra)
    package.save_package(str(out_dir), manifest, net.state_dict(), "# test model\n")
    return str(out_dir)


def run_cli(*args, timeout=300, env=None):
    """Run `python -m backend …` in a child process (extra environment variables in `env`); returns
    (exit code, events, stderr)."""
    from backend.protocol import parse_event
    proc = subprocess.run([sys.executable, "-m", "backend", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, **(env or {})))
    events = [e for e in (parse_event(line) for line in proc.stdout.splitlines()) if e]
    return proc.returncode, events, proc.stderr


@pytest.fixture
def scene(tmp_path):
    """A 96×80 px, 10-band HSI + 1-band DSM on the same grid, with some random structure."""
    rng = np.random.default_rng(1)
    hsi = rng.normal(0.2, 0.05, (10, 96, 80)).astype(np.float32)
    dsm = rng.normal(30, 3, (96, 80)).astype(np.float32)
    return {"hsi": write_raster(tmp_path / "hsi.tif", hsi, nodata=-9999.0),
            "dsm": write_raster(tmp_path / "dsm.tif", dsm, nodata=-9999.0), "dir": tmp_path,
            "hsi_array": hsi, "dsm_array": dsm}


@pytest.fixture
def labelled(scene):
    """`scene` with a label raster of two classes ("labels")."""
    labels = np.zeros((96, 80), np.uint8)
    labels[10:30, 10:30] = 1
    labels[50:80, 40:70] = 2
    scene["labels"] = write_raster(scene["dir"] / "labels.tif", labels)
    return scene


def digests(*paths):
    """sha256 of every file under `paths` (folders walked), by path: equal before and after = untouched."""
    out = {}
    for p in map(str, paths):
        if os.path.isdir(p):
            out.update(digests(*[os.path.join(p, n) for n in sorted(os.listdir(p))]))
        else:
            with open(p, "rb") as f:
                out[p] = hashlib.sha256(f.read()).hexdigest()
    return out


def run_in_process(*argv):
    """The CLI run in this process → (exit code, events)."""
    from backend.cli import main
    out = io.StringIO()
    rc = main([str(a) for a in argv], stdout=out)
    return rc, [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture
def model2(tmp_path):
    """A tiny untrained package for 10 HSI bands + 1 aux band (mean/std matched to `scene`)."""
    return make_package(tmp_path / "model2", [10, 1])
