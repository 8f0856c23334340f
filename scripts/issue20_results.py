"""Issue 20: the before/after table of docs/RESULTS.md from `benchmark --out` folders.

    .venv/bin/python scripts/issue20_results.py OUT_DIR [OUT_DIR ...]

Reads every finished run (OUT_DIR/runs/<arch>_seed<k>/run.json, so a benchmark still running counts the
seeds it has finished); one row per (folder, arch): mean ± sample std over seeds, with the random forest's
OA on the same seeds beside it and the difference."""

import glob
import json
import os
import sys

import numpy as np


def _ms(values):
    v = 100 * np.asarray(values, float)
    return f"{v.mean():.1f} ± {v.std(ddof=1) if v.size > 1 else 0:.1f}"


def main(paths):
    print("| run | arch | OA % | AA % | forest OA % | forest AA % | Δ OA | train s | seeds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        runs = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(path, "runs", "*", "run.json")))]
        forest = {r["seed"]: r for r in runs if r["arch"] == "random_forest"}
        for arch in sorted({r["arch"] for r in runs} - {"random_forest"}):
            mine = [r for r in runs if r["arch"] == arch and r["seed"] in forest]
            if not mine:
                continue
            rf = [forest[r["seed"]] for r in mine]
            delta = 100 * (np.mean([r["oa"] for r in mine]) - np.mean([r["oa"] for r in rf]))
            print(f"| {os.path.basename(path.rstrip('/'))} | {arch} | {_ms([r['oa'] for r in mine])} | "
                  f"{_ms([r['aa'] for r in mine])} | {_ms([r['oa'] for r in rf])} | {_ms([r['aa'] for r in rf])} | "
                  f"{delta:+.1f} | {np.mean([r['train_s'] for r in mine]):.0f} | {len(mine)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
