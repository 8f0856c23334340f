"""Benchmark loaders (backend/datasets.py) and the `benchmark` harness (backend/benchmark.py).

The full hyperspectral cubes of Trento, Houston2013, MUUFL and Augsburg are not reachable from these
machines (see ../shared/data/README.md). The harness is therefore checked end to end on Trento's REAL
label maps (TRLabel / TSLabel) and REAL LiDAR DSM, cropped, plus a GENERATED stand-in hyperspectral
cube (class-dependent spectra + noise) saved as HSI.mat in the official layout (variable `HSI`,
rows × cols × 63). Accuracy figures from this test say nothing about real Trento.
"""

import json
import os
import shutil

import numpy as np
import pytest
import rasterio
import scipy.io

from backend.evaluation import datasets
from backend.protocol import ErrorCode, LandFuseError
from tests.backend.conftest import SHARED_DATA, needs_shared, run_cli

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

BENCH = os.path.join(SHARED_DATA, "benchmarks")
CROP = (slice(88, 152), slice(184, 312))  # 64×128 px of Trento holding 4 classes in both splits


def _read(path):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as src:
            return src.read(1), src.tags(), src.crs


class Logs(list):
    def __call__(self, message, level="info"):
        self.append((level, message))


def test_sha256_check_refuses_a_modified_official_file_and_warns_on_an_unknown_one(tmp_path):
    fake = tmp_path / "LiDAR.mat"
    scipy.io.savemat(fake, {"LiDAR": np.zeros((4, 4), np.float32)})
    logs = Logs()
    with pytest.raises(LandFuseError) as err:
        datasets.verify_file("trento", str(fake), logs)
    assert err.value.code == ErrorCode.BAD_ARGUMENTS
    assert "LiDAR.mat" in err.value.message and datasets.OFFICIAL_SHA256["trento"]["LiDAR.mat"] in err.value.message
    assert "--skip-checksums" in err.value.hint
    datasets.verify_file("trento", str(fake), logs, strict=False)  # downgraded to a warning
    assert logs[-1][0] == "warning" and "not comparable" in logs[-1][1]
    other = tmp_path / "my_cube.mat"
    other.write_bytes(b"x")
    datasets.verify_file("trento", str(other), logs)
    assert logs[-1][0] == "warning" and "not verified" in logs[-1][1]


@needs_shared
def test_real_official_lidar_files_pass_the_check():
    logs = Logs()
    for name in ("trento", "muufl"):
        path = os.path.join(BENCH, name, "LiDAR.mat")
        assert datasets.verify_file(name, path, logs) == datasets.OFFICIAL_SHA256[name]["LiDAR.mat"]
    assert not logs


