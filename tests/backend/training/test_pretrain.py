"""`pretrain` and the generic model's paths: deterministic packages, any band set in, DSM optional,
clean refusal without wavelengths, fine-tuning that keeps or drops classes, the bundled package."""

import json
import os
import shlex

import numpy as np
import pytest
import rasterio

from tests.backend.conftest import REPO, SHARED_DATA, needs_shared, run_cli

pytestmark = needs_shared
GENERIC = os.path.join(REPO, "models", "generic-landcover")
TINY_ARGS = ["--arch", "tiny", "--scenes", "3", "--size", "32", "--crop", "32", "--steps", "4", "--batch", "2"]


@pytest.fixture(scope="module")
def tiny_generic(tmp_path_factory):
    out = tmp_path_factory.mktemp("generic") / "tiny-generic"
    code, events, err = run_cli("pretrain", "--out", out, "--seed", "3", *TINY_ARGS)
    assert code == 0, err
    return str(out)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from backend.synth.scene import generate_scene
    return generate_scene(str(tmp_path_factory.mktemp("scene")), seed=5, height=48, width=48, n_bands=37,
                          wl_min_nm=430.0, wl_max_nm=2380.0)


def test_pretraining_is_deterministic_and_records_itself(tiny_generic, tmp_path):
    again = tmp_path / "again"
    code, _, err = run_cli("pretrain", "--out", again, "--seed", "3", *TINY_ARGS)
    assert code == 0, err
    first = json.load(open(os.path.join(tiny_generic, "model.json")))
    second = json.load(open(again / "model.json"))
    assert first["weights"]["sha256"] == second["weights"]["sha256"]
    assert first["generic"] is True
    assert first["modalities"][0]["spectral_grid"] and first["modalities"][1]["optional"] is True
    assert [c["name"] for c in first["classes"]] == ["roof", "pavement", "low vegetation", "tree", "soil", "water"]
    assert first["training"]["command"].split()[3] == "pretrain"
    assert first["training"]["versions"]["earthlib"]
    assert any(d["file"].startswith("enmap_berlin") for d in first["training"]["data"])


def test_classifies_any_band_set_with_or_without_dsm(tiny_generic, scene, tmp_path):
    for aux in ([scene["dsm"]], []):
        out = tmp_path / f"map{len(aux)}.tif"
        args = ["classify", "--hsi", scene["hsi"], "--model", tiny_generic, "--out", out]
        for a in aux:
            args += ["--aux", a]
        code, events, err = run_cli(*args)
        assert code == 0, err
        logs = " ".join(e.get("message", "") for e in events if e["type"] == "log")
        assert "canonical bins" in logs
        if not aux:
            assert "dsm: not given" in logs
        with rasterio.open(out) as ds:
            classes = ds.read(1)
        assert set(np.unique(classes)) - {0} <= {1, 2, 3, 4, 5, 6}
        assert (classes > 0).mean() > 0.8


def test_no_wavelengths_is_a_clean_refusal_and_override_works(tiny_generic, tmp_path):
    tile = os.path.join(SHARED_DATA, "dfc2018_hsi_tile", "testHSI.tif")
    out = tmp_path / "dfc.tif"
    code, events, _ = run_cli("classify", "--hsi", tile, "--model", tiny_generic, "--out", out)
    assert code == 1
    assert [e for e in events if e["type"] == "error"][-1]["code"] == "wavelengths_unknown"
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if "dfc" in p]
    wl = os.path.join(REPO, "resources", "wavelengths", "casi1500_dfc2018_48.txt")
    code, _, err = run_cli("classify", "--hsi", tile, "--model", tiny_generic, "--out", out, "--wavelengths", wl)
    assert code == 0, err
    assert out.exists()


def test_samson_envi_with_its_messy_header_runs_zero_shot(tiny_generic, tmp_path):
    out = tmp_path / "samson.tif"
    code, events, err = run_cli("classify", "--hsi", os.path.join(SHARED_DATA, "samson", "samson_1.img"),
                                "--model", tiny_generic, "--out", out)
    assert code == 0, err
    logs = " ".join(e.get("message", "") for e in events if e["type"] == "log")
    assert "156 bands at 401–899 nm" in logs       # wavelengths from its ENVI header, via GDAL
    assert "scaling them" in logs                    # int16 with an undocumented scale


