"""Fine-tuning that remembers the base model's classes the user's labels never use.

A fine-tune keeps every class of its base (unless `--only-labelled-classes`), but a class without a
label weighs 0 in the cross-entropy: nothing holds its logits up, and within a few hundred steps the
network stops predicting it at all. On the held-out AisaFENIX pair of `fewshot` (labels of four of the
six classes) soil and water vanished from the fine-tuned map, which fell 13 points below the zero-shot
map it started from (docs/REPRODUCIBILITY.md).

The remedy is distillation from a frozen copy of the base model, restricted to what the labels cannot
teach: on every training pixel the network must give each unlabelled class the probability the base
gives it, while the probability left for the labelled classes ("any labelled class" as one bucket) is
free to be shared among them as the labels say. Where every kept class has labels the term is absent,
so a fine-tune on the user's own classes only is exactly what it was.

Remembering is only right where the base is right: a class the base already gives to the user's
labelled pixels (which are, by the user's word, something else) is not remembered (classes_to_remember).
"""

from __future__ import annotations

import copy
from typing import Callable, Optional, Sequence

import numpy as np

DEFAULT_WEIGHT = 1.0   # the same weight as the label loss: chosen before measuring, not tuned on a test scene
MAX_CONFUSION = 0.1    # see classes_to_remember


def unlabelled_base_classes(base_index: Sequence[Optional[int]], train_counts: np.ndarray) -> list:
    """Indices of the classes the base model knew and no training label uses."""
    return [i for i, j in enumerate(base_index) if j is not None and train_counts[i] == 0]


def share_of_labels(base_on_labels: np.ndarray, base_class: int) -> float:
    """The share of the labelled training pixels that the base model gives to its class `base_class`."""
    return np.count_nonzero(base_on_labels == base_class) / max(1, base_on_labels.size)


def classes_to_remember(base_index: Sequence[Optional[int]], train_counts: np.ndarray,
                        base_on_labels: np.ndarray) -> tuple:
    """The classes the base model knew and no training label uses, split into (remembered, not).

    `base_on_labels` is the base model's class index at each labelled training pixel. Every such pixel
    is, by the user's word, one of the labelled classes; a class the base gives to more than
    MAX_CONFUSION of them is one the base confuses with the user's classes on this scene, and keeping
    its predictions would keep that confusion (on Samson the base calls a sixth of the labelled soil
    and tree pixels low vegetation), so it is left to fade as before."""
    candidates = unlabelled_base_classes(base_index, train_counts)
    confused = [i for i in candidates if share_of_labels(base_on_labels, base_index[i]) > MAX_CONFUSION]
    return [i for i in candidates if i not in confused], confused


def unlabelled_class_memory(base_net, base_index: Sequence[Optional[int]], remembered: Sequence[int],
                            weight: float, device: str) -> Optional[Callable]:
    """The loss term `(logits, inputs) -> tensor` that keeps the base's predictions for the classes
    `remembered` (indices into the fine-tune's classes), or None when there are none or `weight` is 0.

    `base_index[i]` is the base model's output index of class i (None: a class the base never knew)."""
    import torch
    own = list(remembered)
    if weight <= 0 or not own:
        return None
    teacher = copy.deepcopy(base_net).to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    theirs = [base_index[i] for i in own]
    others = [i for i in range(len(base_index)) if i not in own]

    def loss(logits, inputs):
        with torch.no_grad():
            target = torch.softmax(teacher(inputs).float(), 1)[:, theirs]
            target = torch.cat([target, (1 - target.sum(1, keepdim=True)).clamp_min(0)], 1)
        logits = logits.float()
        total = torch.logsumexp(logits, 1, keepdim=True)
        log_p = [logits[:, own] - total]
        if others:
            log_p.append(torch.logsumexp(logits[:, others], 1, keepdim=True) - total)
        else:   # every class is an unlabelled one: the "labelled" bucket is empty (probability 0)
            target = target[:, :-1]
        return -weight * (target * torch.cat(log_p, 1)).sum(1).mean()

    return loss
