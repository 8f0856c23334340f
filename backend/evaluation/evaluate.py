"""`evaluate`: accuracy of a class raster against reference labels (raster or vector).

Every labelled reference pixel counts once; one the prediction left as nodata (0) counts as wrong
(it appears in the confusion matrix under the column "nodata").
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Dict, Optional, Union

import numpy as np

from backend.evaluation.metrics import confusion_matrix, interior_pixels, summarize_confusion
from backend.io import rasters
from backend.io.atomic import write_text_atomic
from backend.io.labels import class_table_of, load_labels
from backend.io.paths import check_outputs
from backend.io.report import render_html
from backend.protocol import ErrorCode, LandFuseError

if TYPE_CHECKING:
    from backend.protocol import EventWriter, NestedEvents

NODATA_NAME = "nodata"


def _check_class_map(ds, path):
    """A prediction is one band of class numbers: a multi-band image or reals are not a class map."""
    if ds.count != 1 or not np.issubdtype(np.dtype(ds.dtypes[0]), np.integer):
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS,
                            f"The prediction {os.path.basename(path)} is not a class map: it has {ds.count} band(s) "
                            f"of {ds.dtypes[0]}; a class map has one band of class numbers.",
                            "Pass the class GeoTIFF that classify wrote, not the image.")


def _interior_figures(ref: np.ndarray, pred: np.ndarray, index: np.ndarray, n: int) -> Dict[str, Any]:
    """OA / AA on the reference's interior pixels only (metrics.interior_pixels): every figure above
    counts every labelled pixel; this one leaves out the class boundaries, where references disagree
    with themselves most."""
    inside = interior_pixels(ref)
    cm = confusion_matrix(index[ref[inside]], index[np.clip(pred[inside], 0, 255)], n)
    s = summarize_confusion(cm, [str(i) for i in range(n)])
    return {"oa": s["oa"], "aa": s["aa"], "n_pixels": s["n_pixels"],
            "definition": "labelled pixels whose labelled 8-neighbours all share their class"}


def evaluate(prediction: str, reference: str, class_field: Optional[str] = None, out_json: Optional[str] = None,
             out_html: Optional[str] = None, events: Optional[Union[EventWriter, NestedEvents]] = None) -> Dict[str, Any]:
    check_outputs([prediction, reference], {"JSON report": out_json, "HTML report": out_html},
                  events.log if events else None)
    with rasters.open_raster(prediction, "prediction") as pred_ds:
        _check_class_map(pred_ds, prediction)
        table = class_table_of(pred_ds)
        ref, ref_classes = load_labels(reference, pred_ds, class_field, list(table.values()) or None)
        pred = pred_ds.read(1).astype(np.int64)
    values = sorted(set(table) | {c["value"] for c in ref_classes})
    names = {**{c["value"]: c["name"] for c in ref_classes}, **{v: c["name"] for v, c in table.items()}}
    index = np.full(256, len(values), np.int64)  # anything not a class (0 = nodata) → the last column
    index[values] = np.arange(len(values))
    labelled = ref > 0
    cm = confusion_matrix(index[ref[labelled]], index[np.clip(pred[labelled], 0, 255)], len(values) + 1)
    report = summarize_confusion(cm, [names.get(v, f"class_{v}") for v in values] + [NODATA_NAME])
    report["per_class"].pop(NODATA_NAME, None)
    report["class_values"] = values
    report["unclassified_reference_pixels"] = int((labelled & (pred == 0)).sum())
    report["interior"] = _interior_figures(ref, pred, index, len(values) + 1)
    outputs = {}
    if out_json:
        write_text_atomic(out_json, json.dumps({"prediction": os.path.abspath(prediction),
                                            "reference": os.path.abspath(reference), **report}, indent=2))
        outputs["json"] = os.path.abspath(out_json)
    if out_html:
        write_text_atomic(out_html, render_html(report, prediction=os.path.abspath(prediction),
                                            reference=os.path.abspath(reference)))
        outputs["html"] = os.path.abspath(out_html)
    if events:
        events.log(f"Overall accuracy {report['oa']:.4f}, average accuracy {report['aa']:.4f}, "
                   f"kappa {report['kappa']:.4f} on {report['n_pixels']} reference pixels")
    return {"outputs": outputs, "metrics": report}
