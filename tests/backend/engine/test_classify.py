"""classify end to end through the Python API (fast) and the CLI (exit codes, events)."""

import json
import os

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import Resampling, calculate_default_transform, reproject

from backend.engine.classify import classify
from backend.protocol import EventWriter, LandFuseError
from tests.backend.conftest import SHARED_DATA, make_package, needs_shared, run_cli, write_raster


class Recorder(EventWriter):
    def __init__(self):
        self.events = []

    def emit(self, event_type, **fields):
        self.events.append({"type": event_type, **fields})


def run(scene, model, out, **kw):
    events = Recorder()
    result = classify(scene["hsi"], [scene["dsm"]], model, str(out), events, **kw)
    return result, events


def test_classify_writes_styled_uint8_geotiff_with_legend_and_confidence(scene, model2):
    out = scene["dir"] / "map.tif"
    conf = scene["dir"] / "conf.tif"
    result, events = run(scene, model2, out, confidence=str(conf), window=32)
    assert result["outputs"] == {"classes": str(out), "qml": str(scene["dir"] / "map.qml"), "confidence": str(conf)}
    with rasterio.open(out) as ds, rasterio.open(scene["hsi"]) as ref:
        assert ds.dtypes[0] == "uint8" and ds.nodata == 0
        assert ds.crs == ref.crs and ds.transform == ref.transform and ds.shape == ref.shape
        assert ds.profile["compress"] == "deflate"
        cmap = ds.colormap(1)
        assert cmap[1][:3] == (0xd7, 0x30, 0x1f) and cmap[4][:3] == (0x21, 0x71, 0xb5)
        assert json.loads(ds.tags()["LANDFUSE_CLASSES"])[2]["name"] == "water"
        values = set(np.unique(ds.read(1)).tolist())
        assert values <= {1, 2, 4} and values
    with rasterio.open(conf) as ds:
        c = ds.read(1)
        assert c.min() > 0.3 and c.max() <= 1.0  # max of a 3-class softmax is ≥ 1/3
    qml = open(scene["dir"] / "map.qml").read()
    assert 'type="paletted"' in qml and 'label="water"' in qml and 'value="4"' in qml
    assert "<Category>water</Category>" in open(str(out) + ".aux.xml").read()
    progress = [e for e in events.events if e["type"] == "progress"]
    assert progress[-1]["done"] == progress[-1]["total"] == 9
    assert not [f for f in os.listdir(scene["dir"]) if ".part-" in f]


def test_tiled_and_whole_image_results_are_identical(scene, model2):
    """A network whose receptive field fits in the halo (tiny) gives one map at any window."""
    tiled, _ = run(scene, model2, scene["dir"] / "tiled.tif", window=16, batch_size=3)
    whole, _ = run(scene, model2, scene["dir"] / "whole.tif", window=1024)
    with rasterio.open(scene["dir"] / "tiled.tif") as a, rasterio.open(scene["dir"] / "whole.tif") as b:
        assert np.array_equal(a.read(1), b.read(1))


def test_the_map_is_the_same_at_every_tile_size(scene, tmp_path):
    """m3amba's scans see their whole window, so the window changes the map (issue 17: tile 64 vs 512
    changed 1.5 % of the demo's pixels when the tile was the window); the tile size only sets how many
    windows of the fixed grid go through at once, and no pixel changes with it."""
    model = make_package(tmp_path / "m3", [10, 1], arch="m3amba", halo=4)
    maps = {}
    for tile in (16, 24, 32, 64, 200):
        run(scene, model, tmp_path / f"t{tile}.tif", tile_size=tile, window=24)
        maps[tile] = rasterio.open(tmp_path / f"t{tile}.tif").read(1)
        assert np.array_equal(maps[tile], maps[16]), tile
    _, events = run(scene, model, tmp_path / "w48.tif", window=48)
    assert not np.array_equal(rasterio.open(tmp_path / "w48.tif").read(1), maps[16])   # the window does matter
    assert any("window(s) of 48 px, halo 4" in e.get("message", "") for e in events.events)


