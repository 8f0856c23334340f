"""The model chooser's list: bundled packages in `<plugin root>/models/` plus folders the user
browsed to or trained (kept in the `LandFuse/model_folders` setting). Manifests are read with the
backend's pure-Python reader; weights are never touched here."""

import os
import re

from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QObject, pyqtSignal

from .backend_api import LandFuseError, read_manifest, summarize
from .estimate import describe_estimate
from .paths import models_dir

SETTING_FOLDERS = "LandFuse/model_folders"


class _Hub(QObject):
    modelsChanged = pyqtSignal()


hub = _Hub()


class ModelEntry:
    def __init__(self, path, summary=None, problem="", bundled=False):
        self.path = os.path.abspath(path)
        self.summary = summary
        self.problem = problem
        self.bundled = bundled

    @property
    def ok(self):
        return self.summary is not None

    @property
    def label(self):
        if self.summary:
            name = self.summary.get("name") or os.path.basename(self.path)
        else:
            name = os.path.basename(self.path)
        return name + ("" if self.bundled else " (user)") + ("" if self.ok else " — invalid")

    @property
    def stem(self):
        """The model's name as it goes into output file names."""
        return (self.summary or {}).get("id") or os.path.basename(self.path)

    def purpose(self):
        """What the model is for: the "What it is for" section of its card (README.md)."""
        return card_section(os.path.join(self.path, "README.md"), "What it is for")

    def accuracy_note(self):
        """The accuracy the manifest records, saying which figure it is (split, pixels)."""
        metrics = (self.summary or {}).get("metrics") or {}
        oa = metrics.get("oa")
        if not isinstance(oa, (int, float)):
            figures = card_figures(os.path.join(self.path, "README.md"))
            if not figures:
                return "No accuracy in its manifest or card: it was never validated on labelled data."
            return ("No single accuracy: it was never fitted to one scene. Overall accuracy in its card "
                    "(README.md in the model folder): " + "; ".join(
                        f"{title} — {method} {100 * oa:.1f} %" for title, method, oa in figures[:3]) + ".")
        if metrics.get("cross_validation"):
            return describe_estimate(metrics)
        where = metrics.get("split") or "held-out labels"
        pixels = metrics.get("n_pixels") or metrics.get("val_pixels")
        text = f"Validation overall accuracy {100 * oa:.1f} %"
        text += f" on {pixels:,} labelled pixels" if isinstance(pixels, int) else ""
        text += f" of the scene it was trained on ({where})"
        test = card_section(os.path.join(self.path, "README.md"), "Test on an unseen scene")
        match = re.search(r"overall accuracy \**([0-9.]+)", test)
        if match:
            return text + f"; {100 * float(match.group(1)):.1f} % on an unseen scene in its card."
        return text + "; expect less on other scenes."

    def describe(self):
        """Multi-line text for the dock: modalities, bands, classes, purpose, accuracy."""
        if not self.ok:
            return f"{self.path}\n{self.problem}"
        s = self.summary
        lines = [f"{s.get('name') or s.get('id')}  ·  {s['architecture']}" + ("  ·  generic (any sensor)" if s.get("generic") else "")]
        for i, m in enumerate(s["modalities"]):
            role = "HSI" if i == 0 else f"aux {i}"
            if m.get("any_sensor"):
                bands = "any band set with known wavelengths"
            else:
                bands = m["bands"] if m.get("source_bands", m["bands"]) == m["bands"] else f"{m['source_bands']} (uses {m['bands']})"
                bands = f"{bands} bands"
            lines.append(f"{role}: {m['name']} — {bands}" + (" (optional)" if m.get("optional") else ""))
        lines.append(f"{len(s['classes'])} classes: " + ", ".join(c["name"] for c in s["classes"]))
        purpose = self.purpose()
        if purpose:
            lines.append(f"For: {purpose}")
        lines.append(self.accuracy_note())
        return "\n".join(lines)


def card_figures(path):
    """[(section title, method, OA)]: the first row of each table of the card with an OA column."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    figures, title, column, taken = [], "", None, False
    for line in lines:
        if line.startswith("#"):
            title, column, taken = line.lstrip("#").strip(), None, False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            column = None
        elif column is None and "OA" in cells:
            column = cells.index("OA")
        elif column is not None and not taken and not set(cells[0]) <= set("-: "):
            try:
                figures.append((title, cells[0], float(cells[column])))
                taken = True
            except (ValueError, IndexError):
                pass
    return figures


def card_section(path, title):
    """The text of the `## title` section of a model card, as one paragraph; "" if none."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return ""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("#"):
            if inside:
                break
            inside = line.lstrip("#").strip().lower() == title.lower()
            continue
        if inside and line.strip():
            lines.append(line.strip())
    return " ".join(lines).replace("`", "")


def load_entry(path, bundled=False):
    try:
        return ModelEntry(path, summarize(read_manifest(path)), bundled=bundled)
    except LandFuseError as exc:
        return ModelEntry(path, None, exc.message, bundled=bundled)


def user_folders():
    value = QgsSettings().value(SETTING_FOLDERS, [], type=list) or []
    return [v for v in value if isinstance(v, str) and v]


def register_model_folder(path):
    """Remember a model folder (browsed to, or written by train/finetune) and tell the docks."""
    path = os.path.abspath(path)
    folders = [f for f in user_folders() if os.path.abspath(f) != path]
    folders.insert(0, path)
    QgsSettings().setValue(SETTING_FOLDERS, folders[:30])
    hub.modelsChanged.emit()


def list_models(root=None, include_invalid=False):
    entries = []
    base = models_dir(root)
    if os.path.isdir(base):
        for name in sorted(os.listdir(base)):
            path = os.path.join(base, name)
            if os.path.isfile(os.path.join(path, "model.json")):
                entries.append(load_entry(path, bundled=True))
    seen = {e.path for e in entries}
    for folder in user_folders():
        if os.path.isdir(folder) and os.path.abspath(folder) not in seen:
            entries.append(load_entry(folder))
            seen.add(os.path.abspath(folder))
    return [e for e in entries if include_invalid or e.ok]


def default_model_dir(root=None):
    """The bundled generic model (it works on any sensor before a label is drawn), else the first one."""
    models = list_models(root)
    bundled = [m for m in models if m.bundled]
    generic = [m for m in bundled if m.summary.get("generic")]
    pick = (generic or bundled or models or [None])[0]
    return pick.path if pick else ""
