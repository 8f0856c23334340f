"""Issue 20 lab: two label-free corrections of a trained model's map, measured on a `benchmark` folder's
saved models (nothing is retrained, nothing is chosen here; every test pixel is scored once).

    .venv/bin/python scripts/issue20_scene_prior_lab.py runs/round4/dfc2018_crop_20 [m3amba]

1. Class-prior shift (EM of Saerens et al., 2002): labels drawn 20 per class teach the network equal
   class frequencies, while a map's classes are anything but equal. The scene's own class frequencies
   are estimated from the network's probabilities over every valid pixel of the scene (no label used)
   and the logits shifted by log(scene prior / training prior); "half" shifts by half of that. The
   training prior is what the loss weighs: labels × inverse-√frequency weights ∝ √labels.
2. Test-time augmentation: the mean of the softmax over 1, 2, 4 or 8 flips and quarter turns.

Prints one line per seed and the mean over seeds (OA / AA in %).
"""
import glob
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backend.engine import modalities  # noqa: E402
from backend.engine.package import load_model  # noqa: E402
from backend.evaluation.metrics import confusion_matrix  # noqa: E402
from backend.io.labels import load_labels  # noqa: E402
from backend.training.train import load_scene  # noqa: E402

warnings.simplefilter("ignore")


def em_prior(p: np.ndarray, prior: np.ndarray, iters: int = 200, tol: float = 1e-7) -> np.ndarray:
    """Scene class prior from per-pixel probabilities p (pixels, classes) made under `prior`."""
    pi = prior.copy()
    for _ in range(iters):
        q = p * (pi / prior)
        q /= q.sum(1, keepdims=True)
        new = q.mean(0)
        done = np.abs(new - pi).max() < tol
        pi = new
        if done:
            break
    return pi


def dihedral_softmax(net, arrays, n: int) -> np.ndarray:
    """Mean softmax (classes, h, w) over the first n of the 8 flips / quarter turns (the whole scene at once)."""
    import torch
    xs = [torch.from_numpy(a)[None] for a in arrays]
    out = []
    with torch.inference_mode():
        for t in range(n):
            k, flip = t % 4, t >= 4
            ys = [torch.rot90(x, k, (2, 3)) for x in xs]
            if flip:
                ys = [torch.flip(y, (3,)) for y in ys]
            p = torch.softmax(net(ys).float(), 1)
            if flip:
                p = torch.flip(p, (3,))
            out.append(torch.rot90(p, -k, (2, 3))[0].numpy())
    return np.mean(out, 0)


def scores(truth: np.ndarray, pred: np.ndarray, k: int):
    cm = confusion_matrix(truth, pred, k + 1)
    recalls = [cm[i, i] / cm[i].sum() for i in range(k + 1) if cm[i].sum()]
    return 100 * np.trace(cm) / cm.sum(), 100 * float(np.mean(recalls))


def main(folder: str, arch: str = "m3amba") -> None:
    rows = []
    for run in sorted(glob.glob(os.path.join(folder, "runs", f"{arch}_seed*"))):
        seed = run.rsplit("seed", 1)[1]
        data_dir = os.path.join(folder, "data", f"seed{seed}")
        data = json.load(open(os.path.join(data_dir, "dataset.json"), encoding="utf-8"))
        manifest, net = load_model(os.path.join(run, "model"), "cpu")
        with modalities.open_modalities(data["hsi"], data["aux"], manifest["modalities"]) as (ref, readers):
            arrays, valid = load_scene(readers, ref.height, ref.width, lambda *a, **k: None)
            test, _ = load_labels(data["test"], ref)
            drawn = glob.glob(os.path.join(folder, "data", f"train_*pc_seed{seed}.tif"))
            train, _ = load_labels(drawn[0] if drawn else data["train"], ref)
        values = [c["value"] for c in manifest["classes"]]
        k = len(values)
        index = np.full(256, k, np.int64)          # a test class the model lacks: always wrong
        index[values] = np.arange(k)
        labelled = test > 0
        truth = index[test[labelled]]
        prior = np.sqrt(np.array([(train == v).sum() for v in values], np.float64))
        prior /= prior.sum()
        probs = dihedral_softmax(net, arrays, 1)
        p = probs[:, valid].T.astype(np.float64)
        shift = np.log(em_prior(p, prior) / prior)
        logp = np.log(np.maximum(probs, 1e-12))
        row = {"seed": int(seed)}
        for name, bias in (("plain", 0 * shift), ("prior", shift), ("prior_half", 0.5 * shift)):
            row[name] = scores(truth, (logp + bias[:, None, None]).argmax(0)[labelled], k)
        for n in (2, 4, 8):
            row[f"tta{n}"] = scores(truth, dihedral_softmax(net, arrays, n).argmax(0)[labelled], k)
        rows.append(row)
        print(json.dumps({key: (v if key == "seed" else [round(x, 2) for x in v]) for key, v in row.items()}),
              flush=True)
    keys = [key for key in rows[0] if key != "seed"]
    mean = {key: [round(float(np.mean([r[key][i] for r in rows])), 2) for i in (0, 1)] for key in keys}
    print(json.dumps({"mean_oa_aa": mean, "seeds": len(rows)}))


if __name__ == "__main__":
    main(*sys.argv[1:])
