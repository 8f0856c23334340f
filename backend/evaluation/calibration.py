"""`calibrate`: one softmax temperature for a generic model package, fitted on held-out synthetic scenes.

Temperature scaling: probabilities = softmax(logits / T). T > 1 softens an overconfident model, T < 1
sharpens an underconfident one, and no positive T changes which class scores highest, so the class
map stays what it was; only the confidence raster (and `classify --min-confidence`) change.

    fit     T minimises the negative log-likelihood of the reference labels over the `fit` scenes
            (a golden-section search over log T), pooled with and without the DSM when the model
            takes it as optional (classify uses one T whichever inputs it is given)
    check   the expected calibration error (ECE: 15 equal-width bins of the top-1 confidence; the
            pixel-weighted mean of |accuracy − mean confidence| per bin) before (T = 1) and after, on
            *other* scenes, per input combination; also the mean confidence of right and wrong pixels
            and the share of wrong pixels above 0.9. `--check HSI LABELS` adds real labelled rasters
            (measured only, never fitted on).

Scenes: backend.synth.library_scene split "held_out" (held-out spectra, held-out parts of the real maps
or new generated towns, the sensors pretraining never simulates), written as users have them (uint16
×10000 GeoTIFFs with band metadata) and read through classify's own readers and windows
(`engine.classify.scene_logits`). Seeds: fit scene i of `--seed s` is FIT_SEED_BASE + 2 (1000 s + i),
check scene i the odd number after it. Pretraining renders split "train" (seeds 100000 s + i) and
`zeroshot` / `fewshot` render split "held_out" seeds 1000 s + i and 1000 s + 500 + i: for every seed
below 900 none of those scenes is one of these.

The result goes into the package's model.json ("calibration", read by backend.manifest.temperature)
and a section of its model card; the weights file is never touched (its sha256 is checked first).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from backend.protocol import ErrorCode, LandFuseError

BINS = 15
HIGH_CONFIDENCE = 0.9
FIT_SEED_BASE = 900_000
LOG_T_RANGE = (math.log(0.05), math.log(20.0))
CARD_HEADING = "## Calibrated confidence"


@dataclass(frozen=True)
class CalibrateConfig:
    model: str
    scenes: int = 12                                  # per set: the fit set and the check set each
    seed: int = 0
    checks: Sequence[Tuple[str, str]] = ()            # (hsi, labels) real rasters: measured, not fitted
    device: str = "auto"
    dry_run: bool = False                             # measure and report; leave the package as it is

    def cli_argv(self) -> List[str]:
        argv = ["calibrate", "--model", self.model, "--scenes", str(self.scenes), "--seed", str(self.seed)]
        for hsi, labels in self.checks:
            argv += ["--check", hsi, labels]
        return argv


def fit_seed(seed: int, i: int) -> int:
    return FIT_SEED_BASE + 2 * (1000 * seed + i)


def check_seed(seed: int, i: int) -> int:
    return fit_seed(seed, i) + 1


# ---- the statistics (numpy, float64) -----------------------------------------------------------------

def _log_softmax(logits: np.ndarray, t: float) -> np.ndarray:
    z = logits.astype(np.float64) / t
    z -= z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def top_confidence(logits: np.ndarray, t: float = 1.0) -> np.ndarray:
    """Probability of the top class of each row of `logits` (pixels, classes) at temperature t."""
    return np.exp(_log_softmax(logits, t).max(axis=1))


def nll(logits: np.ndarray, target: np.ndarray, t: float) -> float:
    """Mean negative log-likelihood of `target` (class index per row) at temperature t."""
    return float(-_log_softmax(logits, t)[np.arange(len(target)), target].mean())


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """ECE over `bins` equal-width bins (k/bins, (k+1)/bins] of the top-1 confidence."""
    confidence = np.asarray(confidence, np.float64)
    if confidence.size == 0:
        return 0.0
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    gap = np.bincount(index, np.asarray(correct, np.float64), bins) - np.bincount(index, confidence, bins)
    return float(np.abs(gap).sum() / confidence.size)


def fit_temperature(logits: np.ndarray, target: np.ndarray, tol: float = 1e-4) -> float:
    """The T minimising the NLL: golden-section search over log T in LOG_T_RANGE (the NLL is convex
    in 1/T, so it has one minimum there unless that lies outside the range: then its end)."""
    lo, hi = LOG_T_RANGE
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, target, math.exp(a)), nll(logits, target, math.exp(b))
    while hi - lo > tol:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, target, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, target, math.exp(b))
    return math.exp((lo + hi) / 2.0)


def reliability(logits: np.ndarray, target: np.ndarray, t: float = 1.0) -> Dict[str, Any]:
    """What calibration is judged by, at temperature t. `target` −1: a class the model lacks (always
    wrong, left out of the NLL)."""
    confidence = top_confidence(logits, t)
    correct = logits.argmax(axis=1) == target
    wrong = ~correct
    known = target >= 0
    return {
        "pixels": int(target.size),
        "accuracy": round(float(correct.mean()), 4) if target.size else 0.0,
        "ece": round(expected_calibration_error(confidence, correct), 4),
        "nll": round(nll(logits[known], target[known], t), 4) if known.any() else None,
        "mean_confidence": round(float(confidence.mean()), 4) if target.size else 0.0,
        "mean_confidence_correct": round(float(confidence[correct].mean()), 4) if correct.any() else None,
        "mean_confidence_wrong": round(float(confidence[wrong].mean()), 4) if wrong.any() else None,
        "wrong_above_0.9": round(float((confidence[wrong] > HIGH_CONFIDENCE).mean()), 4) if wrong.any() else None,
    }


# ---- the scenes ---------------------------------------------------------------------------------------

def _require_generic(manifest: Dict[str, Any]) -> None:
    from backend.synth import library
    generic = {c["value"]: c["name"] for c in library.GENERIC_CLASSES}
    mine = {c["value"]: c["name"] for c in manifest["classes"]}
    if not manifest["modalities"][0].get("spectral_grid") or mine != generic:
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS,
                            "calibrate fits on synthetic scenes of the generic classes "
                            f"({', '.join(generic.values())}): it takes a generic model package with exactly "
                            "those classes.", "Calibrate the generic model, or a fine-tuned copy that kept its classes.")


def _conditions(manifest: Dict[str, Any]) -> List[Tuple[str, bool]]:
    """(name, with the DSM) for every way classify can be run with this model on a synthetic scene."""
    aux = manifest["modalities"][1:]
    if not aux:
        return [("hsi_only", False)]
    if len(aux) > 1:
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, "calibrate knows scenes of an HSI and a DSM; this model "
                            f"takes {len(aux)} auxiliary rasters.")
    return [("hsi_dsm", True), ("hsi_only", False)] if aux[0].get("optional") else [("hsi_dsm", True)]


def _index_of(manifest: Dict[str, Any], labels: np.ndarray) -> np.ndarray:
    """Reference label values → the network's class index (−1 for a value the model lacks)."""
    lookup = np.full(256, -1, np.int64)
    for i, c in enumerate(manifest["classes"]):
        lookup[c["value"]] = i
    return lookup[np.clip(labels, 0, 255)]