def test_nodata_in_any_modality_or_band_gives_class_zero_but_bad_bands_do_not(tmp_path):
    rng = np.random.default_rng(3)
    hsi = rng.normal(0, 1, (6, 40, 40)).astype(np.float32)
    hsi[:, :5, :] = -9999.0                  # a nodata strip in every band
    hsi[2] = -9999.0                         # one band nodata everywhere: dropped, not a blank map
    hsi[4, 20:, 20:] = np.nan                # a hole in one band the model reads: nodata (issue #16)
    dsm = rng.normal(0, 1, (40, 40)).astype(np.float32)
    dsm[:, :3] = np.nan                      # DSM missing at the left edge
    hsi_path = write_raster(tmp_path / "h.tif", hsi, nodata=-9999.0, band_tags={6: {"bbl": "0"}})
    dsm_path = write_raster(tmp_path / "d.tif", dsm)
    model = make_package(tmp_path / "m", [6, 1])
    events = Recorder()
    classify(hsi_path, [dsm_path], model, str(tmp_path / "o.tif"), events, window=16)
    out = rasterio.open(tmp_path / "o.tif").read(1)
    assert (out[:5] == 0).all() and (out[:, :3] == 0).all()
    assert (out[20:, 20:] == 0).all()
    inside = np.ones(out.shape, bool)
    inside[:5] = inside[:, :3] = False
    inside[20:, 20:] = False
    assert (out[inside] > 0).all()
    logs = " ".join(e["message"] for e in events.events if e["type"] == "log")
    assert "[6]" in logs and "[3]" in logs  # flagged bbl=0 band and the empty band are reported


def test_band_count_mismatch_is_refused_before_writing(scene, tmp_path):
    model = make_package(tmp_path / "m12", [12, 1])
    with pytest.raises(LandFuseError) as err:
        run(scene, model, scene["dir"] / "x.tif")
    assert err.value.code == "band_mismatch" and "12" in err.value.message
    assert not os.path.exists(scene["dir"] / "x.tif")


def test_wrong_number_of_aux_rasters(scene, tmp_path):
    model = make_package(tmp_path / "m", [10])
    with pytest.raises(LandFuseError) as err:
        run(scene, model, scene["dir"] / "x.tif")
    assert err.value.code == "band_mismatch" and "auxiliary" in err.value.message


def test_aux_on_another_crs_and_resolution_is_aligned_onto_the_hsi_grid(tmp_path):
    from rasterio.windows import Window

    from backend.engine.modalities import open_modalities
    yy, xx = np.mgrid[0:120, 0:100]
    hsi = np.stack([np.sin(xx / 9.0) + np.cos(yy / 7.0)] * 3).astype(np.float32)
    hsi_path = write_raster(tmp_path / "h.tif", hsi, crs="EPSG:32633", transform=from_origin(389000, 5819000, 2, 2))
    # The aux: the same field warped to geographic coordinates on a coarser grid.
    with rasterio.open(hsi_path) as src:
        transform, w, h = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height, *src.bounds,
                                                      resolution=0.00004)
        aux = np.zeros((1, h, w), np.float32)
        reproject(src.read(1), aux[0], src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                  dst_crs="EPSG:4326", resampling=Resampling.bilinear, dst_nodata=np.nan)
    aux_path = write_raster(tmp_path / "a.tif", aux, crs="EPSG:4326", transform=transform, nodata=np.nan)
    specs = [{"name": "hsi", "bands": 3, "mean": [0] * 3, "std": [1] * 3}, {"name": "a", "bands": 1, "mean": [0], "std": [1]}]
    with open_modalities(hsi_path, [aux_path], specs) as (ref, readers):
        block, valid = readers[1].read(Window(0, 0, 100, 120))
    inner = valid.copy()
    inner[:4], inner[-4:], inner[:, :4], inner[:, -4:] = False, False, False, False
    assert valid.mean() > 0.9
    assert np.corrcoef(block[0][inner], hsi[0][inner])[0, 1] > 0.97


