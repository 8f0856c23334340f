"""The few-label recipe of `train` (issue 20): a fixed schedule sized by the labels, class-balanced
label-centred sampling, spectral augmentation, and no epoch chosen on a validation set.

With 20 labels per class a held-out validation subset reads 100 % from the second epoch and cannot
choose an epoch; the recipe therefore runs a schedule that needs no choosing: the number of optimiser
steps grows with the number of labelled pixels (and not with a fixed epoch budget), the learning rate
follows a cosine to zero, and the weights of the last step are kept.

Each step sees either the whole scene (scenes up to WHOLE_SCENE_PX pixels: one forward pass covers
every label) or a batch of crops centred on labelled pixels, drawn class by class so that every
class is seen equally often. Spectral augmentation (per-pixel gain and offset, band noise, band
dropout) keeps a network from memorising the exact spectra of a handful of pixels.

`forest_predict` / `logreg_predict` are the per-pixel baselines on the same inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from backend.training.optimisation import class_weights, predict_scene, train_step

WHOLE_SCENE_PX = 20_000    # scenes up to this many pixels train on the whole scene each step
CROP = 32                  # larger scenes: crops of CROP px centred on labels …
CROP_BATCH = 16            # … this many per step (about as many pixels as a whole small scene)


@dataclass(frozen=True)
class Schedule:
    steps: int
    lr: float
    weight_decay: float


def schedule_for(n_labelled: int, finetune: bool = False, scale: float = 1.0) -> Schedule:
    """Optimiser steps from the label count: 75 + 30·√labels, 200…800 (`scale` < 1 for the
    cross-validation fits); fine-tuning a package starts closer, so it takes half."""
    steps = int(np.clip(75 + 30 * math.sqrt(max(n_labelled, 1)), 200, 800) * scale)
    if finetune:
        steps //= 2
    return Schedule(steps=max(steps, 50), lr=1e-3 if finetune else 3e-3, weight_decay=1e-2)


def spectral_augment(xs, generator, torch, strength: float = 1.0):
    """Per-pixel gain and offset (shared by a pixel's bands: illumination, slope), band noise and
    band dropout, on standardised inputs (B, C, H, W) of every modality."""
    out = []
    for x in xs:
        b, c, h, w = x.shape
        gain = 1 + 0.1 * strength * torch.randn(b, 1, h, w, generator=generator)
        offset = 0.1 * strength * torch.randn(b, 1, h, w, generator=generator)
        noise = 0.05 * strength * torch.randn(x.shape, generator=generator)
        keep = (torch.rand(b, c, 1, 1, generator=generator) > 0.1 * strength).float() if c > 3 else 1.0
        out.append((x * gain + offset + noise) * keep)
    return out


class LabelCrops:
    """Crops of `size` px centred (up to a random shift) on a labelled pixel of a class drawn uniformly."""

    def __init__(self, targets: np.ndarray, size: int, rng: np.random.Generator):
        self.rng = rng
        self.h, self.w = targets.shape
        self.size = min(size, self.h, self.w)
        self.pixels = [p for p in (np.argwhere(targets == k) for k in range(int(targets.max()) + 1)) if len(p)]

    def corner(self):
        pixels = self.pixels[self.rng.integers(len(self.pixels))]
        r, c = pixels[self.rng.integers(len(pixels))]
        half = self.size // 2
        shift = self.rng.integers(-half // 2, half // 2 + 1, size=2)
        r0 = int(np.clip(r - half + shift[0], 0, self.h - self.size))
        c0 = int(np.clip(c - half + shift[1], 0, self.w - self.size))
        return r0, c0


def balanced_weights(targets: np.ndarray, num_classes: int, torch):
    """Inverse square-root frequency class weights (optimisation.class_weights): with labels drawn per class
    they are all 1; with labels as unbalanced as the scene (all of a dense map) the common classes keep
    part of their weight. Full inverse-frequency weights cost 20 OA points on the DFC2018 crop's labels."""
    counts = np.bincount(targets[targets >= 0], minlength=num_classes).astype(np.float64)
    return class_weights(counts, "cpu")


def can_warm_up(net) -> bool:
    """Whether the network has an objective of its own for the unlabelled scene: BDGF's masked denoising,
    m3amba's masked reconstruction (when built with its head)."""
    return hasattr(net, "pretrain_step") and getattr(net, "pretrain_enabled", True)


def unlabelled_warmup(net, arrays, steps: int, seed: int, device: str) -> None:
    """The architecture's own objective on the unlabelled scene first (can_warm_up)."""
    if not can_warm_up(net) or steps < 1:
        return
    import torch
    rng = np.random.default_rng(seed + 17)
    h, w = arrays[0].shape[1:]
    size = min(CROP * 2, h, w)
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3)
    net.train()
    for _ in range(steps):
        r, c = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        xs = [t[None, :, r:r + size, c:c + size].to(device) for t in tensors]
        loss = net.pretrain_step(xs)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def fit(net, arrays, targets: np.ndarray, schedule: Schedule, seed: int, device: str = "cpu",
        progress=None, augment: float = 1.0, progress_every: int = 25) -> dict:
    """Optimise `net` on `targets` (class index per pixel, -1 unlabelled) of the in-memory scene
    `arrays` (normalised (C, H, W) per modality) for the fixed `schedule`; keeps the last weights."""
    import torch
    generator = torch.Generator().manual_seed(int(seed))
    rng = np.random.default_rng(seed)
    h, w = targets.shape
    weights = balanced_weights(targets, int(targets.max()) + 1, torch).to(device)
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
    target_t = torch.from_numpy(targets)
    whole = h * w <= WHOLE_SCENE_PX
    crops = None if whole else LabelCrops(targets, CROP, rng)
    optimiser = torch.optim.AdamW(net.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay)
    total = schedule.steps
    warm = max(1, total // 20)
    lr_at = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))

    def batch():
        if whole:
            xs, ys = [t[None] for t in tensors], target_t[None]
        else:
            corners = [crops.corner() for _ in range(CROP_BATCH)]
            s = crops.size
            xs = [torch.stack([t[:, r:r + s, c:c + s] for r, c in corners]) for t in tensors]
            ys = torch.stack([target_t[r:r + s, c:c + s] for r, c in corners])
        k = int(rng.integers(4))
        xs = [torch.rot90(x, k, dims=(2, 3)) for x in xs]
        ys = torch.rot90(ys, k, dims=(1, 2))
        if rng.integers(2):
            xs, ys = [torch.flip(x, dims=(3,)) for x in xs], torch.flip(ys, dims=(2,))
        if augment > 0:
            xs = spectral_augment(xs, generator, torch, augment)
        return [x.to(device) for x in xs], ys.to(device)

    net.train()
    losses = []
    for step in range(total):
        losses.append(train_step(net, optimiser, lr_at, *batch(), weights, label_smoothing=0.1))
        if progress and ((step + 1) % progress_every == 0 or step + 1 == total):
            progress(step + 1, total, float(np.mean(losses[-25:])))
    net.eval()
    return {"steps": total, "last_loss": round(float(np.mean(losses[-25:])), 4)}