def _pixels(manifest, logits, valid, labels):
    keep = valid & (labels > 0)
    return logits[:, keep].T.copy(), _index_of(manifest, labels[keep].astype(np.int64))


def _synthetic_set(config, manifest, seeds, folder, events, stage):
    """{condition: (logits (n, classes), target (n,))} over the held-out scenes of `seeds`, and a
    description of each scene."""
    from backend.engine.classify import scene_logits
    from backend.evaluation.generic_eval import held_out_scene
    from backend.synth import sensors
    names = sensors.sensor_names("held_out")
    conditions = _conditions(manifest)
    parts = {name: ([], []) for name, _ in conditions}
    scenes = []
    for i, seed in enumerate(seeds):
        sensor = names[i % len(names)]
        paths, scene = held_out_scene(os.path.join(folder, f"{stage}_{i:03d}"), seed, sensor)
        for name, with_dsm in conditions:
            _, logits, valid = scene_logits(paths["hsi"], [paths["dsm"]] if with_dsm else [], config.model,
                                            config.device)
            x, y = _pixels(manifest, logits, valid, scene["labels"])
            parts[name][0].append(x)
            parts[name][1].append(y)
        scenes.append({"seed": seed, "sensor": sensor, "layout": scene["layout"], "pixel_size_m": scene["pixel_size"]})
        events.progress(stage, i + 1, len(seeds))
    return {k: (np.concatenate(x), np.concatenate(y)) for k, (x, y) in parts.items()}, scenes


