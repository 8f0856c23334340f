"""What the dock's widgets show, as a dataclass independent of them: layers by id, saved in the
project (.qgz) so a reopened project shows the same choices. `classify_params()` and
`training_params()` resolve it into the backend jobs (`params.ClassifyParams`, `TrainParams`,
`FinetuneParams`) once preflight has passed; outputs left empty get names from `outputs`."""

from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

from qgis.core import QgsMapLayer, QgsProject

from . import outputs as naming
from .backend_api import DEFAULT_TILE_SIZE
from .models import load_entry
from .params import (
    ARCHITECTURES,
    DEVICES,
    MAX_MIN_CONFIDENCE,
    ClassifyParams,
    FinetuneParams,
    LabelTrainingParams,
    TrainParams,
)
from .preflight import raster_path

PROJECT_SCOPE = "LandFuse"
# Saved projects hold the entries as `classify/<field name>`: neither may change.
ENTRY_PREFIX = "classify/"
TASKS = ("classify", "train", "finetune")


@dataclass
class DockSettings:
    hsi_layer_id: str = ""
    aux_layer_ids: List[str] = field(default_factory=list)
    model_dir: str = ""            # empty: the default (generic) model
    device: str = "auto"
    output_path: str = ""          # empty: named after the input and the model, in the output folder
    confidence: bool = True
    tile_size: int = DEFAULT_TILE_SIZE
    # --- added with train / fine-tune in the dock (older projects simply lack them) ---
    task: str = "classify"
    wavelengths: str = ""          # a wavelength file or list; empty: the raster's metadata
    reference_layer_id: str = ""   # classify: assess the map against this layer
    labels_layer_id: str = ""      # train / finetune
    class_field: str = ""          # empty: the field of the label layer's categorized style
    arch: str = ARCHITECTURES[0]
    epochs: int = 0                # 0: the backend's default
    model_out: str = ""            # empty: named after the input and the architecture / base model
    # --- added with calibrated confidence (issue 18) ---
    min_confidence: float = 0.0    # classify: pixels less sure than this stay "unclassified"; 0: off

    def layers(self, project: Optional[QgsProject] = None) -> Tuple[Optional[QgsMapLayer], List[QgsMapLayer]]:
        project = project or QgsProject.instance()
        hsi = project.mapLayer(self.hsi_layer_id) if self.hsi_layer_id else None
        aux = [project.mapLayer(i) for i in self.aux_layer_ids]
        return hsi, aux

    def layer(self, layer_id: str, project: Optional[QgsProject] = None) -> Optional[QgsMapLayer]:
        return (project or QgsProject.instance()).mapLayer(layer_id) if layer_id else None

    def _input_stem(self, project=None) -> str:
        hsi, _ = self.layers(project)
        return naming.layer_stem(raster_path(hsi) if hsi is not None else None, hsi.name() if hsi is not None else "")

    def _model_stem(self) -> str:
        return naming.safe_stem(load_entry(self.model_dir).stem) if self.model_dir else "landfuse"

    def resolved_outputs(self, project: Optional[QgsProject] = None) -> Tuple[str, Optional[str]]:
        """(class raster path, confidence path or None). None chosen: `<input>_<model>.tif` in the
        output folder, numbered when such a file is there already."""
        out = self.output_path
        if not out:
            folder, _ = naming.default_folder(project)
            out = naming.class_map_path(folder, self._input_stem(project), self._model_stem())
        return out, (naming.confidence_path(out) if self.confidence else None)

    def resolved_model_out(self, project: Optional[QgsProject] = None) -> str:
        if self.model_out:
            return self.model_out
        folder, _ = naming.default_folder(project)
        what = self.arch if self.task == "train" else f"{self._model_stem()}_finetuned"
        return naming.model_folder_path(folder, self._input_stem(project), naming.safe_stem(what))

    def classify_params(self, project: Optional[QgsProject] = None) -> ClassifyParams:
        """The job for these choices. Call it after preflight: it takes the layers' files as they
        are, and each call looks again for a free default name."""
        hsi, aux = self.layers(project)
        out, confidence = self.resolved_outputs(project)
        return ClassifyParams(hsi=raster_path(hsi), aux=[raster_path(layer) for layer in aux],
                              model_dir=self.model_dir, out=out, device=self.device,
                              tile_size=int(self.tile_size), confidence=confidence,
                              wavelengths=self.wavelengths.strip() or None,
                              min_confidence=float(self.min_confidence))

    def training_params(self, labels: str, class_field: Optional[str],
                        project: Optional[QgsProject] = None) -> LabelTrainingParams:
        """The train or finetune job; `labels` is the label file the backend reads (a raster, or
        the vector layer exported onto the HSI's CRS) and `class_field` its field."""
        hsi, aux = self.layers(project)
        shared = dict(hsi=raster_path(hsi), aux=[raster_path(layer) for layer in aux], labels=labels,
                      class_field=class_field, out=self.resolved_model_out(project), device=self.device,
                      epochs=int(self.epochs) or None)
        if self.task == "finetune":
            return FinetuneParams(model_dir=self.model_dir, wavelengths=self.wavelengths.strip() or None, **shared)
        return TrainParams(arch=self.arch, **shared)

    # --- persistence in the project (.qgz) ---
    def save(self, project: Optional[QgsProject] = None) -> None:
        project = project or QgsProject.instance()
        for key, value in asdict(self).items():
            entry = ENTRY_PREFIX + key
            if isinstance(value, bool):      # before int: a bool is an int
                project.writeEntryBool(PROJECT_SCOPE, entry, value)
            elif isinstance(value, int):
                project.writeEntry(PROJECT_SCOPE, entry, int(value))
            elif isinstance(value, float):
                project.writeEntryDouble(PROJECT_SCOPE, entry, float(value))
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
            elif isinstance(default, float):
                value, ok = project.readDoubleEntry(PROJECT_SCOPE, entry, default)
            elif isinstance(default, list):
                value, ok = project.readListEntry(PROJECT_SCOPE, entry, [])
                value = [v for v in value if v]
            else:
                value, ok = project.readEntry(PROJECT_SCOPE, entry, default)
            if ok:
                setattr(settings, key, value)
        if settings.device not in DEVICES:
            settings.device = "auto"
        if settings.task not in TASKS:
            settings.task = "classify"
        if settings.arch not in ARCHITECTURES:
            settings.arch = ARCHITECTURES[0]
        if not 0.0 <= settings.min_confidence <= MAX_MIN_CONFIDENCE:
            settings.min_confidence = 0.0
        return settings
