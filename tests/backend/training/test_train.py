"""train / finetune on sparse labels, end to end through the CLI (tiny architecture, small scene)."""

import json
import os

import numpy as np
import rasterio

from tests.backend.conftest import run_cli, write_raster


def make_scene(tmp_path, seed=0, size=64, bands=8):
    """Three classes told apart by spectrum shape, a fourth ("tower") only by height."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    lab = np.where((xx // 16 + yy // 16) % 2 == 0, 1, 2).astype(np.uint8)
    lab[(yy - size // 2) ** 2 + (xx - size // 2) ** 2 < 64] = 3
    lab[4:10, 4:10] = 4
    spectra = {1: np.linspace(0.1, 0.3, bands), 2: np.linspace(0.3, 0.1, bands), 3: np.full(bands, 0.2),
               4: np.full(bands, 0.2)}
    hsi = np.stack([spectra[v] for v in lab.ravel()]).T.reshape(bands, size, size)
    hsi = hsi + 0.02 * rng.standard_normal(hsi.shape)
    dsm = np.where(lab == 4, 25.0, 2.0) + 0.3 * rng.standard_normal((size, size))
    sparse = np.zeros_like(lab)
    for v in (1, 2, 3, 4):
        idx = np.argwhere(lab == v)
        pick = idx[rng.choice(len(idx), min(30, len(idx)), replace=False)]
        sparse[pick[:, 0], pick[:, 1]] = v
    return {"hsi": write_raster(tmp_path / f"hsi{seed}.tif", hsi.astype(np.float32)),
            "dsm": write_raster(tmp_path / f"dsm{seed}.tif", dsm.astype(np.float32)),
            "sparse": write_raster(tmp_path / f"sparse{seed}.tif", sparse, dtype="uint8", nodata=0),
            "ref": write_raster(tmp_path / f"ref{seed}.tif", lab, dtype="uint8", nodata=0)}


def test_train_classify_evaluate_and_finetune_with_a_new_class(tmp_path):
    s = make_scene(tmp_path)
    model = tmp_path / "model"
    code, events, err = run_cli("train", "--hsi", s["hsi"], "--aux", s["dsm"], "--labels", s["sparse"],
                                "--arch", "tiny", "--out", model, "--epochs", "6", "--tile-size", "32")
    assert code == 0, err
    epochs = [e for e in events if e["type"] == "progress" and e["stage"] == "train"]
    assert [e["done"] for e in epochs] == list(range(1, len(epochs) + 1)) and epochs[0]["total"] == 6
    manifest = json.load(open(model / "model.json"))
    assert manifest["architecture"]["name"] == "tiny"
    assert [m["bands"] for m in manifest["modalities"]] == [8, 1]
    assert manifest["modalities"][0]["used_bands"] == list(range(1, 9))
    assert manifest["training"]["data"][0]["sha256"] and "train" in manifest["training"]["command"]
    assert manifest["metrics"]["val_pixels"] > 0 and manifest["metrics"]["train_pixels"] > 0
    assert "python -m backend train" in open(model / "README.md").read()

    # Classify a second scene (another seed) and check what was learned, height class included.
    s2 = make_scene(tmp_path, seed=1)
    out = tmp_path / "map.tif"
    code, events, err = run_cli("classify", "--hsi", s2["hsi"], "--aux", s2["dsm"], "--model", model, "--out", out)
    assert code == 0, err
    code, events, err = run_cli("evaluate", "--prediction", out, "--reference", s2["ref"])
    report = events[-1]["metrics"]
    assert report["oa"] > 0.85, report
    assert report["per_class"]["class_4"]["recall"] > 0.5

    # Fine-tune with a new class: its pixels are part of class 2's area, labelled "pond" by name.
    import pyogrio.raw
    import shapely
    boxes = [((389000 + 2 * 40, 5819000 - 2 * 16, 389000 + 2 * 48, 5819000 - 2 * 8), "pond"),
             ((389000 + 2 * 2, 5819000 - 2 * 30, 389000 + 2 * 10, 5819000 - 2 * 22), "class_1")]
    geoms = np.array([shapely.to_wkb(shapely.box(*b)) for b, _ in boxes], dtype=object)
    pyogrio.raw.write(str(tmp_path / "more.gpkg"), geoms, [np.array([n for _, n in boxes], dtype=object)],
                      fields=["class"], geometry_type="Polygon", crs="EPSG:32633", driver="GPKG")
    tuned = tmp_path / "tuned"
    code, events, err = run_cli("finetune", "--model", model, "--hsi", s["hsi"], "--aux", s["dsm"],
                                "--labels", tmp_path / "more.gpkg", "--out", tuned, "--epochs", "2",
                                "--tile-size", "32")
    assert code == 0, err
    classes = json.load(open(tuned / "model.json"))["classes"]
    assert [c["name"] for c in classes] == ["class_1", "class_2", "class_3", "class_4", "pond"]
    assert json.load(open(tuned / "model.json"))["training"]["finetuned_from"] == "model"


def test_train_refuses_labels_that_miss_the_image(tmp_path):
    s = make_scene(tmp_path)
    far = write_raster(tmp_path / "far.tif", np.ones((10, 10), np.uint8), dtype="uint8",
                       transform=rasterio.transform.from_origin(100000, 100000, 2, 2))
    code, events, _ = run_cli("train", "--hsi", s["hsi"], "--labels", far, "--arch", "tiny", "--out",
                              tmp_path / "m")
    assert code == 1 and events[-1]["code"] == "crs_no_overlap"
    assert not os.path.exists(tmp_path / "m")


def test_early_stopping_score_weighs_every_class_alike():
    from backend.training.train import balanced_accuracy
    reference = np.array([0] * 90 + [1] * 10)
    all_majority = np.zeros(100, int)
    assert balanced_accuracy(reference, all_majority) == 0.5      # OA would say 0.9
    assert balanced_accuracy(reference, reference) == 1.0