def test_finetune_from_generic_can_drop_unlabelled_classes(tiny_generic, scene, tmp_path):
    from backend.synth.labels import sample_labels
    labels = tmp_path / "few.tif"
    sample_labels(scene["labels"], str(labels), per_class=10, seed=1)
    with rasterio.open(labels) as ds:
        data = ds.read(1)
        profile = ds.profile
    data[np.isin(data, [5, 6])] = 0       # the user never labels soil or water
    with rasterio.open(labels, "w", **profile) as ds:
        ds.write(data, 1)
    out = tmp_path / "tuned"
    code, events, err = run_cli("finetune", "--model", tiny_generic, "--hsi", scene["hsi"], "--labels", labels,
                                "--out", out, "--epochs", "1", "--only-labelled-classes")
    assert code == 0, err
    manifest = json.load(open(out / "model.json"))
    present = sorted(set(np.unique(data).tolist()) - {0})
    assert [c["value"] for c in manifest["classes"]] == present
    assert manifest["modalities"][0]["spectral_grid"]      # still reads any sensor


def test_bundled_generic_model_is_the_output_of_its_recorded_command():
    from backend.cli import build_parser
    from backend.engine.package import load_manifest_checked
    manifest, _ = load_manifest_checked(GENERIC)          # verifies the weights' sha256
    argv = shlex.split(manifest["training"]["command"])[3:]
    args = build_parser().parse_args(argv)
    assert args.command == "pretrain"
    assert os.path.basename(os.path.normpath(args.out)) == "generic-landcover"
    assert manifest["training"]["seed"] == args.seed and manifest["training"]["steps"] == args.steps
    assert manifest["training"]["scenes"] == args.scenes and manifest["architecture"]["name"] == args.arch
    card = open(os.path.join(GENERIC, "README.md"), encoding="utf-8").read()
    assert manifest["training"]["command"] in card


def _normalised_scene_crop(seed=5, size=40):
    from backend.synth.library_scene import render_library_scene
    from backend.training import pretrain
    scene = render_library_scene(seed, "train", size=size)
    feats, _, _ = pretrain.scene_arrays(scene)
    mean, std, _ = pretrain.feature_stats([feats], [scene["valid"]])
    x = (feats - mean[:, None, None]) / std[:, None, None]
    x[:, ~scene["valid"]] = 0.0
    return x, mean, std, scene["valid"]


def test_radiometric_residual_keeps_the_canonical_features_consistent(monkeypatch):
    from backend.engine import canonical
    from backend.training import pretrain
    x, mean, std, valid = _normalised_scene_crop()
    nb = canonical.N_BINS

    class NoResidual:   # zero gain error, no adjacency, no haze: the features must come back as they were
        def normal(self, loc, scale):
            return 0.0

        def uniform(self, low, high):
            return low

        def random(self):
            return 1.0
    same = x.copy()
    pretrain.residual_correction(same, mean, std, NoResidual())
    assert np.abs(same - x).max() < 1e-4

    monkeypatch.setattr(pretrain, "ADJACENCY_SHARE", 1.0)
    monkeypatch.setattr(pretrain, "HAZE_SHARE", 1.0)
    drawn = x.copy()
    pretrain.residual_correction(drawn, mean, std, np.random.default_rng(1))
    assert np.abs(drawn - x)[:, valid].mean() > 0.01                # it did change the spectra …
    assert np.array_equal(drawn[:, ~valid], x[:, ~valid])          # … never the nodata pixels
    assert np.array_equal(drawn[nb + 1:], x[nb + 1:])              # … nor the coverage mask
    # shape is still spectrum / brightness: its mean over the covered 450–900 nm bins is 1
    covered = x[nb + 1:, valid][:, 0] > 0.5
    core = covered & (canonical.GRID_NM >= canonical.BRIGHTNESS_NM[0]) & (canonical.GRID_NM <= canonical.BRIGHTNESS_NM[1])
    shape = drawn[:nb] * std[:nb, None, None] + mean[:nb, None, None]
    assert np.allclose(shape[core][:, valid].mean(axis=0), 1.0, atol=1e-3)


def test_litter_alone_is_no_longer_low_vegetation():
    from backend.synth import library
    lib = library.load_library()
    litter = np.char.startswith(lib.names.astype(str), "earthlib:") & (lib.classes == 3)
    assert not litter.any()
    assert dict(((s, k), v) for s, k, v, _ in library.CLASS_MAP)[("earthlib", "npv/litter")] is None
