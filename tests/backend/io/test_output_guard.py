"""Issue #16, data loss: no output may be an input, a device, a folder it did not create, or another
output of the same run; a model folder replaces only a model package. Every case checks the typed
error AND that every input is byte-identical afterwards."""

import os

import pytest

from backend.io import paths
from backend.protocol import LandFuseError
from tests.backend.conftest import digests, make_package, run_in_process


def assert_refused(files, argv, codes=("bad_arguments", "output_not_writable")):
    before = digests(*files)
    rc, events = run_in_process(*argv)
    assert rc != 0, events
    kinds = [e["type"] for e in events if e["type"] in ("error", "result")]
    assert kinds == ["error"], events
    assert events[-1]["code"] in codes, events[-1]
    assert digests(*files) == before
    return events[-1]


def test_classify_never_writes_over_an_input(scene, model2):
    hsi, dsm = scene["hsi"], scene["dsm"]
    files = [hsi, dsm, model2]
    base = ["classify", "--hsi", hsi, "--aux", dsm, "--model", model2]
    assert_refused(files, base + ["--out", hsi])
    assert_refused(files, base + ["--out", dsm])
    assert_refused(files, base + ["--out", "x.tif", "--confidence", hsi])
    sub = scene["dir"] / "x"
    sub.mkdir()
    assert_refused(files, base + ["--out", str(sub / ".." / "hsi.tif")])
    os.symlink(hsi, scene["dir"] / "link.tif")
    assert_refused(files, base + ["--out", str(scene["dir"] / "link.tif")])
    os.link(hsi, scene["dir"] / "hard.tif")
    assert_refused(files, base + ["--out", str(scene["dir"] / "hard.tif")])
    assert_refused(files, base + ["--out", os.path.join(model2, "weights.safetensors")])


def test_classify_outputs_must_differ_and_be_regular_files(scene, model2, tmp_path):
    files = [scene["hsi"], model2]
    base = ["classify", "--hsi", scene["hsi"], "--model", model2, "--aux", scene["dsm"]]
    out = str(tmp_path / "map.tif")
    error = assert_refused(files, base + ["--out", out, "--confidence", out])
    assert "same file" in error["message"]
    assert_refused(files, base + ["--out", str(tmp_path / "map.qml")])        # its legend is itself
    assert_refused(files, base + ["--out", str(tmp_path)])                    # a folder
    assert_refused(files, base + ["--out", "/dev/null"])                      # a device, even as root
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    assert_refused(files, base + ["--out", "/proc/self/map.tif"])
    fifo = tmp_path / "fifo.tif"
    os.mkfifo(fifo)
    assert_refused(files, base + ["--out", str(fifo)])
    assert not os.path.exists(out)


def test_evaluate_split_and_preview_never_write_over_an_input(scene, model2, labelled, tmp_path):
    classes = str(tmp_path / "classes.tif")
    rc, events = run_in_process("classify", "--hsi", scene["hsi"], "--aux", scene["dsm"], "--model", model2, "--out", classes)
    assert rc == 0, events
    ref = labelled["labels"]
    files = [classes, ref, scene["hsi"]]
    assert_refused(files, ["evaluate", "--prediction", classes, "--reference", ref, "--out-json", classes])
    assert_refused(files, ["evaluate", "--prediction", classes, "--reference", ref, "--out-html", ref])
    assert_refused(files, ["evaluate", "--prediction", classes, "--reference", ref,
                           "--out-json", tmp_path / "r.json", "--out-html", tmp_path / "r.json"])
    assert_refused(files, ["split-labels", "--reference", ref, "--out-train", tmp_path / "tr.tif", "--out-test", ref])
    assert_refused(files, ["split-labels", "--reference", ref, "--out-train", ref, "--out-test", tmp_path / "te.tif"])
    assert_refused(files, ["preview", "--hsi", scene["hsi"], "--classes", classes, "--out", scene["hsi"]])
    assert_refused(files, ["preview", "--hsi", scene["hsi"], "--classes", classes, "--out", classes])


def test_evaluate_refuses_an_image_as_the_prediction(scene, labelled):
    error = assert_refused([scene["hsi"], labelled["labels"]],
                           ["evaluate", "--prediction", scene["hsi"], "--reference", labelled["labels"]])
    assert "not a class map" in error["message"]


