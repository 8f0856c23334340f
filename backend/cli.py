"""`python -m backend <command>`: every command speaks the JSON-lines protocol on stdout.

Each command is one `Command` in `COMMANDS`: its arguments and a `run(args, events)` that maps them
onto the engine's typed inputs (configs, plain parameters). Options that several commands share
(`--device`, `--seed`, `--wavelengths`, …) are added by one helper each, and choices come from the
registries (`backend.nets.ARCHITECTURES`, the benchmark's datasets), so the CLI cannot drift from them.

Exit status: 0 only after a `result` event; 1 after an `error` event; 2 for bad arguments
(also reported as an `error` event); 130 when cancelled (SIGTERM / SIGINT); 3 after the `result` of a
`classify-batch` in which some inputs failed (its summary says which; `--allow-failures`: 0).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from typing import Callable, Optional

from backend import nets
from backend.engine import device as devices
from backend.protocol import DEFAULT_TILE_SIZE, MAP_WINDOW, ErrorCode, EventWriter, LandFuseError
from backend.training.config import (
    DEFAULT_MEMORY_WEIGHT,
    DEVICES,
    PRETRAIN_DEFAULTS,
    RECIPES,
    TRAIN_DEFAULT_ARCH,
    PretrainConfig,
    TrainConfig,
)

BENCHMARK_DATASETS = ("trento", "houston2013", "muufl", "augsburg", "dfc2018_crop", "indian_pines_msi",
                      "indian_pines_msi_blocks", "salinas_a", "indian_pines_crop", "dfc2018_houston_crop", "samson")


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors become events."""

    def error(self, message):
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"{self.prog}: {message}", "Run with --help for the usage.")


# ---- options several commands share ---------------------------------------------------------------

def _device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=list(DEVICES))


def _at_least(minimum: int, maximum: Optional[int] = None) -> Callable[[str], int]:
    """An argparse type: an integer in [minimum, maximum] (a bad value becomes a bad_arguments event)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(
                f"{value} is out of range: it must be at least {minimum}" + (f" and at most {maximum}" if maximum else ""))
        return value
    parse.__name__ = "integer"
    return parse


SEED = _at_least(0, 2 ** 32 - 1)   # what numpy's and torch's generators accept


def _seed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=SEED, default=0)


def _wavelengths(p: argparse.ArgumentParser, help_text: Optional[str] = None) -> None:
    p.add_argument("--wavelengths", help=help_text or (
        "band centres of the HSI (nm or µm, comma-separated, or a text file with one per line); "
        "overrides the raster's metadata; used by generic models"))


def _arch(p: argparse.ArgumentParser, default: str = "m3amba") -> None:
    p.add_argument("--arch", default=default, choices=list(nets.ARCHITECTURES))


def _model_out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="model package folder to write")
    p.add_argument("--name", help="model name for the manifest")


def _hsi_aux(p: argparse.ArgumentParser, hsi_help: Optional[str] = None, aux_help: Optional[str] = None) -> None:
    p.add_argument("--hsi", required=True, help=hsi_help)
    p.add_argument("--aux", action="append", default=[], help=aux_help)


def _parsed_wavelengths(args) -> Optional[list]:
    if not getattr(args, "wavelengths", None):
        return None
    from backend.io.spectral import parse_wavelength_list
    return parse_wavelength_list(args.wavelengths)


# ---- the commands -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, EventWriter], dict]


def _classify_arguments(p):
    _hsi_aux(p, "hyperspectral raster (the reference grid)", "auxiliary raster (DSM, SAR, …); repeat for several")
    p.add_argument("--model", required=True, help="model package folder")
    p.add_argument("--out", required=True, help="class GeoTIFF to write")
    p.add_argument("--confidence", help="optional confidence GeoTIFF (max class probability)")
    _device(p)
    _memory_options(p)
    _wavelengths(p)
    _min_confidence(p)


def _probability(text: str) -> float:
    """An argparse type: a number 0 ≤ P < 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} is out of range: it must be at least 0 and below 1")
    return value


def _min_confidence(p):
    p.add_argument("--min-confidence", type=_probability, default=0.0,
                   help="leave pixels whose (calibrated) confidence is below this as 'unclassified' "
                        "(value 255, its own legend entry); 0 ≤ P < 1, default 0: off")


