"""Issue 20 lab: cheap tries of a recipe on the benchmark's own data prep and scoring.

    .venv/bin/python scripts/issue20_lab.py --dataset salinas_a --methods rf logreg pixel light --seeds 0 1 2

Each seed prepares the dataset exactly as `benchmark` does (backend.evaluation.datasets.prepare, the same
seeded block split; --per-class draws the train pixels as `benchmark --per-class` does), fits each method
on the train pixels only and scores every test pixel once (backend.evaluation.metrics). No test pixel
chooses anything: the methods run a fixed schedule.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from backend.evaluation import datasets  # noqa: E402
from backend.evaluation.metrics import confusion_matrix, summarize_confusion  # noqa: E402
from backend.synth.library import shared_data_dir  # noqa: E402

FOLDERS = {"dfc2018_crop": "dfc2018_crop", "indian_pines_msi_blocks": "indian_pines_msi",
           "indian_pines_msi": "indian_pines_msi"}


def _read(path):
    import rasterio
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as src:
            return src.read().astype(np.float32)


def load(dataset, data_root, work, seed, per_class):
    folder = os.path.join(data_root, FOLDERS.get(dataset, dataset))
    out = datasets.prepare(dataset, folder, os.path.join(work, dataset, f"seed{seed}"), seed=seed, strict=False)
    arrays = [_read(out["hsi"])] + [_read(a) for a in out["aux"]]
    train = _read(out["train"])[0].astype(np.int64)
    test = _read(out["test"])[0].astype(np.int64)
    if per_class:
        train = datasets.per_class_draw(train, str(per_class), seed)
    return arrays, train, test, out


def score(pred, test, n_classes):
    mask = test > 0
    cm = confusion_matrix(test[mask] - 1, pred[mask] - 1, n_classes)
    s = summarize_confusion(cm, [str(i) for i in range(1, n_classes + 1)])
    return {"oa": s["oa"], "aa": s["aa"]}


def main():
    from backend.training import recipe
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", default=shared_data_dir(), help="default: ../shared/data or $LANDFUSE_SHARED_DATA")
    p.add_argument("--work", default="/tmp/lf/lab")
    p.add_argument("--methods", nargs="+", default=["rf", "pixel", "light"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--set", nargs="*", default=[], help="recipe overrides key=value (JSON values)")
    p.add_argument("--out")
    args = p.parse_args()
    overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    rows = []
    for seed in args.seeds:
        arrays, train, test, info = load(args.dataset, args.data_root, args.work, seed, args.per_class or None)
        n_classes = int(max(train.max(), test.max()))
        for method in args.methods:
            started = time.perf_counter()
            if method == "rf":
                pred = recipe.forest_predict(arrays, train, seed)
            elif method == "logreg":
                pred = recipe.logreg_predict(arrays, train, seed)
            else:
                pred = recipe.fit_predict(arrays, train, seed, dict(overrides, model=method))
            row = dict(score(pred, test, n_classes), method=method, seed=seed,
                       seconds=round(time.perf_counter() - started, 1))
            rows.append(row)
            print(json.dumps(row), flush=True)
    for method in args.methods:
        oa = [r["oa"] for r in rows if r["method"] == method]
        aa = [r["aa"] for r in rows if r["method"] == method]
        sec = [r["seconds"] for r in rows if r["method"] == method]
        sd = 100 * np.std(oa, ddof=1) if len(oa) > 1 else 0
        print(f"{args.dataset} pc={args.per_class} {method:8s} OA {100 * np.mean(oa):.1f} ± {sd:.1f}"
              f"  AA {100 * np.mean(aa):.1f}  {np.mean(sec):.0f}s  {overrides}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
