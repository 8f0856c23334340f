"""What the dock's widgets show, as a dataclass independent of them: layers by id, saved in the
project (.qgz) so a reopened project shows the same choices. `classify_params()` resolves it into
the backend job (`params.ClassifyParams`) once preflight has passed."""

import os
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

from qgis.core import QgsMapLayer, QgsProject

from .backend_api import DEFAULT_TILE_SIZE
from .params import DEVICES, ClassifyParams
from .preflight import default_temp_output, raster_path

PROJECT_SCOPE = "LandFuse"
# Saved projects hold the entries as `classify/<field name>`: neither may change.
ENTRY_PREFIX = "classify/"


@dataclass
class DockSettings:
    hsi_layer_id: str = ""
    aux_layer_ids: List[str] = field(default_factory=list)
    model_dir: str = ""
    device: str = "auto"
    output_path: str = ""          # empty: a temporary file
    confidence: bool = True
    tile_size: int = DEFAULT_TILE_SIZE

    def layers(self, project: Optional[QgsProject] = None) -> Tuple[Optional[QgsMapLayer], List[QgsMapLayer]]:
        project = project or QgsProject.instance()
        hsi = project.mapLayer(self.hsi_layer_id) if self.hsi_layer_id else None
        aux = [project.mapLayer(i) for i in self.aux_layer_ids]
        return hsi, aux

    def resolved_outputs(self) -> Tuple[str, Optional[str]]:
        """(class raster path, confidence path or None); a temporary path when none was chosen."""
        out = self.output_path or default_temp_output()
        conf = None
        if self.confidence:
            stem, ext = os.path.splitext(out)
            conf = f"{stem}_confidence{ext or '.tif'}"
        return out, conf

    def classify_params(self, project: Optional[QgsProject] = None) -> ClassifyParams:
        """The job for these choices. Call it after preflight: it takes the layers' files as they
        are, and each call picks a new temporary output when none was chosen."""
        hsi, aux = self.layers(project)
        out, confidence = self.resolved_outputs()
        return ClassifyParams(hsi=raster_path(hsi), aux=[raster_path(layer) for layer in aux],
                              model_dir=self.model_dir, out=out, device=self.device,
                              tile_size=int(self.tile_size), confidence=confidence)

    # --- persistence in the project (.qgz) ---
    def save(self, project: Optional[QgsProject] = None) -> None:
        project = project or QgsProject.instance()
        for key, value in asdict(self).items():
            entry = ENTRY_PREFIX + key
            if isinstance(value, bool):      # before int: a bool is an int
                project.writeEntryBool(PROJECT_SCOPE, entry, value)
            elif isinstance(value, int):
                project.writeEntry(PROJECT_SCOPE, entry, int(value))
            elif isinstance(value, list):
                project.writeEntry(PROJECT_SCOPE, entry, [str(v) for v in value])
            else:
                project.writeEntry(PROJECT_SCOPE, entry, str(value))

    @classmethod
    def load(cls, project: Optional[QgsProject] = None) -> "DockSettings":
        project = project or QgsProject.instance()
        settings = cls()
        for key, default in asdict(settings).items():
            entry = ENTRY_PREFIX + key
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
                setattr(settings, key, value)
        if settings.device not in DEVICES:
            settings.device = "auto"
        return settings
