"""The accuracy a `train` run reports, as one sentence for the Processing log, the dock and the model list.

The few-label recipe reports a spatially blocked cross-validation of itself on the user's labels with a
random forest on the same folds (backend.training.fewlabel); the legacy loop a held-out validation
subset. Pure Python (no qgis), so the wording is unit-testable anywhere.
"""


def _pct(value):
    return f"{100 * value:.1f} %"


def describe_estimate(metrics):
    """The sentence for a result event's or manifest's `metrics`, or None when it holds no accuracy."""
    metrics = metrics or {}
    cv = metrics.get("cross_validation")
    if isinstance(cv, dict) and isinstance((cv.get("recipe") or {}).get("oa"), (int, float)):
        mine, forest = cv["recipe"], cv.get("random_forest") or {}
        text = (f"Cross-validated estimate on your labels ({cv.get('folds')} spatially blocked folds, "
                f"{cv.get('pixels', 0):,} labelled pixels): overall accuracy {_pct(mine['oa'])}, "
                f"average accuracy {_pct(mine.get('aa', 0))}")
        if isinstance(forest.get("oa"), (int, float)):
            text += (f"; a random forest on the same folds: {_pct(forest['oa'])} / {_pct(forest.get('aa', 0))}. "
                     + ("The network is the better choice on this scene." if mine["oa"] > forest["oa"] else
                        "The forest scores as well or better on these labels: add labels, or compare both maps."))
        else:
            text += "."
        return text
    oa = metrics.get("oa")
    if isinstance(oa, (int, float)):
        pixels = metrics.get("val_pixels")
        return (f"Validation overall accuracy {_pct(oa)}"
                + (f" on {pixels:,} held-out labelled pixels" if isinstance(pixels, int) and pixels else "") + ".")
    return None
