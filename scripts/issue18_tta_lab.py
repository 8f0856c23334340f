"""Issue 18 lab: zero-shot test-time normalisation of a scene's canonical features (generic model).

    .venv/bin/python scripts/issue18_tta_lab.py ../shared/data/samson/samson_1.img ../shared/data/samson/samson_labels.tif

Shifts (a share of) the scene mean of the normalised shape and brightness channels to pretraining's (0),
or standardises them, and prints OA / AA against the reference raster (its values in the generic
classes) and the predicted pixels per class. The whole scene in one window: for small scenes.
"""
import os
import sys
import warnings

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from backend.engine import canonical, modalities  # noqa: E402
from backend.engine.package import load_model  # noqa: E402
from backend.manifest import read_manifest  # noqa: E402

hsi, labels_path = sys.argv[1], sys.argv[2]
model = os.path.join(ROOT, "models", "generic-landcover")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ref_labels = rasterio.open(labels_path).read(1)
specs = read_manifest(model)["modalities"]
with modalities.open_modalities(hsi, [], specs, lambda *a, **k: None, None) as (ref, readers):
    feats, valid = readers[0].read(Window(0, 0, ref.width, ref.height))
    others = [r.read(Window(0, 0, ref.width, ref.height))[0] for r in readers[1:]]
manifest, net = load_model(model, "cpu")
values = np.array([c["value"] for c in manifest["classes"]])
n_shape = canonical.N_BINS + 1
v = valid


def score(x):
    with torch.inference_mode():
        logits = net([torch.from_numpy(x)[None]] + [torch.from_numpy(o)[None] for o in others])[0].numpy()
    pred = values[logits.argmax(0)]
    m = (ref_labels > 0) & v
    oa = float((pred[m] == ref_labels[m]).mean())
    aa = float(np.mean([(pred[m & (ref_labels == k)] == k).mean() for k in np.unique(ref_labels[m])]))
    return round(oa, 3), round(aa, 3), {int(k): int((pred[m] == k).sum()) for k in np.unique(pred[m])}
def shifted(change):
    """A copy of the features with `change` applied in place, invalid pixels kept at 0."""
    x = feats.copy()
    change(x)
    x[:, ~v] = 0
    return x


print("as is", score(feats))
mu = feats[:n_shape][:, v].mean(1)[:, None, None]
sd = feats[:n_shape][:, v].std(1)[:, None, None]
for lam in (0.25, 0.5, 1.0):
    print("shift", lam, score(shifted(lambda x, lam=lam: x[:n_shape].__isub__(lam * mu))))
print("standardise", score(shifted(lambda x: x.__setitem__(slice(0, n_shape), (x[:n_shape] - mu) / np.maximum(sd, 1e-3)))))
print("brightness shift only", score(shifted(lambda x: x[canonical.N_BINS].__isub__(mu[canonical.N_BINS]))))
