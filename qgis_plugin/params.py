"""One dataclass per backend job (classify, classify-batch, train, finetune, evaluate), each turning itself into
that command's arguments with `backend_args()`.

The dock and the Processing algorithms both build these, so a job sends the same argv whichever
way it was started. Inputs are files, already resolved from QGIS layers by the caller (after
preflight): this module imports no qgis, so the argv is unit-testable in any Python.
"""

from dataclasses import dataclass, field
from typing import ClassVar, List, Optional

from .backend_api import DEFAULT_TILE_SIZE, MAP_WINDOW  # pure Python (backend.protocol), no qgis

DEVICES = ("auto", "cpu", "cuda")
# In the order Processing's ARCHITECTURE enum stores (an index): a new one goes at the end.
ARCHITECTURES = ("m3amba", "bdgf", "tiny", "spectral")
# `train`/`finetune --tile-size` default of the backend's command line (backend/cli.py).
DEFAULT_TRAIN_TILE_SIZE = 64
# `classify --min-confidence` takes 0 ≤ P < 1; the widgets stop at this.
MAX_MIN_CONFIDENCE = 0.99
# What the classifying tile size does (issue 17): the tooltip of the dock's and Processing's parameter.
TILE_SIZE_HELP = ("About how many pixels (N×N) go through the network at once: memory and speed only. The map is "
                  f"the same at every tile size: the network always runs on the same grid of {MAP_WINDOW} px windows.")


def _layer_args(hsi: str, aux: List[str]) -> List[str]:
    # One `--aux` per raster, in the model's modality order: the backend appends them in turn.
    args = ["--hsi", hsi]
    for path in aux:
        args += ["--aux", path]
    return args


@dataclass
class ClassifyParams:
    """`python -m backend classify`: a class raster (and optionally a confidence raster)."""

    command: ClassVar[str] = "classify"

    hsi: str
    model_dir: str
    out: str
    aux: List[str] = field(default_factory=list)
    device: str = "auto"
    tile_size: int = DEFAULT_TILE_SIZE
    confidence: Optional[str] = None      # path of the confidence raster; None: not written
    wavelengths: Optional[str] = None     # band centres (a list or a text file); None: the raster's metadata
    min_confidence: float = 0.0           # 0 ≤ P < 1: pixels less sure than P stay "unclassified"; 0: off

    def backend_args(self) -> List[str]:
        args = _layer_args(self.hsi, self.aux) + [
            "--model", self.model_dir, "--out", self.out, "--device", self.device,
            "--tile-size", str(int(self.tile_size))]
        if self.wavelengths:
            args += ["--wavelengths", self.wavelengths]
        if self.confidence:
            args += ["--confidence", self.confidence]
        if self.min_confidence and float(self.min_confidence) > 0:   # off: the argv runs have always sent
            args += ["--min-confidence", f"{float(self.min_confidence):g}"]
        return args


@dataclass
class ClassifyBatchParams:
    """`python -m backend classify-batch`: many scenes (files, a folder) into a folder of maps, on a
    local Dask cluster or a running scheduler. Failed scenes do not fail the job: the summary
    (classify_batch.json in `out_dir`) lists them."""

    command: ClassVar[str] = "classify-batch"

    inputs: List[str]                     # raster files and/or folders of them
    model_dir: str
    out_dir: str
    aux: List[str] = field(default_factory=list)           # one raster per modality, for every scene (a mosaic)
    aux_patterns: List[str] = field(default_factory=list)  # one per modality, e.g. "{stem}_dsm.tif"
    scheduler: Optional[str] = None       # tcp://host:8786; None: a local cluster
    workers: Optional[int] = None         # local cluster workers; None: one per core
    device: str = "auto"
    tile_size: int = DEFAULT_TILE_SIZE
    confidence: bool = False
    min_confidence: float = 0.0           # as ClassifyParams.min_confidence

    def backend_args(self) -> List[str]:
        args = ["--inputs", *self.inputs]
        for path in self.aux:
            args += ["--aux", path]
        for pattern in self.aux_patterns:
            args += ["--aux-pattern", pattern]
        args += ["--model", self.model_dir, "--out-dir", self.out_dir, "--device", self.device,
                 "--tile-size", str(int(self.tile_size))]
        if self.scheduler:
            args += ["--scheduler", self.scheduler]
        elif self.workers:
            args += ["--workers", str(int(self.workers))]
        if self.confidence:
            args.append("--confidence")
        if self.min_confidence and float(self.min_confidence) > 0:
            args += ["--min-confidence", f"{float(self.min_confidence):g}"]
        return args + ["--allow-failures"]


@dataclass
class LabelTrainingParams:
    """What `train` and `finetune` share: inputs, labels and the training options. A subclass
    says what the job starts from (`_start_args`)."""

    command: ClassVar[str] = ""

    hsi: str
    labels: str                           # a label raster (0 = unlabelled) or a vector file
    out: str                              # the model package folder to write
    aux: List[str] = field(default_factory=list)
    class_field: Optional[str] = None     # the class field of a vector label file
    device: str = "auto"
    epochs: Optional[int] = None          # None: the backend's default
    name: str = ""                        # empty: the backend names the model
    tile_size: int = DEFAULT_TRAIN_TILE_SIZE
    seed: int = 0

    def _start_args(self) -> List[str]:
        raise NotImplementedError

    def backend_args(self) -> List[str]:
        args = _layer_args(self.hsi, self.aux) + ["--labels", self.labels]
        if self.class_field:
            args += ["--class-field", self.class_field]
        args += ["--out", self.out, "--device", self.device]
        if self.epochs is not None:
            args += ["--epochs", str(int(self.epochs))]
        if self.name:
            args += ["--name", self.name]
        # The starting point sits between the tile size and the seed: the order runs have always sent.
        return args + ["--tile-size", str(int(self.tile_size))] + self._start_args() + ["--seed", str(int(self.seed))]


@dataclass
class TrainParams(LabelTrainingParams):
    """`python -m backend train`: a new model package of an architecture."""

    command: ClassVar[str] = "train"

    arch: str = ARCHITECTURES[0]

    def _start_args(self) -> List[str]:
        return ["--arch", self.arch]


@dataclass
class FinetuneParams(LabelTrainingParams):
    """`python -m backend finetune`: a new model package from an existing one."""

    command: ClassVar[str] = "finetune"

    # Required in practice; it has a default only because it follows defaulted fields, and
    # `kw_only` dataclasses need Python 3.10 (QGIS 3.22 ships 3.9 on Windows).
    model_dir: str = ""
    wavelengths: Optional[str] = None     # band centres for a generic base model; None: the raster's metadata

    def _start_args(self) -> List[str]:
        return ["--model", self.model_dir]

    def backend_args(self) -> List[str]:
        return super().backend_args() + (["--wavelengths", self.wavelengths] if self.wavelengths else [])


@dataclass
class EvaluateParams:
    """`python -m backend evaluate` (the `assess_accuracy` algorithm): HTML and JSON reports."""

    command: ClassVar[str] = "evaluate"

    prediction: str                       # the class raster to assess
    reference: str                        # a reference class raster or vector file
    out_html: str
    class_field: Optional[str] = None     # the class field of a vector reference
    out_json: Optional[str] = None

    def backend_args(self) -> List[str]:
        args = ["--prediction", self.prediction, "--reference", self.reference]
        if self.class_field:
            args += ["--class-field", self.class_field]
        args += ["--out-html", self.out_html]
        if self.out_json:
            args += ["--out-json", self.out_json]
        return args