def _memory_options(p):
    """classify's and classify-batch's --tile-size, --batch-size and --window."""
    p.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE,
                   help="about N×N pixels go through the network at once: memory and speed only, the map is the "
                        "same at every tile size (windows of --window px, at least one per pass)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="windows per forward pass (default: from --tile-size)")
    p.add_argument("--window", type=int, default=MAP_WINDOW,
                   help=f"the network's window side in px (default {MAP_WINDOW}; a halo of context is added). A smaller "
                        "window needs less memory but changes about 1 %% of the map: keep the default to get the "
                        "map the dock and Processing make")


def _check_memory_options(args):
    if args.tile_size < 16 or args.window < 16 or (args.batch_size is not None and args.batch_size < 1):
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, "--tile-size and --window must be ≥ 16 and --batch-size ≥ 1")


def _classify(args, events):
    _check_memory_options(args)
    from backend.engine.classify import classify
    return classify(args.hsi, args.aux, args.model, args.out, events, confidence=args.confidence,
                    device=args.device, tile_size=args.tile_size, batch_size=args.batch_size,
                    wavelengths=_parsed_wavelengths(args), min_confidence=args.min_confidence, window=args.window)


def _calibrate_arguments(p):
    p.add_argument("--model", required=True, help="generic model package (its model.json and card are updated)")
    p.add_argument("--scenes", type=_at_least(1, 500), default=12,
                   help="held-out synthetic scenes to fit on, and as many others to measure on")
    _seed(p)
    p.add_argument("--check", nargs=2, action="append", default=[], metavar=("HSI", "LABELS"),
                   help="also measure on a real raster and its reference labels (not fitted on); repeatable")
    _device(p)
    p.add_argument("--dry-run", action="store_true", help="measure and report only; leave the package unchanged")


def _calibrate(args, events):
    from backend.evaluation.calibration import CalibrateConfig, run_calibration
    return run_calibration(CalibrateConfig(
        model=args.model, scenes=args.scenes, seed=args.seed, checks=tuple(tuple(c) for c in args.check),
        device=args.device, dry_run=args.dry_run), events)


def _classify_batch_arguments(p):
    p.add_argument("--inputs", nargs="+", required=True,
                   help="hyperspectral rasters: files, a glob in quotes, a folder, or @list.txt (one per line)")
    aux = p.add_mutually_exclusive_group()
    aux.add_argument("--aux", nargs="+", action="append", default=[],
                     help="one auxiliary modality: one raster for every scene (a mosaic) or one per scene, in "
                          "the order of --inputs; repeat the option for each modality")
    aux.add_argument("--aux-pattern", action="append", default=[],
                     help="one auxiliary modality by name, e.g. '{stem}_dsm.tif' ({stem}, {name}, {dir}; relative "
                          "to the scene's folder); repeat for each modality")
    p.add_argument("--model", required=True, help="model package folder")
    p.add_argument("--out-dir", required=True, help="folder for the maps and classify_batch.json (made if missing)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", help="a running Dask scheduler (tcp://host:8786); default: a local cluster")
    where.add_argument("--workers", type=int, help="workers of the local cluster (default: one per core)")
    p.add_argument("--worker-threads", type=int, help="torch/GDAL threads per local worker (default: cores ÷ workers)")
    p.add_argument("--confidence", action="store_true", help="also write NAME_confidence.tif per scene")
    _device(p)
    _memory_options(p)
    p.add_argument("--windows-per-task", type=int, default=None,
                   help="windows per Dask task (default: about 1 Mpx of windows)")
    p.add_argument("--allow-failures", action="store_true",
                   help="exit 0 even when some inputs failed (the summary lists them)")
    _wavelengths(p)
    _min_confidence(p)


def _classify_batch(args, events):
    for name in ("workers", "worker_threads", "windows_per_task"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"--{name.replace('_', '-')} must be ≥ 1")
    _check_memory_options(args)
    from backend.batch.run import BatchConfig, run_batch
    result = run_batch(BatchConfig(
        inputs=args.inputs, model=args.model, out_dir=args.out_dir, aux=args.aux, aux_patterns=args.aux_pattern,
        scheduler=args.scheduler, workers=args.workers, worker_threads=args.worker_threads,
        confidence=args.confidence, device=args.device, tile_size=args.tile_size, batch_size=args.batch_size,
        window=args.window, windows_per_task=args.windows_per_task, wavelengths=_parsed_wavelengths(args),
        min_confidence=args.min_confidence, command=tuple(args.argv)), events)
    if args.allow_failures:
        result["exit_status"] = 0
    return result


