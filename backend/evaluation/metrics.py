"""Accuracy figures from a confusion matrix (rows = reference, columns = prediction)."""

from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np


def confusion_matrix(reference: np.ndarray, prediction: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts for class indices 0..num_classes-1; every pixel counted once."""
    idx = reference.astype(np.int64) * num_classes + prediction.astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def interior_pixels(reference: np.ndarray) -> np.ndarray:
    """True at labelled pixels (> 0) whose labelled 8-neighbours all carry the same class; unlabelled
    neighbours (0) and the raster edge do not count against a pixel.

    Boundary pixels are where a reference is least sure (a pixel straddling two covers gets the one
    covering half of it) and where a label map resampled with interpolation invents classes: an
    accuracy on the interior pixels alone says how well the objects themselves are mapped."""
    ref = np.asarray(reference)
    h, w = ref.shape
    padded = np.pad(ref, 1, mode="constant", constant_values=0)
    inside = ref > 0
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            neighbour = padded[dr:dr + h, dc:dc + w]
            inside &= (neighbour == 0) | (neighbour == ref)
    return inside


def summarize_confusion(cm: np.ndarray, names: Sequence[str]) -> Dict[str, Any]:
    cm = cm.astype(np.float64)
    total = cm.sum()
    diag = np.diag(cm)
    ref_tot, pred_tot = cm.sum(1), cm.sum(0)
    oa = diag.sum() / total if total else 0.0
    expected = (ref_tot * pred_tot).sum() / (total * total) if total else 0.0
    kappa = (oa - expected) / (1 - expected) if expected < 1 else 0.0
    per_class = {}
    f1s = []
    for i, name in enumerate(names):
        if ref_tot[i] == 0 and pred_tot[i] == 0:
            continue
        producer = diag[i] / ref_tot[i] if ref_tot[i] else 0.0
        user = diag[i] / pred_tot[i] if pred_tot[i] else 0.0
        f1 = 2 * producer * user / (producer + user) if producer + user else 0.0
        iou = diag[i] / (ref_tot[i] + pred_tot[i] - diag[i]) if ref_tot[i] + pred_tot[i] - diag[i] else 0.0
        if ref_tot[i]:
            f1s.append(f1)
        per_class[name] = {"precision": round(user, 4), "recall": round(producer, 4),
                           "f1": round(f1, 4), "iou": round(iou, 4), "support": int(ref_tot[i])}
    present = ref_tot > 0
    # Fractions 0-1. precision = user's accuracy, recall = producer's accuracy; AA = mean recall.
    return {
        "oa": round(float(oa), 4),
        "aa": round(float(np.mean(diag[present] / ref_tot[present])), 4) if present.any() else 0.0,
        "kappa": round(float(kappa), 4),
        "mean_f1": round(float(np.mean(f1s)), 4) if f1s else 0.0,
        "n_pixels": int(total),
        "per_class": per_class,
        "confusion_matrix": cm.astype(np.int64).tolist(),
        "class_names": list(names),
    }