def _real_check(config, manifest, hsi, labels_path):
    from backend.engine.classify import scene_logits
    from backend.io import rasters
    from backend.io.labels import load_labels
    _, logits, valid = scene_logits(hsi, [], config.model, config.device)
    with rasters.open_raster(hsi, "hyperspectral") as ref:
        labels, _ = load_labels(labels_path, ref, None, manifest["classes"])
    return _pixels(manifest, logits, valid, labels)


def _span(seeds):
    return f"{seeds[0]}, {seeds[1]} … {seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def run_calibration(config: CalibrateConfig, events) -> dict:
    from backend.engine.package import load_manifest_checked, update_manifest
    started = time.perf_counter()
    if not 1 <= config.scenes <= 500:
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, "--scenes must be 1…500")
    manifest, _ = load_manifest_checked(config.model)      # also: the weights match their sha256
    _require_generic(manifest)
    for hsi, labels in config.checks:
        for path in (hsi, labels):
            if not os.path.exists(path):
                raise LandFuseError(ErrorCode.INPUT_NOT_FOUND, f"--check: file not found: {path}")
    fit_seeds = [fit_seed(config.seed, i) for i in range(config.scenes)]
    check_seeds = [check_seed(config.seed, i) for i in range(config.scenes)]
    with tempfile.TemporaryDirectory(prefix="landfuse-calibrate-") as folder:
        fit, fit_scenes = _synthetic_set(config, manifest, fit_seeds, folder, events, "fit scenes")
        x = np.concatenate([v[0] for v in fit.values()])
        y = np.concatenate([v[1] for v in fit.values()])
        t = round(fit_temperature(x, y), 4)      # as recorded: the figures below are the recorded T's
        events.log(f"Temperature {t:.4f} (NLL {nll(x, y, 1.0):.4f} → {nll(x, y, t):.4f} on {len(y)} px)")
        check, check_scenes = _synthetic_set(config, manifest, check_seeds, folder, events, "check scenes")
    measured = dict(check)
    measured["synthetic_all"] = (np.concatenate([v[0] for v in check.values()]),
                                 np.concatenate([v[1] for v in check.values()]))
    for hsi, labels in config.checks:
        measured[os.path.splitext(os.path.basename(hsi))[0]] = _real_check(config, manifest, hsi, labels)
    checks = {name: {"before": reliability(xs, ys, 1.0), "after": reliability(xs, ys, t)}
              for name, (xs, ys) in measured.items()}
    sensors_used = sorted({s["sensor"] for s in fit_scenes + check_scenes})
    calibration = {
        "temperature": t,
        "method": "temperature scaling: NLL minimised over log T (golden section)",
        "fitted_on": (f"{len(fit_seeds)} held-out synthetic scenes (split held_out, seeds {_span(fit_seeds)}; "
                      f"{', '.join(sensors_used)}), " + _INPUTS[tuple(fit)] + f": {len(y)} labelled px"),
        "checked_on": (f"{len(check_seeds)} other held-out synthetic scenes (seeds {_span(check_seeds)})"
                       + "".join(f"; {os.path.basename(h)} (real, labels {os.path.basename(lab)})"
                                 for h, lab in config.checks)),
        "bins": BINS,
        "ece_before": checks["synthetic_all"]["before"]["ece"],
        "ece_after": checks["synthetic_all"]["after"]["ece"],
        "checks": checks,
        "command": "python -m backend " + shlex.join(config.cli_argv()),
    }
    outputs = {}
    if not config.dry_run:
        update_manifest(config.model, {"calibration": calibration})
        outputs["manifest"] = os.path.join(os.path.abspath(config.model), "model.json")
        card = os.path.join(config.model, "README.md")
        if os.path.isfile(card):
            from backend.io.atomic import write_text_atomic
            with open(card, encoding="utf-8") as f:
                text = f.read()
            write_text_atomic(card, with_card_section(text, card_section(calibration)))
            outputs["card"] = os.path.abspath(card)
    for name, row in checks.items():
        b, a = row["before"], row["after"]
        events.log(f"{name}: ECE {b['ece']:.4f} → {a['ece']:.4f}, accuracy {a['accuracy']:.4f} ({a['pixels']} px)")
    return {"outputs": outputs, "calibration": calibration,
            "metrics": {"temperature": calibration["temperature"], "ece_before": calibration["ece_before"],
                        "ece_after": calibration["ece_after"]},
            "timings": {"total_s": round(time.perf_counter() - started, 1)}}


