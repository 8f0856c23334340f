"""The pieces every training loop shares: class weights, augmentation and one optimiser step.

`train`, `finetune` and `pretrain` all call these, so a change to the loss or the augmentation
reaches every recipe at once.
"""

from __future__ import annotations

import numpy as np


def class_weights(counts: np.ndarray, device: str):
    """Inverse square-root frequency weights, mean 1 over the classes present; absent classes weigh 0.

    The square root keeps rare classes heard without letting a class of 20 pixels dominate the loss."""
    import torch
    weights = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights / weights[counts > 0].mean(), dtype=torch.float32, device=device)


def augment_batch(batch_inputs, batch_targets, rng: np.random.Generator, torch):
    """Flips and 90° turns (land cover has no up), small brightness change and noise."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    out = []
    for x in batch_inputs:
        x = torch.rot90(x, k, dims=(2, 3))
        out.append(torch.flip(x, dims=(3,)) if flip else x)
    y = torch.rot90(batch_targets, k, dims=(1, 2))
    y = torch.flip(y, dims=(2,)) if flip else y
    out = [x * float(rng.uniform(0.95, 1.05)) + 0.02 * torch.randn_like(x) for x in out]
    return out, y


def train_step(net, optimiser, schedule, xs, ys, class_weights, label_smoothing: float = 0.05,
               extra_loss=None) -> float:
    """One optimiser step on a batch: masked, class-weighted, label-smoothed cross-entropy plus the
    architecture's own auxiliary losses and `extra_loss(logits, xs)` when given. Returns the loss.
    Classes beyond the end of `class_weights` (a network with more outputs than the labels name)
    weigh 0, as absent classes do."""
    import torch
    logits = net(xs)
    if class_weights is not None and len(class_weights) < logits.shape[1]:
        class_weights = torch.cat([class_weights, class_weights.new_zeros(logits.shape[1] - len(class_weights))])
    loss = torch.nn.functional.cross_entropy(logits, ys, weight=class_weights, ignore_index=-1,
                                             label_smoothing=label_smoothing)
    for value in (net.extra_losses() if hasattr(net, "extra_losses") else {}).values():
        loss = loss + value
    if extra_loss is not None:
        loss = loss + extra_loss(logits, xs)
    optimiser.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    optimiser.step()
    schedule.step()
    return loss.item()


def predict_scene(net, arrays, halo: int, device: str, rows=None, tile: int = 128, with_confidence: bool = False):
    """Class index per pixel of the in-memory scene `arrays` (normalised (C, H, W) per modality), by
    tiles with a halo; only tiles whose core touches the `rows` mask when given (the others stay -1).
    With `with_confidence`, also the winning class's softmax probability per pixel."""
    import torch

    from backend.engine.tiles import iter_tiles
    h, w = arrays[0].shape[1:]
    pred = np.full((h, w), -1, np.int64)
    confidence = np.zeros((h, w), np.float32) if with_confidence else None
    net.eval()
    with torch.inference_mode():
        for t in iter_tiles(h, w, tile, halo):
            core = t.core_slices
            if rows is not None and not rows[core].any():
                continue
            x = [torch.from_numpy(np.ascontiguousarray(a[(slice(None), *t.read_slices)]))[None].to(device)
                 for a in arrays]
            logits = net(x)
            pred[core] = logits.argmax(1)[0].cpu().numpy()[t.core_in_read]
            if confidence is not None:
                confidence[core] = torch.softmax(logits.float(), 1).amax(1)[0].cpu().numpy()[t.core_in_read]
    return (pred, confidence) if with_confidence else pred
