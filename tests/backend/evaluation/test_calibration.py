"""Calibrated confidence (issue 18): the package's temperature in classify, the statistics of
`calibrate`, the command end to end on a copy of the generic model, and `--min-confidence`."""

import json
import math
import os
import shlex
import shutil

import numpy as np
import pytest
import rasterio

from backend.engine import package
from backend.engine.classify import classify, scene_logits
from backend.evaluation import calibration as cal
from backend.manifest import temperature, validate_manifest
from backend.protocol import EventWriter, LandFuseError
from tests.backend.conftest import REPO, make_package, needs_shared, run_cli

GENERIC = os.path.join(REPO, "models", "generic-landcover")


class Recorder(EventWriter):
    def __init__(self):
        self.events = []

    def emit(self, event_type, **fields):
        self.events.append({"type": event_type, **fields})


def _classify(scene, model, name, **kw):
    out, conf = scene["dir"] / f"{name}.tif", scene["dir"] / f"{name}_conf.tif"
    result = classify(scene["hsi"], [scene["dsm"]], model, str(out), Recorder(), confidence=str(conf),
                      window=32, **kw)
    with rasterio.open(out) as a, rasterio.open(conf) as b:
        return result, a.read(1), b.read(1)


def _softmax_top(logits, t):
    z = logits.astype(np.float64) / t
    z -= z.max(axis=0)
    p = np.exp(z) / np.exp(z).sum(axis=0)
    return p.max(axis=0)


# ---- the temperature in classify ------------------------------------------------------------------------

def test_a_temperature_changes_the_confidence_never_the_class_map(scene, model2):
    before, map_before, conf_before = _classify(scene, model2, "before")
    sha = package.sha256_file(os.path.join(model2, "weights.safetensors"))
    for t in (0.3, 2.5, 40.0):
        package.update_manifest(model2, {"calibration": {"temperature": t}})
        assert package.sha256_file(os.path.join(model2, "weights.safetensors")) == sha
        after, map_after, conf_after = _classify(scene, model2, f"t{t}")
        assert np.array_equal(map_before, map_after)               # argmax unchanged by any T > 0
        assert after["metrics"]["pixels_per_class"] == before["metrics"]["pixels_per_class"]
        assert after["metrics"]["temperature"] == t
        _, logits, valid = scene_logits(scene["hsi"], [scene["dsm"]], model2)
        assert np.allclose(conf_after[valid], _softmax_top(logits, t)[valid], atol=1e-5)
        assert ((conf_after < conf_before) if t > 1 else (conf_after > conf_before))[valid].mean() > 0.99
    assert before["metrics"]["temperature"] == 1.0


def test_classify_batch_divides_by_the_same_temperature(scene, model2):
    package.update_manifest(model2, {"calibration": {"temperature": 3.0}})
    _, map_one, conf_one = _classify(scene, model2, "one")
    code, events, err = run_cli("classify-batch", "--inputs", scene["hsi"], "--aux", scene["dsm"], "--model", model2,
                                "--out-dir", scene["dir"] / "batch", "--workers", 1, "--confidence",
                                "--window", 32, timeout=600)
    assert code == 0, err
    with rasterio.open(scene["dir"] / "batch" / "hsi_classes.tif") as a, \
            rasterio.open(scene["dir"] / "batch" / "hsi_confidence.tif") as b:
        assert np.array_equal(a.read(1), map_one)
        assert np.allclose(b.read(1), conf_one, atol=1e-6)


def test_the_manifest_validates_the_temperature_and_defaults_to_one():
    base = json.load(open(os.path.join(GENERIC, "model.json")))
    base.pop("calibration", None)
    assert temperature(validate_manifest(base)) == 1.0
    assert temperature(validate_manifest(dict(base, calibration={"temperature": 1.7}))) == 1.7
    for bad in (0, -1.0, float("inf"), float("nan"), "2", True, None, 1e9, 1e-9):
        with pytest.raises(LandFuseError) as err:
            validate_manifest(dict(base, calibration={"temperature": bad}))
        assert err.value.code == "bad_model"
    with pytest.raises(LandFuseError):
        validate_manifest(dict(base, calibration=2.0))


# ---- the statistics ------------------------------------------------------------------------------------

def test_ece_of_known_bins():
    conf = np.array([0.95, 0.95, 0.95, 0.95, 0.55, 0.55])
    correct = np.array([1, 1, 1, 0, 1, 0], bool)
    # bin (0.933, 1]: accuracy 0.75 vs 0.95; bin (0.533, 0.6]: 0.5 vs 0.55
    assert cal.expected_calibration_error(conf, correct) == pytest.approx((4 * 0.2 + 2 * 0.05) / 6)
    assert cal.expected_calibration_error(np.array([1.0, 1 / 15]), np.array([True, False])) == pytest.approx(
        (0 + 1 / 15) / 2)


