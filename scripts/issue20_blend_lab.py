"""Issue 20 lab: blend the recipe's m3amba probabilities with a per-pixel logistic regression's (and a
forest's) at fixed weights; test OA for each weight (a look at the potential, nothing is chosen here).

    .venv/bin/python scripts/issue20_blend_lab.py dfc2018_crop 0 [m3amba]

Same data prep, split, draw and scoring as scripts/issue20_lab.py; prints one JSON line of test OA per
blend ("logreg_0.25": 25 % logistic regression, 75 % network).
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from issue20_lab import load, score  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from backend import nets  # noqa: E402
from backend.engine.tiles import iter_tiles  # noqa: E402
from backend.evaluation.baselines import random_forest  # noqa: E402
from backend.synth.library import shared_data_dir  # noqa: E402
from backend.training import recipe  # noqa: E402

dataset, seed = sys.argv[1], int(sys.argv[2])
arch = sys.argv[3] if len(sys.argv) > 3 else "m3amba"
arrays, train, test, info = load(dataset, shared_data_dir(), "/tmp/lf/lab", seed, 20)
n = int(max(train.max(), test.max()))
torch.manual_seed(seed)
x = recipe.standardise(arrays)
targets = train.astype(np.int64) - 1
k = int(train.max())
net = nets.build(arch, {"spectral_dim": 64} if arch in ("m3amba", "bdgf") else {}, [a.shape[0] for a in x], k)
recipe.fit(net, x, targets, recipe.schedule_for(int((targets >= 0).sum())), seed)
h, w = x[0].shape[1:]
probs = np.zeros((k, h, w), np.float32)
net.eval()
with torch.inference_mode():
    for t in iter_tiles(h, w, 256, 32):
        xs = [torch.from_numpy(np.ascontiguousarray(a[(slice(None), *t.read_slices)]))[None] for a in x]
        p = torch.softmax(net(xs).float(), 1)[0].numpy()
        probs[(slice(None), *t.core_slices)] = p[(slice(None), *t.core_in_read)]
feats = recipe.pixel_features(x)
m = train.ravel() > 0
lr = LogisticRegression(max_iter=2000, C=1.0, random_state=seed).fit(feats[m], train.ravel()[m])
plr = lr.predict_proba(feats).T.reshape(k, h, w)
rf = random_forest(seed).fit(recipe.pixel_features(arrays)[m], train.ravel()[m])
prf = rf.predict_proba(recipe.pixel_features(arrays)).T.reshape(k, h, w)
out = {"dataset": dataset, "seed": seed, "arch": arch}
for name, other in (("logreg", plr), ("rf", prf)):
    for wgt in (0.0, 0.25, 0.5, 0.75, 1.0):
        blend = (1 - wgt) * probs + wgt * other
        out[f"{name}_{wgt}"] = round(score(blend.argmax(0) + 1, test, n)["oa"] * 100, 1)
print(json.dumps(out), flush=True)