def test_matlab_v73_file_without_h5py_gives_a_clear_error(tmp_path):
    try:
        import h5py  # noqa: F401
        pytest.skip("h5py is installed: a v7.3 file would be read, not refused")
    except ImportError:
        pass
    path = tmp_path / "HSI.mat"
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    path.write_bytes(header.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02" + b"IM" + b"\0" * 512)
    with pytest.raises(LandFuseError) as err:
        datasets.load_mat(str(path))
    assert err.value.code == ErrorCode.INPUT_UNREADABLE and "h5py" in err.value.message + err.value.hint


def _trento_stand_in(folder, seed=0):
    """Real Trento labels + LiDAR (cropped) and a generated HSI cube, in the official file layout."""
    rng = np.random.default_rng(seed)
    tr = scipy.io.loadmat(os.path.join(BENCH, "trento", "TRLabel.mat"))["TRLabel"][CROP]
    ts = scipy.io.loadmat(os.path.join(BENCH, "trento", "TSLabel.mat"))["TSLabel"][CROP]
    lidar = scipy.io.loadmat(os.path.join(BENCH, "trento", "LiDAR.mat"))["LiDAR"][CROP]
    truth = np.maximum(tr, ts)  # the stand-in cube needs a class everywhere a label is
    wl = np.linspace(0, 1, 63)
    spectra = np.stack([0.1 + 0.3 * np.exp(-((wl - c / 7) ** 2) / 0.02) for c in range(7)])  # 0 = background
    hsi = spectra[truth] + 0.03 * rng.standard_normal(truth.shape + (63,))
    os.makedirs(folder, exist_ok=True)
    scipy.io.savemat(os.path.join(folder, "HSI.mat"), {"HSI": hsi.astype(np.float64)})
    scipy.io.savemat(os.path.join(folder, "LiDAR.mat"), {"LiDAR": lidar.astype(np.float32)})
    scipy.io.savemat(os.path.join(folder, "TRLabel.mat"), {"TRLabel": tr.astype(np.uint8)})
    scipy.io.savemat(os.path.join(folder, "TSLabel.mat"), {"TSLabel": ts.astype(np.uint8)})
    return tr, ts


@needs_shared
def test_trento_loader_writes_aligned_crs_less_rasters(tmp_path):
    tr, ts = _trento_stand_in(tmp_path / "trento")
    logs = Logs()
    with pytest.raises(LandFuseError) as err:  # the stand-in is not the official HSI.mat
        datasets.prepare("trento", tmp_path / "trento", tmp_path / "work", logs)
    assert err.value.code == ErrorCode.BAD_ARGUMENTS and "HSI.mat" in err.value.message
    data = datasets.prepare("trento", tmp_path / "trento", tmp_path / "work", logs, strict=False)
    train, tags, crs = _read(data["train"])
    assert crs is None and np.array_equal(train, tr) and np.array_equal(_read(data["test"])[0], ts)
    names = {c["value"]: c["name"] for c in json.loads(tags["LANDFUSE_CLASSES"])}
    assert names[1] == "apple trees" and names[6] == "roads"
    with rasterio.open(data["hsi"]) as hsi, rasterio.open(data["aux"][0]) as aux:
        assert (hsi.count, hsi.height, hsi.width) == (63, 64, 128) and (aux.count, aux.height, aux.width) == (1, 64, 128)
        from backend.io.rasters import check_overlap
        assert check_overlap(hsi, aux, data["aux"][0]) == "pixel"


@needs_shared
def test_benchmark_end_to_end_on_real_trento_labels_and_lidar_with_a_generated_cube(tmp_path, monkeypatch):
    pytest.importorskip("sklearn", reason="the random_forest baseline needs scikit-learn (benchmark-only dependency)")
    # One torch thread: on a shared 2-core machine two threads spin against other jobs and run ~10× slower.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    _trento_stand_in(tmp_path / "trento")
    out = tmp_path / "bench"
    code, events, err = run_cli("benchmark", "--dataset", "trento", "--data-dir", tmp_path / "trento",
                                "--arch", "tiny", "random_forest", "--seeds", "1", "--epochs", "2", "--tile-size", "32",
                                "--skip-checksums", "--out", out)
    assert code == 0, err
    result = events[-1]
    assert result["type"] == "result" and result["command"] == "benchmark"
    assert set(result["metrics"]) == {"tiny", "random_forest"}
    stages = {e["stage"] for e in events if e["type"] == "progress"}
    assert "benchmark" in stages and "tiny seed 0:train" in stages
    assert any(e["type"] == "log" and e["level"] == "warning" and "HSI.mat" in e["message"] for e in events)
    report = json.load(open(out / "results.json"))
    ts = scipy.io.loadmat(os.path.join(BENCH, "trento", "TSLabel.mat"))["TSLabel"][CROP]
    for run in report["runs"]:
        assert run["test_pixels"] == int((ts > 0).sum())  # every test pixel once
        assert run["unclassified_test_pixels"] == 0
        # the boundary-free figure counts a subset of the same pixels
        assert 0 < run["interior_test_pixels"] <= run["test_pixels"] and 0 <= run["oa_interior"] <= 1
    assert report["summary"]["random_forest"]["oa"]["mean"] > 0.9  # separable stand-in spectra
    assert report["summary"]["tiny"]["oa"]["mean"] > 0.5
    table = open(out / "results.md").read()
    assert "| tiny |" in table and "| random_forest |" in table and "python -m backend benchmark" in table
    assert "interior OA %" in table


def test_benchmark_rejects_unknown_arch(tmp_path):
    code, events, _ = run_cli("benchmark", "--dataset", "trento", "--data-dir", tmp_path, "--arch", "svm",
                              "--out", tmp_path / "o")
    assert code == 2 and events[-1]["code"] == ErrorCode.BAD_ARGUMENTS and "svm" in events[-1]["message"]


@needs_shared
def test_dfc2018_crop_split_is_spatially_disjoint_seeded_and_covers_every_class(tmp_path):
    folder = os.path.join(SHARED_DATA, "dfc2018_crop")
    a = datasets.prepare("dfc2018_crop", folder, tmp_path / "s0", seed=0)
    b = datasets.prepare("dfc2018_crop", folder, tmp_path / "s1", seed=1)
    gt = scipy.io.loadmat(os.path.join(folder, "DATA_DSM.mat"))["GT_300"]
    tr, ts = _read(a["train"])[0], _read(a["test"])[0]
    assert not ((tr > 0) & (ts > 0)).any()
    assert np.array_equal(np.maximum(tr, ts), gt)  # every labelled pixel on exactly one side
    block = datasets.DFC_BLOCK
    for r in range(0, 300, block):
        for c in range(0, 300, block):
            assert not ((tr[r:r + block, c:c + block] > 0).any() and (ts[r:r + block, c:c + block] > 0).any())
    classes = set(range(1, 13))
    assert set(np.unique(tr)) - {0} == classes and set(np.unique(ts)) - {0} == classes
    assert not np.array_equal(tr, _read(b["train"])[0])  # another seed, another split
    with rasterio.open(a["hsi"]) as hsi:
        assert hsi.count == 5
    assert a["aux_names"] == ["dsm"]
    sub = datasets.subsample_labels(a["train"], str(tmp_path / "pc20.tif"), 20, seed=0)
    picked = _read(str(tmp_path / "pc20.tif"))[0]
    assert set(sub) == {str(c) for c in classes} and max(sub.values()) == 20
    assert np.all(tr[picked > 0] == picked[picked > 0])


@needs_shared
def test_indian_pines_msi_standard_split(tmp_path):
    folder = os.path.join(SHARED_DATA, "indian_pines_msi")
    data = datasets.prepare("indian_pines_msi", folder, tmp_path / "ip")
    assert data["aux"] == [] and data["hsi_bands"] == 10
    assert sum(data["train_pixels"].values()) == 695 and sum(data["test_pixels"].values()) == 9671
    assert len(data["classes"]) == 16 and data["classes"][13]["name"] == "alfalfa"


def test_loaders_report_missing_files(tmp_path):
    with pytest.raises(LandFuseError) as err:
        datasets.prepare("muufl", tmp_path, tmp_path / "w")
    assert err.value.code == ErrorCode.INPUT_NOT_FOUND and "gt.mat" in err.value.message
    shutil.rmtree(tmp_path / "w", ignore_errors=True)


@needs_shared
def test_muufl_draws_a_seeded_per_class_split_from_the_real_ground_truth(tmp_path):
    folder = tmp_path / "muufl"
    folder.mkdir()
    shutil.copy(os.path.join(BENCH, "muufl", "gt.mat"), folder / "gt.mat")
    shutil.copy(os.path.join(BENCH, "muufl", "LiDAR.mat"), folder / "LiDAR.mat")
    gt = scipy.io.loadmat(folder / "gt.mat")["gt"]
    scipy.io.savemat(folder / "HSI.mat", {"HSI": np.random.default_rng(0).random(gt.shape + (4,), np.float32)})
    logs = Logs()
    data = datasets.prepare("muufl", folder, tmp_path / "w", logs, seed=3, strict=False)
    assert any("HSI.mat" in m and level == "warning" for level, m in logs)  # stand-in cube: not official
    assert data["files"][1] == {"file": "LiDAR.mat", "sha256": datasets.OFFICIAL_SHA256["muufl"]["LiDAR.mat"],
                                "official": True}
    tr, ts = _read(data["train"])[0], _read(data["test"])[0]
    assert all(n == 20 for n in data["train_pixels"].values()) and len(data["train_pixels"]) == 11
    assert not ((tr > 0) & (ts > 0)).any() and np.array_equal(np.maximum(tr, ts), gt)
    with rasterio.open(data["aux"][0]) as aux:
        assert aux.count == 2  # height and intensity
    five = datasets.prepare("muufl", folder, tmp_path / "w5", seed=3, strict=False, train_size="5%")
    assert five["train_pixels"]["1"] == round(0.05 * int((gt == 1).sum()))
