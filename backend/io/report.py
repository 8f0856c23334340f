"""HTML accuracy report from `evaluate`'s metrics (pure Python: the plugin may import it too)."""

from __future__ import annotations

import html
import json

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time
if TYPE_CHECKING:
    from typing import Any, Mapping


def _fmt(value, digits=4):
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def render_html(metrics: Mapping[str, Any], title: str = "LandFuse accuracy assessment", prediction: str = "",
                reference: str = "") -> str:
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             f"<title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:.8em 0}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}th{background:#eee}"
             "td.n{text-align:left}.diag{background:#dfd;font-weight:bold}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if prediction or reference:
        parts.append(f"<p>Prediction: <code>{html.escape(prediction)}</code><br>"
                     f"Reference: <code>{html.escape(reference)}</code></p>")
    parts.append("<table><tr><th>Overall accuracy (OA)</th><th>Average accuracy (AA)</th><th>Kappa (κ)</th>"
                 "<th>Reference pixels</th></tr>")
    parts.append(f"<tr><td>{_fmt(metrics['oa'])}</td><td>{_fmt(metrics['aa'])}</td><td>{_fmt(metrics['kappa'])}</td>"
                 f"<td>{metrics['n_pixels']}</td></tr></table>")
    if metrics.get("unclassified_reference_pixels"):
        parts.append(f"<p>{metrics['unclassified_reference_pixels']} reference pixels fall on nodata in the "
                     "prediction and count as wrong.</p>")
    inner = metrics.get("interior")
    if inner and inner.get("n_pixels"):
        parts.append(f"<p>Away from class boundaries ({inner['n_pixels']} reference pixels whose labelled neighbours "
                     f"all share their class): OA {_fmt(inner['oa'])}, AA {_fmt(inner['aa'])}. Boundary pixels mix two "
                     "covers, and the reference is least sure of them.</p>")
    columns = ("precision", "recall", "f1", "iou", "support")
    parts.append("<h2>Per class</h2><table><tr><th>class</th>" +
                 "".join(f"<th>{c}</th>" for c in columns) + "</tr>")
    for name, row in metrics["per_class"].items():
        parts.append(f"<tr><td class='n'>{html.escape(str(name))}</td>" +
                     "".join(f"<td>{_fmt(row[c])}</td>" for c in columns) + "</tr>")
    parts.append("</table>")
    labels = metrics["class_names"]
    parts.append("<h2>Confusion matrix</h2><p>Rows: reference, columns: prediction.</p><table><tr><th></th>" +
                 "".join(f"<th>{html.escape(str(label))}</th>" for label in labels) + "</tr>")
    for i, row in enumerate(metrics["confusion_matrix"]):
        cells = "".join(f"<td class='{'diag' if i == j else ''}'>{v}</td>" for j, v in enumerate(row))
        parts.append(f"<tr><th>{html.escape(str(labels[i]))}</th>{cells}</tr>")
    parts.append("</table>")
    rest = {k: v for k, v in metrics.items() if k not in ("per_class", "confusion_matrix")}
    parts.append("<h2>All figures (JSON)</h2><pre>" + html.escape(json.dumps(rest, indent=1, default=str)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
