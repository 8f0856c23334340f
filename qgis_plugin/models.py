"""The model chooser's list: bundled packages in `<plugin root>/models/` plus folders the user
browsed to or trained (kept in the `LandFuse/model_folders` setting). Manifests are read with the
backend's pure-Python reader; weights are never touched here."""

import os

from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QObject, pyqtSignal

from .backend_api import LandFuseError, read_manifest, summarize
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

    def describe(self):
        """Multi-line text for the dock: modalities, bands, classes."""
        if not self.ok:
            return f"{self.path}\n{self.problem}"
        s = self.summary
        lines = [f"{s.get('name') or s.get('id')}  ·  {s['architecture']}" + ("  ·  generic (any sensor)" if s.get("generic") else "")]
        for i, m in enumerate(s["modalities"]):
            role = "HSI" if i == 0 else f"aux {i}"
            bands = m["bands"] if m.get("source_bands", m["bands"]) == m["bands"] else f"{m['source_bands']} (uses {m['bands']})"
            lines.append(f"{role}: {m['name']} — {bands} bands")
        lines.append(f"{len(s['classes'])} classes: " + ", ".join(c["name"] for c in s["classes"]))
        oa = (s.get("metrics") or {}).get("oa")
        if isinstance(oa, (int, float)):
            lines.append(f"overall accuracy: {oa:.3f}")
        return "\n".join(lines)


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