def _info_arguments(p):
    p.add_argument("--model", required=True)


def _info(args, events):
    from backend.engine.package import load_manifest_checked
    from backend.manifest import summarize
    manifest, _ = load_manifest_checked(args.model)
    return {"model": summarize(manifest)}


def _diagnostics(args, events):
    from backend.engine.diagnostics import collect
    return {"diagnostics": collect()}


def _training_arguments(p):
    """What `train` and `finetune` share; each adds its own below."""
    _hsi_aux(p)
    p.add_argument("--labels", required=True, help="label raster (0 = unlabelled) or vector file")
    p.add_argument("--class-field", help="class field of a vector label file")
    _model_out(p)
    p.add_argument("--epochs", type=_at_least(1), default=None)
    _device(p)
    _seed(p)
    p.add_argument("--tile-size", type=_at_least(16), default=64, help="training tile size")
    p.add_argument("--recipe", default=None, choices=list(RECIPES),
                   help="fewlabel: fixed schedule sized by the labels, per-pixel spectral path, blocked "
                        "cross-validated estimate beside a random forest (default of train); legacy: validation "
                        "subset and early stopping (default of finetune)")
    p.add_argument("--self-training", action="store_true",
                   help="fewlabel recipe: fit again with the scene's most confident pixels as extra labels "
                        "(helps on some scenes, hurts on others: compare the cross-validated figures)")
    p.add_argument("--no-cross-validation", dest="cross_validate", action="store_false",
                   help="skip the cross-validated accuracy estimate (fewlabel recipe)")


def _train_arguments(p):
    _training_arguments(p)
    _arch(p, TRAIN_DEFAULT_ARCH)


def _finetune_arguments(p):
    p.add_argument("--model", required=True, help="model package to start from")
    p.add_argument("--only-labelled-classes", action="store_true",
                   help="drop the base model's classes that the labels never use")
    p.add_argument("--remember-unlabelled", dest="memory_weight", type=float, default=None, metavar="WEIGHT",
                   help="how strongly the classes the labels never use keep the base model's predictions "
                        f"(default {DEFAULT_MEMORY_WEIGHT:g}; 0 lets them fade)")
    _wavelengths(p)
    _training_arguments(p)


def _train_config(args) -> TrainConfig:
    finetune = args.command == "finetune"
    return TrainConfig(
        hsi=args.hsi, labels=args.labels, out=args.out, aux=tuple(args.aux), class_field=args.class_field,
        arch=getattr(args, "arch", TRAIN_DEFAULT_ARCH), base_model=args.model if finetune else None,
        only_labelled_classes=getattr(args, "only_labelled_classes", False),
        wavelengths=_parsed_wavelengths(args), epochs=args.epochs, device=args.device, seed=args.seed,
        tile_size=args.tile_size, name=args.name, recipe=args.recipe, cross_validate=args.cross_validate,
        self_training=args.self_training, memory_weight=getattr(args, "memory_weight", None),
        command=tuple(args.argv))


def _train(args, events):
    from backend.training.train import run_training
    return run_training(_train_config(args), events)


def _pretrain_arguments(p):
    _arch(p)
    _model_out(p)
    _seed(p)
    p.add_argument("--scenes", type=int, default=PRETRAIN_DEFAULTS["scenes"], help="synthetic scenes to render")
    p.add_argument("--size", type=int, default=PRETRAIN_DEFAULTS["size"], help="scene rows and columns")
    p.add_argument("--steps", type=int, default=PRETRAIN_DEFAULTS["steps"], help="optimiser steps")
    p.add_argument("--crop", type=int, default=PRETRAIN_DEFAULTS["crop"], help="training crop size")
    p.add_argument("--batch", type=int, default=PRETRAIN_DEFAULTS["batch"], help="crops per step")
    _device(p)


def _pretrain(args, events):
    from backend.training.pretrain import run_pretraining
    config = PretrainConfig(out=args.out, arch=args.arch, seed=args.seed, scenes=args.scenes, size=args.size,
                            steps=args.steps, crop=args.crop, batch=args.batch, device=args.device,
                            name=args.name, command=tuple(args.argv))
    return run_pretraining(config, events)


def _zeroshot_arguments(p):
    p.add_argument("--model", required=True, help="generic model package")
    p.add_argument("--out", required=True, help="folder for the scenes, maps and zeroshot.json")
    p.add_argument("--scenes", type=int, default=6)
    p.add_argument("--sensors", nargs="+", help="sensor names (default: every held-out sensor)")
    _seed(p)