def test_aux_without_overlap_or_crs(scene, model2, tmp_path):
    far = write_raster(tmp_path / "far.tif", scene["dsm_array"], transform=from_origin(100000, 100000, 2, 2))
    events = Recorder()
    with pytest.raises(LandFuseError) as err:
        classify(scene["hsi"], [far], model2, str(tmp_path / "o.tif"), events)
    assert err.value.code == "crs_no_overlap"
    bare = write_raster(tmp_path / "bare.tif", scene["dsm_array"][:50], crs=None)
    with pytest.raises(LandFuseError) as err:
        classify(scene["hsi"], [bare], model2, str(tmp_path / "o.tif"), events)
    assert err.value.code == "no_crs"
    assert not os.path.exists(tmp_path / "o.tif")


def test_reflectance_scale_mismatch_is_detected_and_rescaled(tmp_path):
    rng = np.random.default_rng(0)
    refl = rng.uniform(0.05, 0.4, (4, 32, 32)).astype(np.float32)
    model = make_package(tmp_path / "m", [4], mean=0.2, std=0.1)
    manifest = json.load(open(os.path.join(model, "model.json")))
    manifest["modalities"][0]["typical_magnitude"] = 0.2
    json.dump(manifest, open(os.path.join(model, "model.json"), "w"))
    a = write_raster(tmp_path / "x1.tif", refl)
    b = write_raster(tmp_path / "x10000.tif", np.round(refl * 10000), dtype="uint16")
    events = Recorder()
    classify(a, [], model, str(tmp_path / "a.tif"), events)
    classify(b, [], model, str(tmp_path / "b.tif"), events)
    assert any("scaling them by 0.0001" in e.get("message", "") for e in events.events)
    assert (rasterio.open(tmp_path / "a.tif").read(1) == rasterio.open(tmp_path / "b.tif").read(1)).mean() > 0.99


def test_out_of_memory_is_reported_with_a_hint(scene, model2, monkeypatch):
    from backend.engine import classify as module

    def exhausted(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
    monkeypatch.setattr(module, "predict_tiles", exhausted)
    with pytest.raises(LandFuseError) as err:
        run(scene, model2, scene["dir"] / "oom.tif", tile_size=64)
    # one window per pass already: a smaller tile size cannot help, a smaller window or the CPU can
    assert err.value.code == "out_of_memory" and "--tile-size" not in err.value.hint
    assert "--window" in err.value.hint and "--device cpu" in err.value.hint
    from backend.engine.device import out_of_memory_error
    several = out_of_memory_error(16, 4)     # several windows per pass: fewer of them would help
    assert "--batch-size 1" in several.hint and "4 window(s) of 16×16" in several.message
    assert not os.path.exists(scene["dir"] / "oom.tif")
    assert not [f for f in os.listdir(scene["dir"]) if ".part-" in f]


def test_output_folder_missing_or_not_a_folder(scene, model2):
    for bad in (scene["dir"] / "no" / "such" / "dir" / "o.tif", scene["dir"] / "hsi.tif" / "o.tif"):
        with pytest.raises(LandFuseError) as err:
            run(scene, model2, bad)
        assert err.value.code == "output_not_writable"


def test_missing_and_corrupt_inputs(scene, model2, tmp_path):
    events = Recorder()
    with pytest.raises(LandFuseError) as err:
        classify(str(tmp_path / "nope.tif"), [], model2, str(tmp_path / "o.tif"), events)
    assert err.value.code == "input_not_found"
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + os.urandom(300))
    with pytest.raises(LandFuseError) as err:
        classify(str(corrupt), [scene["dsm"]], model2, str(tmp_path / "o.tif"), events)
    assert err.value.code == "input_unreadable"
    truncated = tmp_path / "trunc.tif"
    truncated.write_bytes(open(scene["hsi"], "rb").read()[:2000])
    with pytest.raises(LandFuseError) as err:
        classify(str(truncated), [scene["dsm"]], model2, str(tmp_path / "o.tif"), events)
    assert err.value.code == "input_unreadable"
    assert not os.path.exists(tmp_path / "o.tif")


