"""Where the dock writes what it makes, and what it calls it.

Outputs are named after the input and the model (`berlin_hsi_generic-landcover.tif`, its
`…_confidence.tif`; `berlin_hsi_tiny` for a trained model) and go to one folder: the one the user
chose once (the `LandFuse/output_folder` setting), else the saved project's folder, else a
temporary folder that QGIS deletes when it exits. A default name never replaces a file that is
already there: a number is added instead. Files the plugin makes only for one run (labels exported
for the backend) live in a run folder that is removed when the run ends.
"""

import os
import re
import shutil
import tempfile
from typing import Iterable, Optional, Tuple

from qgis.core import QgsProcessingUtils, QgsProject, QgsSettings

SETTING_FOLDER = "LandFuse/output_folder"
# Files a class map brings along: a default name is taken only when none of them exists.
CLASS_MAP_COMPANIONS = (".tif", ".qml", ".tif.aux.xml", "_confidence.tif", "_confidence.tif.aux.xml")


def safe_stem(text: str, fallback: str = "landfuse") -> str:
    """A file-name stem from a layer or model name: letters, digits, '-', '_' and '.' only."""
    stem = re.sub(r"[^\w.\-]+", "_", text or "", flags=re.UNICODE).strip("._")
    return stem[:60] or fallback


def layer_stem(path: Optional[str], name: str = "") -> str:
    """The input's stem: its file name without extension, else the layer name."""
    if path:
        return safe_stem(os.path.splitext(os.path.basename(path))[0])
    return safe_stem(name)


def chosen_folder() -> str:
    value = QgsSettings().value(SETTING_FOLDER, "", type=str) or ""
    return value if value and os.path.isdir(value) else ""


def remember_folder(folder: str) -> None:
    QgsSettings().setValue(SETTING_FOLDER, os.path.abspath(folder) if folder else "")


def default_folder(project: Optional[QgsProject] = None) -> Tuple[str, str]:
    """(folder, why): the chosen folder, the project's folder, or QGIS's temporary folder."""
    folder = chosen_folder()
    if folder:
        return folder, "chosen"
    project = project or QgsProject.instance()
    if project.fileName() and project.homePath() and os.path.isdir(project.homePath()):
        return project.homePath(), "project"
    return QgsProcessingUtils.tempFolder(), "temporary"


def describe_folder(folder: str, why: str) -> str:
    return {"chosen": f"{folder} (your output folder)",
            "project": f"{folder} (beside the project)",
            "temporary": f"{folder} (temporary: QGIS deletes it when it exits; choose an output folder to keep results)",
            }.get(why, folder)


def unique_stem(folder: str, stem: str, companions: Iterable[str] = CLASS_MAP_COMPANIONS,
                taken: Iterable[str] = ()) -> str:
    """`stem`, or `stem_2`, `stem_3`, … : the first for which no companion file exists in
    `folder` and none is in `taken` (paths already promised to this run)."""
    taken = {os.path.abspath(p) for p in taken}
    companions = tuple(companions)
    n = 1
    while True:
        candidate = stem if n == 1 else f"{stem}_{n}"
        paths = [os.path.abspath(os.path.join(folder, candidate + c)) for c in companions]
        if not any(os.path.lexists(p) or p in taken for p in paths):
            return candidate
        n += 1


def class_map_path(folder: str, input_stem: str, model_stem: str, taken: Iterable[str] = ()) -> str:
    stem = unique_stem(folder, f"{input_stem}_{model_stem}", taken=taken)
    return os.path.join(folder, stem + ".tif")


def confidence_path(class_path: str) -> str:
    stem, ext = os.path.splitext(class_path)
    return f"{stem}_confidence{ext or '.tif'}"


def model_folder_path(folder: str, input_stem: str, what: str) -> str:
    stem = unique_stem(folder, f"{input_stem}_{what}", companions=("",))
    return os.path.join(folder, stem)


def report_path(class_path: str) -> str:
    """The accuracy report beside a class map, a fresh name if one is there already."""
    folder, name = os.path.split(class_path)
    stem = unique_stem(folder, os.path.splitext(name)[0] + "_accuracy", companions=(".html", ".json"))
    return os.path.join(folder, stem + ".html")


class RunFolder:
    """A folder for one run's intermediate files (exported labels), removed by `cleanup()`."""

    def __init__(self, prefix: str = "landfuse_run_"):
        self.path = tempfile.mkdtemp(prefix=prefix, dir=QgsProcessingUtils.tempFolder())

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def cleanup(self) -> None:
        if self.path and os.path.isdir(self.path):
            shutil.rmtree(self.path, ignore_errors=True)
        self.path = ""