def predict(net, arrays, device: str = "cpu", tile: int = 256, halo: int = 32, with_confidence: bool = False):
    """Class index per pixel of the in-memory scene, in the recipe's windows (256 px, 32 px halo):
    optimisation.predict_scene. With `with_confidence`, also the winning class's probability."""
    return predict_scene(net, arrays, halo, device, tile=tile, with_confidence=with_confidence)


# ---- semi-supervised: the scene's own confident pixels as extra labels -------------------------------

PSEUDO_PER_LABEL = 10      # at most this many pseudo-labels per real label of a class …
PSEUDO_MIN_CONFIDENCE = 0.5
SELF_TRAIN_SHARE = 0.5     # … and a second fit of this share of the first fit's steps


def _neighbours_agree(pred: np.ndarray) -> np.ndarray:
    """True where all 8 neighbours got the same class as the pixel (edges count as agreeing)."""
    padded = np.pad(pred, 1, mode="edge")
    h, w = pred.shape
    agree = np.ones(pred.shape, bool)
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            agree &= padded[dr:dr + h, dc:dc + w] == pred
    return agree


def pseudo_labels(pred: np.ndarray, confidence: np.ndarray, targets: np.ndarray,
                  per_label: int = PSEUDO_PER_LABEL, min_confidence: float = PSEUDO_MIN_CONFIDENCE) -> np.ndarray:
    """`targets` plus, for each labelled class k with n_k labels, up to per_label·n_k unlabelled pixels
    predicted k: the most confident of those whose whole 3×3 neighbourhood was predicted k (a pixel
    inside a field, not on an edge, where a few-label model is least often wrong)."""
    out = targets.copy()
    flat_out, flat_pred, flat_conf = out.ravel(), pred.ravel(), confidence.ravel()
    eligible = ((targets < 0) & _neighbours_agree(pred) & (confidence >= min_confidence)).ravel()
    counts = np.bincount(targets[targets >= 0], minlength=int(pred.max()) + 1)
    for k in np.flatnonzero(counts):
        candidates = np.flatnonzero(eligible & (flat_pred == k))
        take = candidates[np.argsort(-flat_conf[candidates], kind="stable")[:per_label * int(counts[k])]]
        flat_out[take] = k
    return out


