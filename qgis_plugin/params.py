"""The dock's job parameters: a dataclass independent of the widgets (testable, persisted in the
project), turned into backend arguments only after preflight."""

import os
from dataclasses import asdict, dataclass, field

from qgis.core import QgsProject

from .backend_api import DEFAULT_TILE_SIZE
from .preflight import default_temp_output, raster_path

PROJECT_SCOPE = "LandFuse"
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class ClassifyParams:
    hsi_layer_id: str = ""
    aux_layer_ids: list = field(default_factory=list)
    model_dir: str = ""
    device: str = "auto"
    output_path: str = ""          # empty: a temporary file
    confidence: bool = True
    tile_size: int = DEFAULT_TILE_SIZE

    def layers(self, project=None):
        project = project or QgsProject.instance()
        hsi = project.mapLayer(self.hsi_layer_id) if self.hsi_layer_id else None
        aux = [project.mapLayer(i) for i in self.aux_layer_ids]
        return hsi, aux

    def resolved_outputs(self):
        """(class raster path, confidence path or None); a temporary path when none was chosen."""
        out = self.output_path or default_temp_output()
        conf = None
        if self.confidence:
            stem, ext = os.path.splitext(out)
            conf = f"{stem}_confidence{ext or '.tif'}"
        return out, conf

    def backend_args(self, out, confidence=None, project=None):
        hsi, aux = self.layers(project)
        args = ["--hsi", raster_path(hsi), "--model", self.model_dir, "--out", out,
                "--device", self.device, "--tile-size", str(int(self.tile_size))]
        for layer in aux:
            args += ["--aux", raster_path(layer)]
        if confidence:
            args += ["--confidence", confidence]
        return args

    # --- persistence in the project (.qgz) ---
    def save(self, project=None):
        project = project or QgsProject.instance()
        for key, value in asdict(self).items():
            if isinstance(value, bool):
                project.writeEntryBool(PROJECT_SCOPE, f"classify/{key}", value)
            elif isinstance(value, int):
                project.writeEntry(PROJECT_SCOPE, f"classify/{key}", int(value))
            elif isinstance(value, list):
                project.writeEntry(PROJECT_SCOPE, f"classify/{key}", [str(v) for v in value])
            else:
                project.writeEntry(PROJECT_SCOPE, f"classify/{key}", str(value))

    @classmethod
    def load(cls, project=None):
        project = project or QgsProject.instance()
        params = cls()
        for key, default in asdict(params).items():
            entry = f"classify/{key}"
            if isinstance(default, bool):
                value, ok = project.readBoolEntry(PROJECT_SCOPE, entry, default)
            elif isinstance(default, int):
                value, ok = project.readNumEntry(PROJECT_SCOPE, entry, default)
            elif isinstance(default, list):
                value, ok = project.readListEntry(PROJECT_SCOPE, entry, [])
                value = [v for v in value if v]
            else:
                value, ok = project.readEntry(PROJECT_SCOPE, entry, default)
            if ok:
                setattr(params, key, value)
        if params.device not in DEVICES:
            params.device = "auto"
        return params
