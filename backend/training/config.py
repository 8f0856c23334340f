"""What a training run takes: typed configs, filled by the command line or built directly by the
benchmarks and evaluations (which therefore never re-parse an argv to run a training).

Each config checks its own ranges (`validate`) and can say which `python -m backend` command it
stands for (`cli_argv`): a model package records the command that made it, so anyone can rerun it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from backend import nets
from backend.protocol import ErrorCode, LandFuseError
from backend.training.memory import DEFAULT_WEIGHT as DEFAULT_MEMORY_WEIGHT

DEVICES = ("auto", "cpu", "cuda")
RECIPES = ("fewlabel", "legacy")   # train/finetune recipes
# `train`'s default network. With the few-label recipe (its spectral path and fixed schedule) m3amba
# scores above the forest on most real scenes of docs/RESULTS.md and above the light `spectral` network
# on the coarse ones, so it stays the default and every new network trains with that recipe.
TRAIN_DEFAULT_ARCH = "m3amba"


def _check_device(device: str) -> None:
    if device not in DEVICES:
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"Unknown device {device!r}", f"Choose from {', '.join(DEVICES)}.")


def _check_seed(seed: int) -> None:
    if not 0 <= seed < 2 ** 32:
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"--seed must be between 0 and 2^32 - 1 (got {seed}).")


@dataclass(frozen=True)
class TrainConfig:
    """`train` (a new network, `arch`) or `finetune` (from the package `base_model`) on one scene's labels."""

    hsi: str
    labels: str
    out: str
    aux: Sequence[str] = ()
    class_field: Optional[str] = None
    arch: str = TRAIN_DEFAULT_ARCH
    base_model: Optional[str] = None
    only_labelled_classes: bool = False
    wavelengths: Optional[Sequence[float]] = None
    epochs: Optional[int] = None
    device: str = "auto"
    seed: int = 0
    tile_size: int = 64
    name: Optional[str] = None
    # "fewlabel" (backend.training.fewlabel: fixed schedule, spectral path, blocked cross-validation) or
    # "legacy" (the loop before issue 20: a validation subset and early stopping).
    # None: "fewlabel" for a new network, "legacy" for a fine-tune (see resolved_recipe)
    recipe: Optional[str] = None
    cross_validate: bool = True
    # Few-label recipe only: a second fit on the real labels plus the scene's own confident pixels
    # (recipe.self_train). Off by default: it helped on some real scenes and hurt on others (docs/RESULTS.md).
    self_training: bool = False
    # Fine-tune, legacy loop: weight of keeping the base's predictions for the classes no label uses
    # (training.memory). None: memory.DEFAULT_WEIGHT there, 0 (nothing to remember) everywhere else.
    memory_weight: Optional[float] = None
    # The argv that stands for this run (without `python -m backend`); empty: built by cli_argv().
    command: Sequence[str] = field(default=())

    @property
    def finetune(self) -> bool:
        return self.base_model is not None

    @property
    def resolved_recipe(self) -> str:
        if self.recipe:
            return self.recipe
        # A fine-tune keeps the legacy loop: its figures (the generic model's card) were measured with
        # it, and the few-label recipe was not measured on fine-tunes (docs/RESULTS.md).
        return "legacy" if self.finetune else "fewlabel"

    @property
    def memory_applies(self) -> bool:
        """Whether the run can remember the base's unlabelled classes: a fine-tune in the legacy loop."""
        return self.finetune and self.resolved_recipe == "legacy"

    @property
    def resolved_memory_weight(self) -> float:
        if self.memory_weight is not None:
            return float(self.memory_weight)
        return DEFAULT_MEMORY_WEIGHT if self.memory_applies else 0.0

    @property
    def command_name(self) -> str:
        return "finetune" if self.finetune else "train"

    def validate(self) -> None:
        _check_device(self.device)
        if not self.finetune and self.arch not in nets.ARCHITECTURES:
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"Unknown architecture {self.arch!r}",
                                f"Choose from {', '.join(nets.ARCHITECTURES)}.")
        if self.epochs is not None and (isinstance(self.epochs, bool) or self.epochs < 1):
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"--epochs must be at least 1 (got {self.epochs}).",
                                "Leave --epochs out for the architecture's default.")
        if self.recipe is not None and self.recipe not in RECIPES:
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"Unknown --recipe {self.recipe!r}",
                                f"Choose from {', '.join(RECIPES)}.")
        if self.tile_size < 16:
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"--tile-size must be at least 16 (got {self.tile_size}).")
        if self.self_training and self.resolved_recipe != "fewlabel":
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS, "--self-training is part of the few-label recipe.",
                                "Add --recipe fewlabel, or leave --self-training out.")
        if self.memory_weight is not None:
            if not (isinstance(self.memory_weight, (int, float)) and 0 <= self.memory_weight <= 100):
                raise LandFuseError(ErrorCode.BAD_ARGUMENTS,
                                    f"--remember-unlabelled must be between 0 and 100 (got {self.memory_weight}).",
                                    "0 lets classes without labels fade; leave it out for the default.")
            if self.memory_weight > 0 and not self.memory_applies:
                raise LandFuseError(ErrorCode.BAD_ARGUMENTS,
                                    "--remember-unlabelled applies to a fine-tune with the legacy loop (its default).",
                                    "Leave --remember-unlabelled out, or --recipe out.")
        _check_seed(self.seed)

    def cli_argv(self) -> list:
        """The command-line arguments of this run: what it was started with, or their equivalent."""
        if self.command:
            return [str(a) for a in self.command]
        argv = [self.command_name]
        if self.finetune:
            argv += ["--model", self.base_model]
        argv += ["--hsi", self.hsi, "--labels", self.labels]
        if not self.finetune:
            argv += ["--arch", self.arch]
        argv += ["--out", self.out, "--seed", str(self.seed), "--device", self.device,
                 "--tile-size", str(self.tile_size)]
        for aux in self.aux:
            argv += ["--aux", aux]
        if self.class_field:
            argv += ["--class-field", self.class_field]
        if self.epochs:
            argv += ["--epochs", str(self.epochs)]
        if self.only_labelled_classes:
            argv.append("--only-labelled-classes")
        if self.recipe:
            argv += ["--recipe", self.recipe]
        if self.memory_weight is not None:
            argv += ["--remember-unlabelled", f"{self.memory_weight:g}"]
        if not self.cross_validate:
            argv.append("--no-cross-validation")
        if self.self_training:
            argv.append("--self-training")
        if self.name:
            argv += ["--name", self.name]
        return [str(a) for a in argv]