def test_the_fit_recovers_the_temperature_labels_were_drawn_with():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (60_000, 6))
    p = np.exp(logits / 2.5)
    p /= p.sum(axis=1, keepdims=True)
    target = (rng.random((len(p), 1)) > p.cumsum(axis=1)).sum(axis=1)
    t = cal.fit_temperature(logits, target)
    assert t == pytest.approx(2.5, rel=0.05)
    before, after = cal.reliability(logits, target, 1.0), cal.reliability(logits, target, t)
    assert after["ece"] < 0.01 < before["ece"] and after["nll"] < before["nll"]
    assert after["accuracy"] == before["accuracy"]


def test_the_card_section_is_replaced_or_inserted():
    section = cal.CARD_HEADING + "\nnew\n"
    card = "# m\n\n## A\na\n\n## Classes\n| 1 |\n"
    once = cal.with_card_section(card, section)
    assert once == "# m\n\n## A\na\n\n" + section + "\n## Classes\n| 1 |\n"
    assert cal.with_card_section(once, cal.CARD_HEADING + "\nnewer\n").count(cal.CARD_HEADING) == 1
    assert "newer" in cal.with_card_section(once, cal.CARD_HEADING + "\nnewer\n")
    assert cal.with_card_section("# m\n", section) == "# m\n\n" + section
    assert cal.with_card_section("# m\n\n" + cal.CARD_HEADING + "\nold\n", section) == "# m\n\n" + section


# ---- the command -----------------------------------------------------------------------------------------