def _zeroshot(args, events):
    from backend.evaluation import generic_eval
    from backend.io.paths import check_folder_of_outputs
    for sensor in args.sensors or []:
        generic_eval.check_sensor(sensor)
    check_folder_of_outputs(args.out, "zeroshot.json", "zero-shot folder")
    return generic_eval.run_zeroshot(generic_eval.ZeroshotConfig(
        model=args.model, out=args.out, scenes=args.scenes, sensors=args.sensors, seed=args.seed), events)


def _fewshot_arguments(p):
    p.add_argument("--model", required=True, help="generic model package")
    p.add_argument("--out", required=True, help="folder for the scenes, models and fewshot.json")
    p.add_argument("--sensor", default="AisaFENIX", help="held-out sensor to simulate")
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--pairs", type=int, default=1, help="(train scene, test scene) pairs")
    p.add_argument("--epochs", type=int, default=None)
    _seed(p)


def _fewshot(args, events):
    from backend.evaluation import generic_eval
    from backend.io.paths import check_folder_of_outputs
    generic_eval.check_sensor(args.sensor)
    check_folder_of_outputs(args.out, "fewshot.json", "few-shot folder")
    return generic_eval.run_fewshot(generic_eval.FewshotConfig(
        model=args.model, out=args.out, sensor=args.sensor, per_class=args.per_class, pairs=args.pairs,
        epochs=args.epochs, seed=args.seed), events)


def _library_rf_arguments(p):
    p.add_argument("--hsi", required=True)
    p.add_argument("--out", required=True, help="class GeoTIFF to write")
    _wavelengths(p, "band centres (nm), as for classify")
    _seed(p)


def _library_rf(args, events):
    from backend.evaluation import generic_eval
    return generic_eval.run_library_rf(generic_eval.LibraryRfConfig(
        hsi=args.hsi, out=args.out, wavelengths=args.wavelengths, seed=args.seed), events)


def _split_labels_arguments(p):
    p.add_argument("--reference", required=True, help="label raster (0 = unlabelled)")
    p.add_argument("--out-train", required=True)
    p.add_argument("--out-test", required=True)
    p.add_argument("--per-class", type=_at_least(1), default=20)
    p.add_argument("--block", type=_at_least(1), default=16, help="block edge (px)")
    p.add_argument("--buffer", type=_at_least(0), default=2, help="test pixels this close to a train block are dropped")
    _seed(p)


def _split_labels(args, events):
    from backend.io.paths import check_outputs
    from backend.synth.labels import sample_labels, split_labels
    region = args.out_train + ".region.tif"
    check_outputs([args.reference], {"train labels": args.out_train, "test labels": args.out_test,
                                     "temporary region raster": region}, events.log)
    try:
        split = split_labels(args.reference, region, args.out_test, block=args.block, seed=args.seed,
                             buffer=args.buffer)
        picked = sample_labels(region, args.out_train, per_class=args.per_class, seed=args.seed)
    finally:
        if os.path.exists(region):
            os.remove(region)
    return {"outputs": {"train": args.out_train, "test": args.out_test},
            "metrics": {"train_per_class": {str(k): v for k, v in picked.items()},
                        "test_per_class": {str(k): v for k, v in split["test"].items()}}}


def _preview_arguments(p):
    p.add_argument("--hsi", required=True, help="the image (true colour from its wavelengths when known)")
    p.add_argument("--classes", required=True, help="a class raster written by classify")
    p.add_argument("--out", required=True, help="PNG to write")


def _preview(args, events):
    from backend.io.preview import preview_files
    return {"outputs": {"preview": preview_files(args.hsi, args.classes, args.out)}}


def _evaluate_arguments(p):
    p.add_argument("--prediction", required=True)
    p.add_argument("--reference", required=True, help="reference label raster or vector file")
    p.add_argument("--class-field")
    p.add_argument("--out-json", help="write the report as JSON")
    p.add_argument("--out-html", help="write the report as HTML")


def _evaluate(args, events):
    from backend.evaluation.evaluate import evaluate
    return evaluate(args.prediction, args.reference, class_field=args.class_field,
                    out_json=args.out_json, out_html=args.out_html, events=events)


