"""HTML accuracy report from the backend's `evaluate` result (pure Python, no Qt)."""

import html
import json


def _fmt(value, digits=3):
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def average_accuracy(metrics):
    """AA: the backend's value, else the mean per-class recall / producer's accuracy."""
    if isinstance(metrics.get("average_accuracy"), (int, float)):
        return float(metrics["average_accuracy"])
    values = []
    for row in (metrics.get("per_class") or {}).values():
        if isinstance(row, dict):
            for key in ("recall", "producer_accuracy", "producers_accuracy", "accuracy"):
                if isinstance(row.get(key), (int, float)):
                    values.append(float(row[key]))
                    break
    return sum(values) / len(values) if values else None


def _confusion(metrics):
    cm = metrics.get("confusion_matrix")
    if isinstance(cm, dict):
        labels = cm.get("labels") or cm.get("classes") or []
        matrix = cm.get("matrix") or cm.get("counts") or []
        return labels, matrix
    if isinstance(cm, list):
        labels = (metrics.get("class_names") or metrics.get("labels") or metrics.get("classes")
                  or list(range(1, len(cm) + 1)))
        return labels, cm
    return [], []


def render_html(result, title="LandFuse accuracy assessment", prediction="", reference=""):
    metrics = dict(result.get("metrics") or {})
    oa, kappa, aa = metrics.get("overall_accuracy"), metrics.get("kappa"), average_accuracy(metrics)
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             f"<title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:.8em 0}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}th{background:#eee}"
             "td.n{text-align:left}.diag{background:#dfd;font-weight:bold}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if prediction or reference:
        parts.append(f"<p>Prediction: <code>{html.escape(prediction)}</code><br>Reference: <code>{html.escape(reference)}</code></p>")
    parts.append("<table><tr><th>Overall accuracy (OA)</th><th>Average accuracy (AA)</th><th>Kappa (κ)</th></tr>")
    parts.append(f"<tr><td>{_fmt(oa) if oa is not None else '–'}</td><td>{_fmt(aa) if aa is not None else '–'}</td>"
                 f"<td>{_fmt(kappa) if kappa is not None else '–'}</td></tr></table>")
    for key in ("n_pixels", "n_samples", "support", "n_reference"):
        if key in metrics:
            parts.append(f"<p>{html.escape(key.replace('_', ' '))}: {_fmt(metrics[key])}</p>")
    per_class = metrics.get("per_class") or {}
    if per_class:
        columns = []
        for row in per_class.values():
            if isinstance(row, dict):
                columns += [k for k in row if k not in columns]
        parts.append("<h2>Per class</h2><table><tr><th>class</th>" +
                     "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in columns) + "</tr>")
        for name, row in per_class.items():
            row = row if isinstance(row, dict) else {"value": row}
            parts.append(f"<tr><td class='n'>{html.escape(str(name))}</td>" +
                         "".join(f"<td>{_fmt(row.get(c, ''))}</td>" for c in columns) + "</tr>")
        parts.append("</table>")
    labels, matrix = _confusion(metrics)
    if matrix:
        parts.append("<h2>Confusion matrix</h2><p>Rows: reference, columns: prediction.</p><table><tr><th></th>" +
                     "".join(f"<th>{html.escape(str(l))}</th>" for l in labels) + "</tr>")
        for i, row in enumerate(matrix):
            label = labels[i] if i < len(labels) else i + 1
            cells = "".join(f"<td class='{'diag' if i == j else ''}'>{_fmt(v)}</td>" for j, v in enumerate(row))
            parts.append(f"<tr><th>{html.escape(str(label))}</th>{cells}</tr>")
        parts.append("</table>")
    rest = {k: v for k, v in metrics.items() if k not in ("per_class", "confusion_matrix")}
    parts.append("<h2>All metrics (JSON)</h2><pre>" + html.escape(json.dumps(rest, indent=1, default=str)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