def self_train(net, arrays, targets: np.ndarray, schedule: Schedule, seed: int, device: str = "cpu",
               progress=None, progress_every: int = 25, per_label: int = PSEUDO_PER_LABEL,
               share: float = SELF_TRAIN_SHARE) -> dict:
    """After a first fit: label the scene's confident pixels with `net`'s own map (pseudo_labels) and
    fit again, from the current weights, on the real labels and those together for a shorter schedule.
    The real labels stay in; a pseudo-label never replaces one."""
    pred, confidence = predict(net, arrays, device, with_confidence=True)
    widened = pseudo_labels(pred, confidence, targets, per_label)
    added = int((widened >= 0).sum() - (targets >= 0).sum())
    second = Schedule(max(1, int(schedule.steps * share)), schedule.lr * 0.5, schedule.weight_decay)
    done = fit(net, arrays, widened, second, seed + 31, device, progress=progress, progress_every=progress_every)
    return {"pseudo_labels": added, "steps": second.steps, "last_loss": done["last_loss"]}


def standardise(arrays):
    """Per-band zero mean, unit std over the scene (what `train`'s normalisation does)."""
    out = []
    for a in arrays:
        flat = a.reshape(a.shape[0], -1)
        mean = flat.mean(1)[:, None, None]
        std = np.maximum(flat.std(1), 1e-6)[:, None, None]
        out.append(((a - mean) / std).astype(np.float32))
    return out


def pixel_features(arrays) -> np.ndarray:
    stack = np.concatenate(arrays, 0)
    return np.nan_to_num(stack.reshape(stack.shape[0], -1).T)


def forest_predict(arrays, labels: np.ndarray, seed: int) -> np.ndarray:
    """The benchmark's random forest (300 trees) on the raw band values; labels 0 = unlabelled."""
    from backend.evaluation.baselines import random_forest
    x = pixel_features(arrays)
    mask = labels.ravel() > 0
    forest = random_forest(seed).fit(x[mask], labels.ravel()[mask])
    return forest.predict(x).reshape(labels.shape)