@needs_shared
def test_calibrate_writes_the_temperature_and_leaves_the_weights(tmp_path, monkeypatch):
    from backend.evaluation import generic_eval
    model = tmp_path / "generic"
    shutil.copytree(GENERIC, model)
    manifest = json.load(open(model / "model.json"))
    manifest.pop("calibration", None)
    (model / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    weights = (model / "weights.safetensors").read_bytes()
    monkeypatch.setattr(generic_eval, "SCENE_SIZE", 32)     # small scenes: the path, not the figures
    result = cal.run_calibration(cal.CalibrateConfig(model=str(model), scenes=1, device="cpu"), Recorder())
    assert (model / "weights.safetensors").read_bytes() == weights
    written = package.load_manifest_checked(str(model))[0]["calibration"]
    assert written == result["calibration"] and math.isfinite(written["temperature"]) and written["temperature"] > 0
    assert set(written["checks"]) == {"hsi_dsm", "hsi_only", "synthetic_all"}
    for row in written["checks"].values():
        assert row["before"]["accuracy"] == row["after"]["accuracy"] and row["before"]["pixels"] > 0
    assert written["ece_after"] == written["checks"]["synthetic_all"]["after"]["ece"]
    assert shlex.split(written["command"])[3:] == ["calibrate", "--model", str(model), "--scenes", "1", "--seed", "0"]
    card = (model / "README.md").read_text()
    assert card.count(cal.CARD_HEADING) == 1 and written["command"] in card
    assert card.index(cal.CARD_HEADING) < card.index("## Classes")


def test_fit_and_check_scenes_are_disjoint_from_pretraining_and_evaluation():
    fit = {cal.fit_seed(s, i) for s in range(3) for i in range(500)}
    check = {cal.check_seed(s, i) for s in range(3) for i in range(500)}
    assert not fit & check
    evaluation = {1000 * s + i for s in range(900) for i in range(502)}   # zeroshot / fewshot, split held_out
    assert not (fit | check) & evaluation


def test_calibrate_refuses_a_model_of_other_classes(model2):
    code, events, _ = run_cli("calibrate", "--model", model2, "--scenes", "1")
    assert code == 2 and events[-1]["code"] == "bad_arguments" and "generic" in events[-1]["message"]


@needs_shared
def test_the_bundled_model_records_a_calibration_its_command_reruns():
    from backend.cli import parse_args
    manifest, _ = package.load_manifest_checked(GENERIC)          # also: the weights still match their sha256
    calibration = manifest["calibration"]
    assert 0 < calibration["temperature"] and calibration["ece_after"] <= 0.05
    args = parse_args(shlex.split(calibration["command"])[3:])
    assert args.command == "calibrate" and os.path.normpath(args.model) == os.path.join("models", "generic-landcover")
    assert calibration["command"] in open(os.path.join(GENERIC, "README.md"), encoding="utf-8").read()


# ---- --min-confidence ------------------------------------------------------------------------------------

def test_min_confidence_leaves_unsure_pixels_unclassified_with_a_legend_entry(scene, model2):
    _, plain, conf = _classify(scene, model2, "plain")
    p = float(np.median(conf[conf >= 0]))
    result, rejected, conf2 = _classify(scene, model2, "rejected", min_confidence=p)
    low = (conf < p) & (plain > 0)
    assert low.any() and (~low & (plain > 0)).any()
    assert (rejected[low] == 255).all() and np.array_equal(rejected[~low], plain[~low])
    assert np.array_equal(conf, conf2)                 # the confidence raster keeps every pixel's confidence
    assert result["class_table"][-1] == {"value": 255, "name": "unclassified", "color": "#000000"}
    assert result["metrics"]["unclassified_pixels"] == int(low.sum()) == result["metrics"]["pixels_per_class"]["unclassified"]
    assert result["metrics"]["min_confidence"] == p
    out = scene["dir"] / "rejected.tif"
    with rasterio.open(out) as ds:
        assert ds.nodata == 0 and ds.colormap(1)[255][:3] == (0, 0, 0)
        assert json.loads(ds.tags()["LANDFUSE_CLASSES"])[-1]["name"] == "unclassified"
    qml = open(scene["dir"] / "rejected.qml").read()
    assert 'value="255"' in qml and 'label="unclassified"' in qml
    assert "<Category>unclassified</Category>" in open(str(out) + ".aux.xml").read()
    assert "unclassified" not in open(scene["dir"] / "plain.qml").read()


def test_min_confidence_keeps_nodata_as_nodata(tmp_path):
    from tests.backend.conftest import write_raster
    rng = np.random.default_rng(2)
    hsi = rng.normal(0, 1, (4, 24, 24)).astype(np.float32)
    hsi[:, :4] = -9999.0
    path = write_raster(tmp_path / "h.tif", hsi, nodata=-9999.0)
    model = make_package(tmp_path / "m", [4])
    classify(path, [], model, str(tmp_path / "o.tif"), Recorder(), min_confidence=0.99)
    out = rasterio.open(tmp_path / "o.tif").read(1)
    assert (out[:4] == 0).all() and (out[4:] == 255).all()       # a 3-class softmax of noise is never 0.99 sure


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_min_confidence_out_of_range_is_refused(scene, model2, bad):
    with pytest.raises(LandFuseError) as err:
        classify(scene["hsi"], [scene["dsm"]], model2, str(scene["dir"] / "x.tif"), Recorder(), min_confidence=bad)
    assert err.value.code == "bad_arguments"
    assert not os.path.exists(scene["dir"] / "x.tif")


def test_min_confidence_on_the_command_line(scene, model2):
    for bad in ("1", "-0.2", "high"):
        code, events, _ = run_cli("classify", "--hsi", scene["hsi"], "--aux", scene["dsm"], "--model", model2,
                                  "--out", scene["dir"] / "cli.tif", "--min-confidence", bad)
        assert code == 2 and events[-1]["code"] == "bad_arguments"
    code, events, err = run_cli("classify", "--hsi", scene["hsi"], "--aux", scene["dsm"], "--model", model2,
                                "--out", scene["dir"] / "cli.tif", "--min-confidence", "0.5")
    assert code == 0, err
    assert events[-1]["class_table"][-1]["name"] == "unclassified"


def test_classify_batch_leaves_the_same_pixels_unclassified_as_classify(scene, model2):
    _, plain, conf = _classify(scene, model2, "plain")
    p = round(float(np.median(conf[conf >= 0])), 4)
    _, rejected, _ = _classify(scene, model2, "rejected", min_confidence=p)
    code, events, err = run_cli("classify-batch", "--inputs", scene["hsi"], "--aux", scene["dsm"], "--model", model2,
                                "--out-dir", scene["dir"] / "batch", "--workers", 1, "--window", 32,
                                "--min-confidence", p, timeout=600)
    assert code == 0, err
    assert events[-1]["class_table"][-1]["name"] == "unclassified"
    with rasterio.open(scene["dir"] / "batch" / "hsi_classes.tif") as ds:
        assert np.array_equal(ds.read(1), rejected) and (rejected == 255).any()
        assert json.loads(ds.tags()["LANDFUSE_CLASSES"])[-1]["name"] == "unclassified"
    assert 'label="unclassified"' in open(scene["dir"] / "batch" / "hsi_classes.qml").read()
    summary = json.load(open(scene["dir"] / "batch" / "classify_batch.json"))
    assert summary["scenes"][0]["pixels_per_class"]["unclassified"] == int((rejected == 255).sum())
    code, events, _ = run_cli("classify-batch", "--inputs", scene["hsi"], "--aux", scene["dsm"], "--model", model2,
                              "--out-dir", scene["dir"] / "batch2", "--min-confidence", "1")
    assert code == 2 and events[-1]["code"] == "bad_arguments"


def test_a_model_that_uses_value_255_cannot_reject(scene, tmp_path):
    classes = [{"value": 1, "name": "a", "color": "#111111"}, {"value": 255, "name": "b", "color": "#222222"}]
    model = make_package(tmp_path / "m255", [10, 1], classes=classes)
    classify(scene["hsi"], [scene["dsm"]], model, str(tmp_path / "ok.tif"), Recorder())      # no threshold: fine
    with pytest.raises(LandFuseError) as err:
        classify(scene["hsi"], [scene["dsm"]], model, str(tmp_path / "no.tif"), Recorder(), min_confidence=0.5)
    assert err.value.code == "bad_arguments" and "255" in err.value.message
    assert not os.path.exists(tmp_path / "no.tif")
