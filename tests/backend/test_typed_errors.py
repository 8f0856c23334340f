"""Issue #16, untrusted files and environment: each case ends with its typed code (never `internal`),
leaves no output behind and every input byte-identical."""

import errno
import os

import numpy as np
import pytest
import rasterio
from rasterio.control import GroundControlPoint

from backend import cli
from backend.io import rasters
from tests.backend.conftest import REPO, digests, make_package, run_cli, run_in_process, write_raster

GENERIC = os.path.join(REPO, "models", "generic-landcover")


def run(*argv):
    rc, events = run_in_process(*argv)
    final = [e for e in events if e["type"] in ("error", "result")]
    assert len(final) == 1, events
    return rc, events, final[0]


def expect(code, *argv, inputs=()):
    before = digests(*inputs)
    rc, events, final = run(*argv)
    assert final["type"] == "error" and final["code"] == code, final
    assert rc != 0
    assert digests(*inputs) == before
    return final, events


@pytest.mark.parametrize("option", [("--epochs", -1), ("--epochs", 0), ("--tile-size", 0), ("--seed", -1)])
def test_train_numbers_out_of_range_are_bad_arguments(labelled, tmp_path, option):
    expect("bad_arguments", "train", "--hsi", labelled["hsi"], "--labels", labelled["labels"],
           "--out", tmp_path / "m", *option, inputs=[labelled["hsi"], labelled["labels"]])
    assert not os.path.exists(tmp_path / "m")


def test_synth_size_zero_is_bad_arguments(tmp_path):
    expect("bad_arguments", "synth", "--out", tmp_path / "s", "--size", 0)
    assert not os.path.exists(tmp_path / "s")


def test_a_non_utf8_wavelength_file_is_bad_arguments(scene, model2, tmp_path):
    wl = tmp_path / "wl.txt"
    wl.write_bytes(b"\xff\xfe4\x005\x000\x00\n")
    expect("bad_arguments", "classify", "--hsi", scene["hsi"], "--aux", scene["dsm"], "--model", model2,
           "--out", tmp_path / "o.tif", "--wavelengths", wl, inputs=[scene["hsi"], str(wl)])
    assert not os.path.exists(tmp_path / "o.tif")


def test_a_deeply_nested_model_json_is_bad_model(tmp_path):
    model = make_package(tmp_path / "m", [4])
    with open(os.path.join(model, "model.json"), "w") as f:
        f.write("{\"a\":" * 100_000 + "1" + "}" * 100_000)
    expect("bad_model", "info", "--model", model, inputs=[model])


def test_junk_in_an_envi_bbl_list_is_no_crash(tmp_path):
    path = str(tmp_path / "e.img")
    with rasterio.open(path, "w", driver="ENVI", width=8, height=8, count=3, dtype="float32") as dst:
        dst.write(np.ones((3, 8, 8), np.float32))
    with open(str(tmp_path / "e.hdr"), "a") as f:
        f.write("bbl = {1, junk, 0}\n")
    with rasterio.open(path) as ds:
        assert rasters.bad_band_flags(ds) == {3}


def test_a_full_disk_is_disk_full_and_leaves_nothing(scene, model2, tmp_path, monkeypatch):
    from backend.io import output

    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o.tif"))
    monkeypatch.setattr(output.ClassificationWriter, "commit", full)
    final, _ = expect("disk_full", "classify", "--hsi", scene["hsi"], "--aux", scene["dsm"], "--model", model2,
                      "--out", tmp_path / "o.tif", inputs=[scene["hsi"], scene["dsm"], model2])
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".o.tif") or n == "o.tif"]


def test_outputs_under_sys_are_refused(scene, model2):
    expect("output_not_writable", "classify", "--hsi", scene["hsi"], "--aux", scene["dsm"], "--model", model2,
           "--out", "/sys/kernel/landfuse.tif", inputs=[scene["hsi"]])


def test_a_fifo_as_input_is_refused_at_once(scene, model2, tmp_path):
    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)
    rc, events, _ = run_cli("classify", "--hsi", fifo, "--model", model2, "--aux", scene["dsm"],
                            "--out", tmp_path / "o.tif", timeout=120)
    assert events[-1]["type"] == "error" and events[-1]["code"] == "input_unreadable"


def test_one_class_labels_train_with_a_warning(scene, tmp_path):
    labels = np.zeros((96, 80), np.uint8)
    labels[10:60, 10:60] = 3
    lab = write_raster(scene["dir"] / "one.tif", labels)
    rc, events, final = run("train", "--hsi", scene["hsi"], "--labels", lab, "--out", tmp_path / "m",
                            "--arch", "tiny", "--epochs", 1, "--device", "cpu")
    assert final["type"] == "result", final
    assert any(e["type"] == "log" and e["level"] == "warning" and "Only one class" in e["message"] for e in events)


def test_the_out_of_memory_hint_names_only_options_the_command_has():
    assert "--batch-size" not in cli._memory_hint(["train"]) and "--tile-size" in cli._memory_hint(["train"])
    assert "--batch-size" in cli._memory_hint(["classify"])
    assert "--batch," in cli._memory_hint(["pretrain"])


def test_a_gcp_only_hsi_keeps_its_georeference(tmp_path):
    rng = np.random.default_rng(0)
    path = str(tmp_path / "gcp.tif")
    gcps = [GroundControlPoint(0, 0, 389000, 5819000), GroundControlPoint(0, 40, 389080, 5819000),
            GroundControlPoint(40, 0, 389000, 5818920), GroundControlPoint(40, 40, 389080, 5818920)]
    with rasterio.open(path, "w", driver="GTiff", width=40, height=40, count=4, dtype="float32") as dst:
        dst.write(rng.normal(0, 1, (4, 40, 40)).astype(np.float32))
        dst.gcps = (gcps, "EPSG:32633")
    model = make_package(tmp_path / "m", [4])
    rc, events, final = run("classify", "--hsi", path, "--model", model, "--out", tmp_path / "o.tif")
    assert final["type"] == "result", final
    with rasterio.open(tmp_path / "o.tif") as out:
        out_gcps, crs = out.gcps
        assert len(out_gcps) == 4 and crs.to_epsg() == 32633


def test_same_size_rasters_without_one_crs_get_a_hint_that_fits(tmp_path):
    hsi = write_raster(tmp_path / "h.tif", np.zeros((2, 20, 20), np.float32))
    aux = write_raster(tmp_path / "a.tif", np.zeros((20, 20), np.float32), crs=None)
    from backend.protocol import LandFuseError
    with rasterio.open(hsi) as h, rasterio.open(aux) as a, pytest.raises(LandFuseError) as err:
        rasters.check_overlap(h, a, aux, "label raster")
    assert err.value.code == "no_crs" and "label raster" in err.value.message
    assert "same size" in err.value.hint and "identical size" not in err.value.hint
    assert len(rasters._short("x" * 5000)) < 310


@pytest.mark.skipif(not os.path.isdir(GENERIC), reason="the bundled generic model is not in models/")
def test_an_image_whose_bands_are_all_unusable_says_so(tmp_path):
    wl = [420, 800, 1200, 1800, 2450]
    tags = {b + 1: {"wavelength": str(w), "bbl": "0"} for b, w in enumerate(wl)}
    hsi = write_raster(tmp_path / "h.tif", np.ones((5, 16, 16), np.float32), band_tags=tags)
    final, _ = expect("band_mismatch", "classify", "--hsi", hsi, "--model", GENERIC, "--out", tmp_path / "o.tif",
                      inputs=[hsi])
    assert "0 hold data" in final["message"] and "no band" not in final["message"]