def logreg_predict(arrays, labels: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    x = pixel_features(standardise(arrays))
    mask = labels.ravel() > 0
    model = LogisticRegression(max_iter=2000, C=1.0, random_state=seed).fit(x[mask], labels.ravel()[mask])
    return model.predict(x).reshape(labels.shape)


def fit_predict(arrays, labels: np.ndarray, seed: int, options: dict) -> np.ndarray:
    """Lab entry: build a network (`options["model"]`: "pixel" = spectral path only, "light" = spectral +
    context, or a registry name), fit it with the recipe on `labels` (0 = unlabelled), predict every pixel."""
    import torch

    from backend import nets
    options = dict(options)
    model = options.pop("model")
    scale = float(options.pop("scale", 1.0))
    augment = float(options.pop("augment", 1.0))
    rounds = int(options.pop("self_train", 0))
    per_label = int(options.pop("per_label", PSEUDO_PER_LABEL))
    share = float(options.pop("share", SELF_TRAIN_SHARE))
    warmup = float(options.pop("warmup", 0.0))      # share of the fit's steps, as `train` runs it (0.25)
    torch.manual_seed(seed)
    x = standardise(arrays)
    targets = labels.astype(np.int64) - 1
    k = int(labels.max())
    if model in ("pixel", "light"):
        params = dict(options, context_layers=0) if model == "pixel" else dict(options)
        net = nets.build("spectral", params, [a.shape[0] for a in x], k)
    else:
        net = nets.build(model, options, [a.shape[0] for a in x], k)
    schedule = schedule_for(int((targets >= 0).sum()), scale=scale)
    if warmup > 0:
        unlabelled_warmup(net, x, int(schedule.steps * warmup), seed, "cpu")
    fit(net, x, targets, schedule, seed, augment=augment)
    for r in range(rounds):
        self_train(net, x, targets, schedule, seed + r, per_label=per_label, share=share)
    return predict(net, x) + 1


# ---- the honest estimate: spatially blocked k-fold cross-validation on the user's own labels ----------

CV_FOLDS = 3
CV_SCALE = 0.25   # each fold's fit runs this share of the final fit's steps (3 folds: ¾ of the final fit)


def blocked_folds(targets: np.ndarray, block: int, folds: int, seed: int) -> np.ndarray:
    """Fold number (0..folds-1) of every pixel by whole blocks of `block` px: the labelled blocks are
    shuffled and dealt out so that each fold holds about the same number of labelled pixels."""
    from backend.synth.labels import block_ids
    ids = block_ids(targets.shape, block)
    labelled = targets >= 0
    blocks, counts = np.unique(ids[labelled], return_counts=True)
    rng = np.random.default_rng(seed + 7919)
    order = rng.permutation(len(blocks))
    load = np.zeros(folds)
    fold_of = {}
    for i in sorted(order, key=lambda i: -counts[i] * (1 + 1e-6 * rng.random())):
        f = int(np.argmin(load))
        fold_of[int(blocks[i])] = f
        load[f] += counts[i]
    out = np.full(targets.shape, -1, np.int64)
    for b, f in fold_of.items():
        out[(ids == b) & labelled] = f
    return out


def _oa_aa(cm: np.ndarray) -> dict:
    total = cm.sum()
    support = cm.sum(1)
    recalls = [cm[k, k] / support[k] for k in range(len(cm)) if support[k] > 0]
    return {"oa": round(float(np.trace(cm) / max(total, 1)), 4), "aa": round(float(np.mean(recalls)), 4)}


def cross_validate(make_net, arrays, targets: np.ndarray, num_classes: int, block: int, seed: int,
                   schedule: Schedule, device: str = "cpu", folds: int = CV_FOLDS, progress=None,
                   pretrain=None, self_training: bool = False) -> dict:
    """OA/AA of the recipe and of a random forest (300 trees, same pixels' values) on spatially blocked
    folds of `targets`: each labelled pixel is predicted once, by models that never saw its block.
    `make_net()` builds a fresh network; each fold fits it for `schedule` (shorter than the final fit).

    With `self_training` (what the final fit will do), each fold's model then self-trains (self_train)
    and is scored again: "recipe" is that figure, "without_self_training" the one before it.
    """
    from backend.evaluation.baselines import random_forest
    fold = blocked_folds(targets, block, folds, seed)
    used = sorted(int(f) for f in np.unique(fold[fold >= 0]))
    cm_net = np.zeros((num_classes, num_classes), np.int64)
    cm_self = np.zeros_like(cm_net)
    cm_rf = np.zeros_like(cm_net)
    features = pixel_features(arrays)
    for i, f in enumerate(used):
        held = fold == f
        train = np.where(held, -1, targets)
        if not (train >= 0).any():
            continue
        net = make_net()
        if pretrain is not None:
            pretrain(net)
        fit(net, arrays, train, schedule, seed + 101 * (i + 1), device,
            progress=(lambda d, t, loss, i=i: progress(i * t + d, len(used) * t)) if progress else None)
        truth = targets[held]
        np.add.at(cm_net, (truth, predict(net, arrays, device)[held]), 1)
        if self_training:   # the held-out block's pixels are unlabelled here, as any map pixel is
            self_train(net, arrays, train, schedule, seed + 101 * (i + 1), device)
            np.add.at(cm_self, (truth, predict(net, arrays, device)[held]), 1)
        forest = random_forest(seed).fit(features[(train >= 0).ravel()], train.ravel()[train.ravel() >= 0])
        np.add.at(cm_rf, (truth, forest.predict(features[held.ravel()])), 1)
    out = {"folds": len(used), "block": int(block), "steps_per_fold": schedule.steps,
           "pixels": int(cm_net.sum()), "recipe": _oa_aa(cm_net), "random_forest": _oa_aa(cm_rf)}
    if self_training:
        out.update(without_self_training=_oa_aa(cm_net), recipe=_oa_aa(cm_self))
    return out