def test_cli_classify_exit_codes_and_events(scene, model2):
    out = scene["dir"] / "cli.tif"
    code, events, _ = run_cli("classify", "--hsi", scene["hsi"], "--aux", scene["dsm"], "--model", model2,
                              "--out", out, "--device", "cpu")
    assert code == 0 and events[-1]["type"] == "result" and os.path.exists(out)
    code, events, _ = run_cli("classify", "--hsi", scene["hsi"], "--model", model2, "--out", out)
    assert code == 1 and events[-1]["type"] == "error" and events[-1]["code"] == "band_mismatch"
    code, events, _ = run_cli("classify", "--hsi", scene["hsi"])
    assert code == 2 and events[-1]["code"] == "bad_arguments"


def test_cli_info_and_diagnostics(model2):
    code, events, _ = run_cli("info", "--model", model2)
    assert code == 0 and events[-1]["model"]["classes"][2]["name"] == "water"
    code, events, _ = run_cli("diagnostics")
    diag = events[-1]["diagnostics"]
    assert code == 0 and diag["torch"].startswith("2.") and diag["cpu_count"] >= 1
    assert diag["memory"]["total_bytes"] > 0 and diag["default_device"] in ("cpu", "cuda")


def test_cuda_requested_without_gpu_is_a_clear_error(scene, model2):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error path is for machines without it")
    with pytest.raises(LandFuseError) as err:
        run(scene, model2, scene["dir"] / "c.tif", device="cuda")
    assert err.value.code == "cuda_unavailable"


@needs_shared
def test_sentinel_pairs_10_20_60_m_and_s1_align_on_the_reference_grid(tmp_path):
    base = os.path.join(SHARED_DATA, "sentinel_s1s2_pairs")
    s2 = sorted(d for d in os.listdir(os.path.join(base, "BigEarthNet-S2-Example")))[0]
    s2_dir = os.path.join(base, "BigEarthNet-S2-Example", s2)
    s1_root = os.path.join(base, "BigEarthNet-S1-Example")
    s1_dir = next(os.path.join(s1_root, d) for d in sorted(os.listdir(s1_root))
                  if json.load(open(next(os.path.join(s1_root, d, f) for f in os.listdir(os.path.join(s1_root, d))
                                         if f.endswith("metadata.json"))))["corresponding_s2_patch"] == s2)
    band = lambda name: next(os.path.join(s2_dir, f) for f in os.listdir(s2_dir) if f.endswith(f"_{name}.tif"))
    ten = [rasterio.open(band(b)) for b in ("B02", "B03", "B04", "B08")]
    stack = np.stack([d.read(1) for d in ten]).astype(np.float32)
    hsi = write_raster(tmp_path / "s2_10m.tif", stack, crs=ten[0].crs, transform=ten[0].transform)
    s1 = [os.path.join(s1_dir, f) for f in sorted(os.listdir(s1_dir)) if f.endswith(".tif")]
    aux = [band("B11"), band("B01")] + s1            # 20 m, 60 m, and the two S1 polarisations
    model = make_package(tmp_path / "m", [4, 1, 1, 1, 1])
    events = Recorder()
    classify(hsi, aux, model, str(tmp_path / "o.tif"), events, window=64)
    with rasterio.open(tmp_path / "o.tif") as out:
        assert out.shape == (120, 120) and out.transform == ten[0].transform
        assert (out.read(1) > 0).mean() > 0.95


def test_the_tile_size_asks_for_about_its_pixels_per_forward_pass_in_whole_windows():
    from backend.engine.classify import DEFAULT_TILE_SIZE, MAP_WINDOW, default_batch_size
    assert DEFAULT_TILE_SIZE == MAP_WINDOW == 512 and default_batch_size(512) == 1
    assert default_batch_size(1024) == 4 and default_batch_size(2048) == 16
    assert default_batch_size(256) == default_batch_size(16) == 1            # never less than one window
    assert default_batch_size(128, window=32) == 16