# ---- the model card --------------------------------------------------------------------------------------

_INPUTS = {("hsi_dsm", "hsi_only"): "each with and without the DSM", ("hsi_dsm",): "with the DSM",
           ("hsi_only",): "HSI only"}
_LABELS = {"hsi_dsm": "held-out synthetic, HSI + DSM", "hsi_only": "held-out synthetic, HSI only",
           "synthetic_all": "held-out synthetic, both"}


def _fmt(value):
    return "–" if value is None else f"{value:.3f}"


def card_section(calibration: Dict[str, Any]) -> str:
    """The model card's section on the calibration recorded in model.json."""
    lines = [CARD_HEADING,
             f"Confidences are softmax(logits / T) with T = {calibration['temperature']:g} (model.json "
             "`calibration`; no temperature changes which class wins, so the map is the same as with T = 1). "
             f"Fitted on {calibration['fitted_on']}; measured on {calibration['checked_on']}. "
             f"ECE: {calibration.get('bins', BINS)} equal-width bins of the top-1 confidence. Command:", "",
             "```", calibration["command"], "```", "",
             "| scenes | pixels | accuracy | ECE before | ECE after | confidence right, before → after "
             "| confidence wrong, before → after | wrong > 0.9, before → after |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in calibration.get("checks", {}).items():
        b, a = row["before"], row["after"]
        lines.append(f"| {_LABELS.get(name, name + ' (real)')} | {a['pixels']} | {a['accuracy']:.3f} | {b['ece']:.3f} | "
                     f"{a['ece']:.3f} | {_fmt(b['mean_confidence_correct'])} → {_fmt(a['mean_confidence_correct'])} | "
                     f"{_fmt(b['mean_confidence_wrong'])} → {_fmt(a['mean_confidence_wrong'])} | "
                     f"{_fmt(b['wrong_above_0.9'])} → {_fmt(a['wrong_above_0.9'])} |")
    lines += ["", ("T < 1: on held-out synthetic scenes the model was less sure than it was right, so calibration "
                   "sharpens its confidences (and more of the wrong pixels pass 0.9 too)."
                   if calibration["temperature"] < 1 else
                   "T > 1: on held-out synthetic scenes the model was surer than it was right, so calibration "
                   "softens its confidences."),
              "The temperature is fitted on synthetic scenes: on real scenes unlike them (rows marked real) the "
              "confidences can stay far from calibrated. A temperature only rescales them; where they do not tell "
              "right from wrong pixels apart (compare the two confidence columns), no temperature makes them.", "",
              "`classify --min-confidence P` leaves pixels whose calibrated confidence is below P as "
              "\"unclassified\" (value 255, its own legend entry; 0 stays no data)."]
    return "\n".join(lines) + "\n"


def with_card_section(card: str, section: str) -> str:
    """`card` with its calibration section replaced by `section` (or inserted before "## Classes",
    else appended)."""
    pattern = re.compile(r"^" + re.escape(CARD_HEADING) + r"\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(card):
        return pattern.sub(lambda m: section + "\n", card, count=1).rstrip("\n") + "\n"
    classes = re.search(r"^## Classes\n", card, re.M)
    if classes:
        return card[:classes.start()] + section + "\n" + card[classes.start():]
    return card.rstrip("\n") + "\n\n" + section