def _synth_arguments(p):
    p.add_argument("--out", required=True, help="folder to write the scene into")
    _seed(p)
    p.add_argument("--size", type=_at_least(16, 8192), default=256, help="rows and columns")
    p.add_argument("--bands", type=_at_least(1, 1024), default=64)
    p.add_argument("--per-class", type=_at_least(1), default=100, help="sparse training labels per class (labels_sparse.tif)")


def _synth(args, events):
    from backend.io.paths import check_folder_of_outputs
    from backend.synth.labels import sample_labels
    from backend.synth.scene import META_NAME, generate_scene
    check_folder_of_outputs(args.out, META_NAME, "scene folder", events.log)
    scene = generate_scene(args.out, seed=args.seed, height=args.size, width=args.size, n_bands=args.bands)
    sparse = os.path.join(args.out, "labels_sparse.tif")
    counts = sample_labels(scene["labels"], sparse, per_class=args.per_class, seed=args.seed)
    outputs = dict({k: scene[k] for k in ("hsi", "dsm", "labels")}, labels_sparse=sparse)
    return {"outputs": outputs, "class_table": scene["classes"],
            "metrics": {"sparse_labels_per_class": {str(k): v for k, v in counts.items()}}}


def _benchmark_arguments(p):
    p.add_argument("--dataset", required=True, choices=list(BENCHMARK_DATASETS))
    p.add_argument("--data-dir", required=True, help="folder holding the dataset's official files")
    p.add_argument("--arch", nargs="+", choices=list(nets.ARCHITECTURES) + ["random_forest"],
                   help="networks and baselines to run (default: m3amba bdgf random_forest)")
    p.add_argument("--seeds", type=int, default=3, help="runs per architecture (seeds 0..N-1)")
    p.add_argument("--per-class", type=int, default=None, help="train on at most N labelled px per class (seeded)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--tile-size", type=int, default=64, help="training tile size of the networks")
    p.add_argument("--train-size", help="muufl only (no official split): N per class or P%% (default 20)")
    p.add_argument("--skip-checksums", action="store_true",
                   help="run on files whose SHA-256 differs from the official one (warn instead of refusing)")
    p.add_argument("--resume", action="store_true", help="reuse finished runs found in --out")
    p.add_argument("--no-cross-validation", dest="cross_validate", action="store_false",
                   help="skip the networks' cross-validated estimate inside train (faster; train s then exclude it)")
    _device(p)
    p.add_argument("--out", required=True, help="folder for the prepared data, runs and results tables")


def _benchmark(args, events):
    from backend.evaluation.benchmark import BenchmarkConfig, run_benchmark
    return run_benchmark(BenchmarkConfig(
        dataset=args.dataset, data_dir=args.data_dir, out=args.out, arch=args.arch, seeds=args.seeds,
        per_class=args.per_class, epochs=args.epochs, tile_size=args.tile_size, train_size=args.train_size,
        skip_checksums=args.skip_checksums, resume=args.resume, device=args.device,
        cross_validate=args.cross_validate, command=tuple(args.argv)),
        events)


def _demo_arguments(p):
    p.add_argument("--out", default="demo_output")
    p.add_argument("--model", help="model package (default: the bundled demo model)")
    _device(p)


def _demo(args, events):
    from backend.evaluation.demo import run_demo
    return run_demo(args.out, events, model_dir=args.model, device=args.device)


def _no_arguments(p):
    pass


COMMANDS = (
    Command("classify", "classify a scene with a model package", _classify_arguments, _classify),
    Command("classify-batch", "classify many scenes or whole mosaics on a Dask cluster (local by default)",
            _classify_batch_arguments, _classify_batch),
    Command("info", "summarise a model package", _info_arguments, _info),
    Command("diagnostics", "versions, device, CUDA, memory", _no_arguments, _diagnostics),
    Command("train", "train a model on labels", _train_arguments, _train),
    Command("finetune", "finetune a model on labels", _finetune_arguments, _train),
    Command("pretrain", "pretrain the generic model on synthetic scenes of real ingredients",
            _pretrain_arguments, _pretrain),
    Command("zeroshot", "a generic model on held-out synthetic scenes and sensors vs a random forest",
            _zeroshot_arguments, _zeroshot),
    Command("fewshot", "fine-tune a generic model with N labels per class vs train from scratch",
            _fewshot_arguments, _fewshot),
    Command("calibrate", "fit a generic model's softmax temperature on held-out synthetic scenes; "
            "record it and its calibration error in the package", _calibrate_arguments, _calibrate),
    Command("library-rf", "baseline: a random forest trained on the spectral library, on a raster",
            _library_rf_arguments, _library_rf),
    Command("split-labels", "spatially disjoint train/test labels from a reference raster "
            "(whole blocks), with at most N train pixels per class", _split_labels_arguments, _split_labels),
    Command("preview", "PNG of an image beside its land-cover map, with the legend", _preview_arguments, _preview),
    Command("evaluate", "accuracy of a class raster against reference labels", _evaluate_arguments, _evaluate),
    Command("synth", "generate a synthetic multimodal scene (HSI + DSM + labels)", _synth_arguments, _synth),
    Command("benchmark", "networks vs a random forest on a standard dataset, several seeds",
            _benchmark_arguments, _benchmark),
    Command("demo", "make the demo scene, classify it with a bundled model, report", _demo_arguments, _demo),
)
COMMANDS_BY_NAME = {c.name: c for c in COMMANDS}


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="python -m backend", description="LandFuse backend (JSON-lines events on stdout)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)
    for command in COMMANDS:
        command.arguments(sub.add_parser(command.name, help=command.help))
    return parser