def test_train_out_a_data_folder_is_refused_before_training(labelled, monkeypatch):
    folder = str(labelled["dir"])
    files = [labelled["hsi"], labelled["dsm"], labelled["labels"]]
    before = digests(folder)
    monkeypatch.chdir(folder)
    for out in (".", folder, os.path.join(folder, "sub", "..")):
        error = assert_refused(files, ["train", "--hsi", labelled["hsi"], "--labels", labelled["labels"],
                                       "--out", out, "--epochs", 1, "--arch", "tiny", "--device", "cpu"])
        assert "input" in error["message"]
    assert digests(folder) == before


def test_train_refuses_an_existing_folder_that_is_no_model_package(labelled, tmp_path):
    precious = tmp_path / "my_documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    error = assert_refused([labelled["hsi"], labelled["labels"], str(precious)],
                           ["train", "--hsi", labelled["hsi"], "--labels", labelled["labels"], "--out", precious,
                            "--epochs", 1, "--arch", "tiny", "--device", "cpu"], codes=("output_not_writable",))
    assert "not a LandFuse model package" in error["message"]
    assert (precious / "thesis.txt").read_text() == "years of work"
    # a file in the way, and the model folder being an input of finetune
    assert_refused([labelled["hsi"]], ["train", "--hsi", labelled["hsi"], "--labels", labelled["labels"],
                                       "--out", labelled["hsi"], "--epochs", 1, "--arch", "tiny"])


def test_finetune_cannot_replace_its_base_model(labelled, tmp_path):
    base = make_package(tmp_path / "base", [10])
    assert_refused([base, labelled["hsi"], labelled["labels"]],
                   ["finetune", "--model", base, "--hsi", labelled["hsi"], "--labels", labelled["labels"],
                    "--out", base, "--epochs", 1, "--device", "cpu"])


def test_save_package_replaces_a_model_package_and_nothing_else(tmp_path):
    old = make_package(tmp_path / "m", [4])
    assert os.path.isfile(os.path.join(old, "model.json"))
    make_package(tmp_path / "m", [4], seed=1)           # a package: replaced
    (tmp_path / "empty").mkdir()
    make_package(tmp_path / "empty", [4])               # an empty folder: nothing to lose
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(LandFuseError) as err:
        make_package(other, [4])
    assert err.value.code == "output_not_writable"
    assert os.listdir(other) == ["keep.txt"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]   # no part or old folder left


def test_guard_cleans_stale_parts_and_says_so(tmp_path):
    out = tmp_path / "map.tif"
    stale = tmp_path / ".map.tif.part-999999999"
    stale.write_text("half")
    messages = []
    paths.check_outputs([], {"class map": str(out)}, lambda m, level="info": messages.append((level, m)))
    assert not stale.exists()
    assert messages and messages[0][0] == "warning" and "interrupted" in messages[0][1]


def test_guard_refuses_a_raster_sidecar_of_an_input(tmp_path):
    img = tmp_path / "scene.img"
    img.write_bytes(b"x")
    (tmp_path / "scene.hdr").write_text("ENVI")
    with pytest.raises(LandFuseError):
        paths.check_outputs([str(img)], {"map": str(tmp_path / "scene.hdr")})
    paths.check_outputs([str(img)], {"map": str(tmp_path / "scene_classes.tif")})


def test_full_disk_and_refused_writes_are_typed():
    import errno
    full = paths.os_error(OSError(errno.ENOSPC, "No space left on device", "/x/map.tif"))
    assert full.code == "disk_full" and "/x/map.tif" in full.message
    assert paths.os_error(OSError(errno.EROFS, "Read-only file system")).code == "output_not_writable"
    assert paths.os_error(OSError(errno.ECONNRESET, "reset")) is None
    gdal = RuntimeError("TIFFAppendToStrip:Write error at scanline 12: No space left on device")
    assert paths.os_error(gdal).code == "disk_full"     # GDAL's CPLE_* errors carry only text


def test_synth_never_fills_a_folder_of_someone_elses_files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "hsi.tif").write_bytes(b"my real scene")
    assert_refused([str(data / "hsi.tif")], ["synth", "--out", data, "--size", 32, "--bands", 8],
                   codes=("output_not_writable",))
    rc, events = run_in_process("synth", "--out", tmp_path / "new", "--size", 32, "--bands", 8)
    assert rc == 0, events
    rc, events = run_in_process("synth", "--out", tmp_path / "new", "--size", 32, "--bands", 8, "--seed", 1)
    assert rc == 0, events     # an earlier synth scene (scene.json) may be replaced