# `pretrain` defaults: sized to finish within an hour on a 2-core CPU (see models/generic-landcover)
PRETRAIN_DEFAULTS = {"scenes": 160, "size": 96, "steps": 1400, "crop": 64, "batch": 8}


@dataclass(frozen=True)
class PretrainConfig:
    """`pretrain`: the generic model on synthetic scenes of real ingredients."""

    out: str
    arch: str = "m3amba"
    seed: int = 0
    scenes: int = PRETRAIN_DEFAULTS["scenes"]
    size: int = PRETRAIN_DEFAULTS["size"]
    steps: int = PRETRAIN_DEFAULTS["steps"]
    crop: int = PRETRAIN_DEFAULTS["crop"]
    batch: int = PRETRAIN_DEFAULTS["batch"]
    device: str = "auto"
    name: Optional[str] = None
    command: Sequence[str] = field(default=())

    def validate(self) -> None:
        _check_device(self.device)
        if self.arch not in nets.ARCHITECTURES:
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"Unknown architecture {self.arch!r}",
                                f"Choose from {', '.join(nets.ARCHITECTURES)}.")
        _check_seed(self.seed)
        if min(self.scenes, self.steps, self.batch) < 1 or self.size < 16 or self.crop < 16:
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS, "--scenes/--steps/--batch must be ≥ 1, --size/--crop ≥ 16")

    def cli_argv(self) -> list:
        if self.command:
            return [str(a) for a in self.command]
        return ["pretrain", "--out", self.out, "--seed", str(self.seed)]