def parse_args(argv) -> argparse.Namespace:
    """Parsed arguments plus `argv` itself: a model records the exact command that made it."""
    args = build_parser().parse_args(argv)
    args.argv = [str(a) for a in argv]
    return args


def _memory_hint(argv) -> str:
    """What to try after running out of memory, naming only options the command has."""
    command = (sys.argv[1:] if argv is None else list(argv))[:1]
    try:
        options = set(build_parser()._subparsers._group_actions[0].choices[command[0]]._option_string_actions)
    except (IndexError, KeyError, AttributeError):
        options = set()
    tried = [o for o in ("--tile-size", "--batch-size", "--batch", "--window") if o in options]
    return (f"Try a smaller {' or '.join(tried)}, " if tried else "Try ") + \
        "clip the rasters to the area you need, or close other programs."


def _on_signal(signum, frame):
    raise LandFuseError(ErrorCode.CANCELLED, f"Cancelled (signal {signum}); no output was written.")


def main(argv=None, stdout=None) -> int:
    events = EventWriter(stdout)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        devices.tune_host_allocator()
        from backend.io.rasters import gdal_env
        with gdal_env():
            result = COMMANDS_BY_NAME[args.command].run(args, events)
    except LandFuseError as exc:
        events.error(exc.code, exc.message, exc.hint)
        if exc.code == ErrorCode.CANCELLED:
            return 130
        return 2 if exc.code == ErrorCode.BAD_ARGUMENTS else 1
    except MemoryError:
        events.error(ErrorCode.OUT_OF_MEMORY, "Ran out of memory.", _memory_hint(argv))
        return 1
    except OSError as exc:  # a full disk, a read-only file system, …: typed; anything else is a bug
        from backend.io.paths import os_error
        typed = os_error(exc)
        if typed is None:
            traceback.print_exc(file=sys.stderr)
            events.error(ErrorCode.INTERNAL, f"Unexpected error: {type(exc).__name__}: {exc}",
                         "This is a bug in LandFuse; the log (stderr) has the details.")
        else:
            events.error(typed.code, typed.message, typed.hint)
        return 1
    except RecursionError:
        events.error(ErrorCode.INPUT_UNREADABLE, "An input file is nested too deeply to be read (a damaged or "
                     "hostile JSON or XML file).", "Check the model.json, the label file and the rasters' metadata.")
        return 1
    except Exception as exc:  # anything unexpected: report it, with the traceback on stderr
        if devices.is_out_of_memory(exc):     # torch's allocators raise RuntimeError, not MemoryError
            events.error(ErrorCode.OUT_OF_MEMORY, f"Ran out of memory: {str(exc)[:200]}", _memory_hint(argv))
            return 1
        from backend.io.paths import os_error
        typed = os_error(exc)                 # GDAL's write errors (CPLE_*) are no OSError but say why
        if typed is not None:
            events.error(typed.code, typed.message, typed.hint)
            return 1
        traceback.print_exc(file=sys.stderr)
        events.error(ErrorCode.INTERNAL, f"Unexpected error: {type(exc).__name__}: {exc}",
                     "This is a bug in LandFuse; the log (stderr) has the details.")
        return 1
    status = result.pop("exit_status", 0)   # classify-batch: 3 when some inputs failed
    events.result(args.command, **result)
    return status
