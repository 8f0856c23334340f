"""Issue 20, lever 1 (transfer): fine-tune the generic model on a real scene's 20 labels per class.

    .venv/bin/python scripts/issue20_finetune_lab.py indian_pines_crop legacy 0
    .venv/bin/python scripts/issue20_finetune_lab.py indian_pines_crop fewlabel 0
    .venv/bin/python scripts/issue20_finetune_lab.py indian_pines_crop scratch 0     # the default `train`
    .venv/bin/python scripts/issue20_finetune_lab.py samson legacy 0 runs/other-generic  # another base package

The scene, its seeded block split and the 20-per-class draw are exactly `benchmark`'s (issue20_lab.load);
the model is made by `run_training` (what `finetune --only-labelled-classes --recipe R --no-cross-validation`
runs) and the map by `classify`; every test pixel is scored once and nothing is chosen on it. The label
values are shifted by OFFSET so that the user's classes are new classes, not the generic model's
roof/pavement/… that hold the values 1..6. Prints one JSON line.
"""
import json
import os
import sys
import time
import warnings

import numpy as np
import rasterio

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from issue20_lab import load, score  # noqa: E402

from backend.engine.classify import classify  # noqa: E402
from backend.protocol import EventWriter, NestedEvents  # noqa: E402
from backend.synth.library import shared_data_dir  # noqa: E402
from backend.training.config import TrainConfig  # noqa: E402
from backend.training.train import run_training  # noqa: E402

OFFSET = 20
GENERIC = os.path.join(os.path.dirname(HERE), "models", "generic-landcover")
dataset, recipe, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
GENERIC = sys.argv[4] if len(sys.argv) > 4 else GENERIC
work = f"/tmp/lf/ft/{dataset}_{recipe}_{seed}"
os.makedirs(work, exist_ok=True)
arrays, train, test, info = load(dataset, shared_data_dir(), "/tmp/lf/ftprep", seed, 20)
n = int(max(train.max(), test.max()))
with rasterio.open(info["train"]) as src:
    prof = src.profile
prof.update(dtype="uint8", nodata=0, count=1)
labels = os.path.join(work, "labels.tif")
with rasterio.open(labels, "w", **prof) as dst:
    dst.write(np.where(train > 0, train + OFFSET, 0).astype(np.uint8)[None])
ev = NestedEvents(EventWriter(open(os.devnull, "w")), "x", quiet=True)
t0 = time.time()
cfg = dict(hsi=info["hsi"], aux=tuple(info["aux"]), labels=labels, out=os.path.join(work, "model"), seed=seed,
           cross_validate=False, device="cpu")
if recipe == "scratch":
    cfg.update(arch="m3amba")
else:
    cfg.update(base_model=GENERIC, only_labelled_classes=True, recipe=recipe)
run_training(TrainConfig(**cfg), ev)
secs = time.time() - t0
out = os.path.join(work, "map.tif")
classify(info["hsi"], list(info["aux"]), cfg["out"], out, ev, device="cpu")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    pred = rasterio.open(out).read(1).astype(np.int64)
pred = np.where(pred > OFFSET, pred - OFFSET, 0)
s = score(pred, test, n)
print(json.dumps(dict(s, dataset=dataset, recipe=recipe, seed=seed, seconds=round(secs, 1))), flush=True)
