"""`benchmark`: networks (and a random forest baseline) on a standard dataset, several seeds.

For each seed the dataset is written as plain rasters (backend.evaluation.datasets; datasets without an official
split draw it from the seed, so every architecture of one seed sees the same split); for each
architecture the scene is trained on the train labels (backend.training.train, as `train` does), classified
whole (backend.engine.classify, as `classify` does) and scored on the test labels (backend.evaluation.evaluate: every
test pixel once). Results: mean ± std of OA / AA / κ and of train / classify seconds per architecture,
as the `result` event and as results.json + results.md in --out.

`random_forest` is scikit-learn's RandomForestClassifier (300 trees, all cores) on the same train
pixels' band values (HSI + aux); scikit-learn is a benchmark-only dependency, imported when used.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from backend import nets
from backend.evaluation import datasets
from backend.evaluation.baselines import RF_TREES, random_forest
from backend.io.atomic import write_json_atomic, write_text_atomic
from backend.protocol import ErrorCode, LandFuseError, NestedEvents
from backend.training.config import TrainConfig

NET_ARCHS = tuple(nets.ARCHITECTURES)
BASELINES = ("random_forest",)
ARCHS = NET_ARCHS + BASELINES
DEFAULT_ARCHS = ("m3amba", "bdgf", "random_forest")


@dataclass(frozen=True)
class BenchmarkConfig:
    """One `benchmark` run: every architecture in `archs` over seeds 0..seeds-1 on one dataset."""
    dataset: str
    data_dir: str
    out: str
    arch: Optional[Sequence[str]] = None      # None: DEFAULT_ARCHS
    seeds: int = 3
    per_class: Optional[int] = None
    epochs: Optional[int] = None
    tile_size: int = 64
    train_size: Optional[str] = None
    skip_checksums: bool = False
    resume: bool = False
    device: str = "auto"
    cross_validate: bool = True   # the networks' own blocked cross-validated estimate (part of `train`)
    command: Sequence[str] = ()


def _train_net(arch, data, labels, model_dir, seed, epochs, tile_size, device, events, cross_validate=True):
    from backend.training.train import run_training
    config = TrainConfig(hsi=data["hsi"], labels=labels, out=model_dir, aux=tuple(data["aux"]), arch=arch,
                         epochs=epochs, device=device, seed=seed, tile_size=tile_size, cross_validate=cross_validate)
    return run_training(config, events)


def _classify_net(data, model_dir, out, device, events):
    from backend.engine.classify import classify
    return classify(data["hsi"], data["aux"], model_dir, out, events, device=device)


def _stack_features(data):
    """All bands of the HSI and the aux rasters as (pixels, features) float32 + the grid profile."""
    import warnings

    import rasterio
    arrays = []
    profile = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in [data["hsi"]] + list(data["aux"]):
            with rasterio.open(path) as src:
                arrays.append(src.read().astype(np.float32))
                profile = profile or src.profile.copy()
    stack = np.concatenate(arrays, axis=0)
    features = stack.reshape(stack.shape[0], -1).T
    return np.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0), profile, stack.shape[1:]


def _read_labels(path):
    import warnings

    import rasterio
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as src:
            return src.read(1).astype(np.int64), json.loads(src.tags().get("LANDFUSE_CLASSES", "[]"))


def _random_forest(data, labels, out, seed, events):
    """Fit on the train pixels, then classify every pixel of the scene; returns (train_s, classify_s)."""
    forest = random_forest(seed)
    from rasterio.windows import Window

    from backend.io.output import ClassificationWriter
    started = time.perf_counter()
    features, profile, (h, w) = _stack_features(data)
    train, table = _read_labels(labels)
    mask = train.ravel() > 0
    forest.fit(features[mask], train.ravel()[mask])
    train_s = time.perf_counter() - started
    events.log(f"[random_forest seed {seed}] fitted {RF_TREES} trees on {int(mask.sum())} px in {train_s:.1f} s")
    started = time.perf_counter()
    present = {int(v) for v in forest.classes_}
    classes = [c for c in table if c["value"] in present] or [
        {"value": v, "name": f"class_{v}", "color": "#999999"} for v in sorted(present)]
    writer = ClassificationWriter(out, profile, classes)
    try:
        rows = max(1, 200_000 // w)
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            pred = forest.predict(features[r0 * w:r1 * w]).reshape(r1 - r0, w)
            writer.write(Window(0, r0, w, r1 - r0), pred.astype(np.uint8))
            events.progress("random_forest:classify", r1, h)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return train_s, time.perf_counter() - started


def _metric(report, *keys):
    """A figure of an evaluate report, under its current key or an earlier one."""
    for key in keys:
        if key in report:
            return report[key]
    raise KeyError(keys[0])


def _mean_std(values):
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


# Fractions per run; "_interior": the same on the test pixels away from class boundaries (evaluate's
# "interior": labelled 8-neighbours all of the pixel's class).
ACCURACY_KEYS = ("oa", "aa", "kappa", "oa_interior", "aa_interior")


def summarize(runs, archs):
    summary = {}
    for arch in archs:
        mine = [r for r in runs if r["arch"] == arch]
        if not mine:
            continue
        entry = {"seeds": [r["seed"] for r in mine]}
        for key in ACCURACY_KEYS + ("train_s", "classify_s"):
            if any(key not in r for r in mine):   # runs recorded before a figure existed (--resume)
                continue
            mean, std = _mean_std([r[key] for r in mine])
            entry[key] = {"mean": round(mean, 4 if key in ACCURACY_KEYS else 1),
                          "std": round(std, 4 if key in ACCURACY_KEYS else 1)}
        summary[arch] = entry
    return summary


def markdown(report):
    lines = [f"### {report['dataset']}" + (f", {report['per_class']} train px per class" if report["per_class"] else
                                           ", all train labels"), "",
             f"Split: {report['split']}. Train pixels (seed {report['runs'][0]['seed'] if report['runs'] else 0}): "
             f"{report['train_pixels']}; test pixels: {report['test_pixels']} (each counted once).", "",
             "| arch | OA % | AA % | κ × 100 | interior OA % | interior AA % | train s | classify s | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    def pct(s, key):
        return f"{100 * s[key]['mean']:.2f} ± {100 * s[key]['std']:.2f}" if key in s else "–"

    for arch, s in report["summary"].items():
        lines.append(f"| {arch} | {pct(s, 'oa')} | {pct(s, 'aa')} | {pct(s, 'kappa')} | "
                     f"{pct(s, 'oa_interior')} | {pct(s, 'aa_interior')} | "
                     f"{s['train_s']['mean']:.1f} ± {s['train_s']['std']:.1f} | "
                     f"{s['classify_s']['mean']:.1f} ± {s['classify_s']['std']:.1f} | {len(s['seeds'])} |")
    m = report["machine"]
    lines += ["", "Interior: the test pixels whose labelled 8-neighbours all share their class (class boundaries "
              "left out; every other figure counts every test pixel once)."]
    lines += ["", f"Machine: {m['cpu']} ({m['cores']} cores, torch {m['torch']} with {m['threads']} threads, "
              f"device {report['device']}). Mean ± sample std over seeds.", "", "```", report["command"], "```", ""]
    return "\n".join(lines)


def _machine():
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads()}


def run_benchmark(config: BenchmarkConfig, events) -> dict:
    archs = list(dict.fromkeys(config.arch or DEFAULT_ARCHS))
    unknown = [a for a in archs if a not in ARCHS]
    if unknown:
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"Unknown --arch {', '.join(unknown)}",
                            f"Choose from {', '.join(ARCHS)}.")
    if config.seeds < 1 or (config.per_class is not None and config.per_class < 1):
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, "--seeds and --per-class must be ≥ 1")
    if "random_forest" in archs:
        random_forest(0)   # says at once, not after an hour of networks, when scikit-learn is missing
    from backend.engine import device as devices
    from backend.evaluation.evaluate import evaluate
    device = devices.resolve_device(config.device)
    out = os.path.abspath(config.out)
    os.makedirs(out, exist_ok=True)
    command = "python -m backend " + shlex.join(list(config.command) or ["benchmark"])
    seeds = list(range(config.seeds))
    total = len(seeds) * len(archs)
    checked = {}
    runs = []
    data = None
    events.progress("benchmark", 0, total)
    for seed in seeds:
        # Datasets with an official split are written once; seeded splits once per seed.
        data_dir = os.path.join(out, "data", f"seed{seed}" if config.dataset in datasets.SEEDED_SPLIT else "official")
        if data is None or config.dataset in datasets.SEEDED_SPLIT:
            data = datasets.prepare(config.dataset, config.data_dir, data_dir, events.log, seed=seed,
                                    train_size=config.train_size, strict=not config.skip_checksums, checked=checked)
        labels = data["train"]
        train_counts = data["train_pixels"]
        if config.per_class:
            labels = os.path.join(out, "data", f"train_{config.per_class}pc_seed{seed}.tif")
            train_counts = datasets.subsample_labels(data["train"], labels, config.per_class, seed)
        for arch in archs:
            run_dir = os.path.join(out, "runs", f"{arch}_seed{seed}")
            record_path = os.path.join(run_dir, "run.json")
            if config.resume and os.path.isfile(record_path):
                with open(record_path, encoding="utf-8") as f:
                    record = json.load(f)
                events.log(f"[{arch} seed {seed}] reusing {record_path}")
            else:
                os.makedirs(run_dir, exist_ok=True)
                nested = NestedEvents(events, f"{arch} seed {seed}")
                prediction = os.path.join(run_dir, "map.tif")
                if arch in BASELINES:
                    train_s, classify_s = _random_forest(data, labels, prediction, seed, events)
                else:
                    started = time.perf_counter()
                    trained = _train_net(arch, data, labels, os.path.join(run_dir, "model"), seed, config.epochs,
                                         config.tile_size, device, nested, config.cross_validate)
                    train_s = time.perf_counter() - started
                    started = time.perf_counter()
                    _classify_net(data, os.path.join(run_dir, "model"), prediction, device, nested)
                    classify_s = time.perf_counter() - started
                    val = trained["metrics"]
                    events.log(f"[{arch} seed {seed}] validation OA "
                               f"{val.get('oa', val.get('overall_accuracy'))} after {train_s:.1f} s")
                report = evaluate(prediction, data["test"])["metrics"]
                with open(os.path.join(run_dir, "evaluation.json"), "w", encoding="utf-8") as f:
                    json.dump(report, f, indent=2)
                record = {"arch": arch, "seed": seed, "oa": _metric(report, "oa", "overall_accuracy"),
                          "aa": _metric(report, "aa", "average_accuracy"), "kappa": report["kappa"],
                          "oa_interior": report["interior"]["oa"], "aa_interior": report["interior"]["aa"],
                          "interior_test_pixels": report["interior"]["n_pixels"],
                          "train_s": round(train_s, 2), "classify_s": round(classify_s, 2),
                          "train_pixels": int(sum(train_counts.values())),
                          "test_pixels": int(_metric(report, "n_pixels", "pixels")),
                          "unclassified_test_pixels": report.get("unclassified_reference_pixels", 0),
                          "per_class_f1": {k: v["f1"] for k, v in report["per_class"].items()}}
                if record["unclassified_test_pixels"]:
                    events.log(f"[{arch} seed {seed}] {record['unclassified_test_pixels']} test pixels left "
                               "unclassified (nodata)", "warning")
                with open(record_path, "w", encoding="utf-8") as f:
                    json.dump(record, f, indent=2)
            runs.append(record)
            events.log(f"[{arch} seed {seed}] OA {record['oa']:.4f} AA {record['aa']:.4f} κ {record['kappa']:.4f}; "
                       f"train {record['train_s']:.1f} s, classify {record['classify_s']:.1f} s")
            events.progress("benchmark", len(runs), total)
    report = {"dataset": config.dataset, "split": data["split"], "per_class": config.per_class,
              "train_pixels": int(sum(train_counts.values())), "test_pixels": int(sum(data["test_pixels"].values())),
              "device": device, "machine": _machine(), "command": command, "archs": archs, "seeds": seeds,
              "files": data["files"], "summary": summarize(runs, archs), "runs": runs}
    json_path, md_path = os.path.join(out, "results.json"), os.path.join(out, "results.md")
    write_json_atomic(json_path, report, indent=2)
    write_text_atomic(md_path, markdown(report))
    return {"outputs": {"json": json_path, "markdown": md_path}, "metrics": report["summary"],
            "timings": {"train_s": {a: s["train_s"]["mean"] for a, s in report["summary"].items()},
                        "classify_s": {a: s["classify_s"]["mean"] for a, s in report["summary"].items()}}}
