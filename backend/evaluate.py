"""`evaluate`: accuracy of a class raster against reference labels (raster or vector)."""

import json
import os

import numpy as np

from backend import rasters
from backend.labels import class_table_of, load_labels
from backend.metrics import confusion_matrix, summarize_confusion
from backend.output import check_writable


def evaluate(prediction, reference, class_field=None, out=None, events=None):
    if out:
        check_writable(out, "report")
    with rasters.open_raster(prediction, "prediction") as pred_ds:
        table = class_table_of(pred_ds)
        ref, ref_classes = load_labels(reference, pred_ds, class_field, list(table.values()) or None)
        pred = pred_ds.read(1).astype(np.int64)
    values = sorted(set(table) | {c["value"] for c in ref_classes})
    names = {**{c["value"]: c["name"] for c in ref_classes}, **{v: c["name"] for v, c in table.items()}}
    index = np.zeros(256, np.int64)
    index[values] = np.arange(len(values))
    labelled = ref > 0
    unclassified = labelled & (pred == 0)  # reference pixels the map left as nodata
    mask = labelled & (pred > 0)
    cm = confusion_matrix(index[ref[mask]], index[np.clip(pred[mask], 0, 255)], len(values))
    report = summarize_confusion(cm, [names.get(v, f"class_{v}") for v in values])
    report["class_values"] = values
    report["reference_pixels"] = int(labelled.sum())
    report["unclassified_reference_pixels"] = int(unclassified.sum())
    outputs = {}
    if out:
        tmp = out + ".part"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"prediction": os.path.abspath(prediction), "reference": os.path.abspath(reference),
                       **report}, f, indent=2)
        os.replace(tmp, out)
        outputs["report"] = os.path.abspath(out)
    if events:
        events.log(f"Overall accuracy {report['overall_accuracy']:.4f}, kappa {report['kappa']:.4f} "
                   f"on {report['pixels']} reference pixels")
    return {"outputs": outputs, "metrics": report}
