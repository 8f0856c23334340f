"""`python -m backend <command>`: every command speaks the JSON-lines protocol on stdout.

Exit status: 0 only after a `result` event; 1 after an `error` event; 2 for bad arguments
(also reported as an `error` event); 130 when cancelled (SIGTERM / SIGINT).
"""

import argparse
import os
import signal
import sys
import traceback

from backend.engine import device as devices
from backend.protocol import DEFAULT_TILE_SIZE, ErrorCode, EventWriter, LandFuseError


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors become events."""

    def error(self, message):
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"{self.prog}: {message}", "Run with --help for the usage.")


# `pretrain` defaults: sized to finish within an hour on a 2-core CPU (see models/generic-landcover)
PRETRAIN_DEFAULTS = {"scenes": 160, "size": 96, "steps": 1400, "crop": 64, "batch": 8}


def build_parser():
    parser = _ArgumentParser(prog="python -m backend", description="LandFuse backend (JSON-lines events on stdout)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)

    p = sub.add_parser("classify", help="classify a scene with a model package")
    p.add_argument("--hsi", required=True, help="hyperspectral raster (the reference grid)")
    p.add_argument("--aux", action="append", default=[], help="auxiliary raster (DSM, SAR, …); repeat for several")
    p.add_argument("--model", required=True, help="model package folder")
    p.add_argument("--out", required=True, help="class GeoTIFF to write")
    p.add_argument("--confidence", help="optional confidence GeoTIFF (max class probability)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE,
                   help="window side in pixels (a halo of context is added)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="windows per forward pass (default: about 262,144 core pixels' worth)")
    p.add_argument("--wavelengths", help="band centres of the HSI (nm or µm, comma-separated, or a text file "
                   "with one per line); overrides the raster's metadata; used by generic models")

    p = sub.add_parser("info", help="summarise a model package")
    p.add_argument("--model", required=True)

    sub.add_parser("diagnostics", help="versions, device, CUDA, memory")

    for name in ("train", "finetune"):
        p = sub.add_parser(name, help=f"{name} a model on labels")
        if name == "finetune":
            p.add_argument("--model", required=True, help="model package to start from")
            p.add_argument("--only-labelled-classes", action="store_true",
                           help="drop the base model's classes that the labels never use")
            p.add_argument("--wavelengths", help="band centres of the HSI (nm or µm, comma-separated, or a text file "
                           "with one per line); overrides the raster's metadata; used by generic models")
        p.add_argument("--hsi", required=True)
        p.add_argument("--aux", action="append", default=[])
        p.add_argument("--labels", required=True, help="label raster (0 = unlabelled) or vector file")
        p.add_argument("--class-field", help="class field of a vector label file")
        if name == "train":
            p.add_argument("--arch", default="m3amba", help="m3amba | bdgf | tiny")
        p.add_argument("--out", required=True, help="model package folder to write")
        p.add_argument("--epochs", type=int, default=None)
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--tile-size", type=int, default=64, help="training tile size")
        p.add_argument("--name", help="model name for the manifest")

    p = sub.add_parser("pretrain", help="pretrain the generic model on synthetic scenes of real ingredients")
    p.add_argument("--arch", default="m3amba", help="m3amba | bdgf | tiny")
    p.add_argument("--out", required=True, help="model package folder to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scenes", type=int, default=PRETRAIN_DEFAULTS["scenes"], help="synthetic scenes to render")
    p.add_argument("--size", type=int, default=PRETRAIN_DEFAULTS["size"], help="scene rows and columns")
    p.add_argument("--steps", type=int, default=PRETRAIN_DEFAULTS["steps"], help="optimiser steps")
    p.add_argument("--crop", type=int, default=PRETRAIN_DEFAULTS["crop"], help="training crop size")
    p.add_argument("--batch", type=int, default=PRETRAIN_DEFAULTS["batch"], help="crops per step")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--name", help="model name for the manifest")

    p = sub.add_parser("zeroshot", help="a generic model on held-out synthetic scenes and sensors vs a random forest")
    p.add_argument("--model", required=True, help="generic model package")
    p.add_argument("--out", required=True, help="folder for the scenes, maps and zeroshot.json")
    p.add_argument("--scenes", type=int, default=6)
    p.add_argument("--sensors", nargs="+", help="sensor names (default: every held-out sensor)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("fewshot", help="fine-tune a generic model with N labels per class vs train from scratch")
    p.add_argument("--model", required=True, help="generic model package")
    p.add_argument("--out", required=True, help="folder for the scenes, models and fewshot.json")
    p.add_argument("--sensor", default="AisaFENIX", help="held-out sensor to simulate")
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--pairs", type=int, default=1, help="(train scene, test scene) pairs")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("library-rf", help="baseline: a random forest trained on the spectral library, on a raster")
    p.add_argument("--hsi", required=True)
    p.add_argument("--out", required=True, help="class GeoTIFF to write")
    p.add_argument("--wavelengths", help="band centres (nm), as for classify")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("split-labels", help="spatially disjoint train/test labels from a reference raster "
                       "(whole blocks), with at most N train pixels per class")
    p.add_argument("--reference", required=True, help="label raster (0 = unlabelled)")
    p.add_argument("--out-train", required=True)
    p.add_argument("--out-test", required=True)
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--block", type=int, default=16, help="block edge (px)")
    p.add_argument("--buffer", type=int, default=2, help="test pixels this close to a train block are dropped")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("preview", help="PNG of an image beside its land-cover map, with the legend")
    p.add_argument("--hsi", required=True, help="the image (true colour from its wavelengths when known)")
    p.add_argument("--classes", required=True, help="a class raster written by classify")
    p.add_argument("--out", required=True, help="PNG to write")

    p = sub.add_parser("evaluate", help="accuracy of a class raster against reference labels")
    p.add_argument("--prediction", required=True)
    p.add_argument("--reference", required=True, help="reference label raster or vector file")
    p.add_argument("--class-field")
    p.add_argument("--out-json", help="write the report as JSON")
    p.add_argument("--out-html", help="write the report as HTML")

    p = sub.add_parser("synth", help="generate a synthetic multimodal scene (HSI + DSM + labels)")
    p.add_argument("--out", required=True, help="folder to write the scene into")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256, help="rows and columns")
    p.add_argument("--bands", type=int, default=64)
    p.add_argument("--per-class", type=int, default=100, help="sparse training labels per class (labels_sparse.tif)")

    p = sub.add_parser("benchmark", help="networks vs a random forest on a standard dataset, several seeds")
    p.add_argument("--dataset", required=True,
                   choices=["trento", "houston2013", "muufl", "augsburg", "dfc2018_crop", "indian_pines_msi"])
    p.add_argument("--data-dir", required=True, help="folder holding the dataset's official files")
    p.add_argument("--arch", nargs="+", help="m3amba | bdgf | tiny | random_forest (default: m3amba bdgf random_forest)")
    p.add_argument("--seeds", type=int, default=3, help="runs per architecture (seeds 0..N-1)")
    p.add_argument("--per-class", type=int, default=None, help="train on at most N labelled px per class (seeded)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--tile-size", type=int, default=64, help="training tile size of the networks")
    p.add_argument("--train-size", help="muufl only (no official split): N per class or P%% (default 20)")
    p.add_argument("--skip-checksums", action="store_true",
                   help="run on files whose SHA-256 differs from the official one (warn instead of refusing)")
    p.add_argument("--resume", action="store_true", help="reuse finished runs found in --out")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", required=True, help="folder for the prepared data, runs and results tables")

    p = sub.add_parser("demo", help="make the demo scene, classify it with a bundled model, report")
    p.add_argument("--out", default="demo_output")
    p.add_argument("--model", help="model package (default: the bundled demo model)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    return parser


def parse_args(argv):
    """Parsed arguments plus `argv` itself: a model records the exact command that made it, also when a
    command (benchmark, fewshot) runs another in-process."""
    args = build_parser().parse_args(argv)
    args.argv = [str(a) for a in argv]
    return args


def _wavelengths(args):
    if not getattr(args, "wavelengths", None):
        return None
    from backend.io.spectral import parse_wavelength_list
    return parse_wavelength_list(args.wavelengths)


def _run(args, events):
    if args.command == "classify":
        if args.tile_size < 16 or (args.batch_size is not None and args.batch_size < 1):
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS, "--tile-size must be ≥ 16 and --batch-size ≥ 1")
        from backend.engine.classify import classify
        return classify(args.hsi, args.aux, args.model, args.out, events, confidence=args.confidence,
                        device=args.device, tile_size=args.tile_size, batch_size=args.batch_size,
                        wavelengths=_wavelengths(args))
    if args.command == "info":
        from backend.engine.package import load_manifest_checked
        from backend.manifest import summarize
        manifest, _ = load_manifest_checked(args.model)
        return {"model": summarize(manifest)}
    if args.command == "diagnostics":
        from backend.engine.diagnostics import collect
        return {"diagnostics": collect()}
    if args.command in ("train", "finetune"):
        from backend.training.train import run_training
        args.wavelength_list = _wavelengths(args)
        return run_training(args, events)
    if args.command == "pretrain":
        from backend.training.pretrain import run_pretraining
        if min(args.scenes, args.steps, args.batch) < 1 or args.size < 16 or args.crop < 16:
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS, "--scenes/--steps/--batch must be ≥ 1, --size/--crop ≥ 16")
        return run_pretraining(args, events)
    if args.command == "library-rf":
        from backend.evaluation.generic_eval import run_library_rf
        return run_library_rf(args, events)
    if args.command in ("zeroshot", "fewshot"):
        from backend.evaluation import generic_eval
        for sensor in ([args.sensor] if args.command == "fewshot" else args.sensors or []):
            generic_eval.check_sensor(sensor)
        if args.command == "zeroshot":
            return generic_eval.run_zeroshot(args, events)
        return generic_eval.run_fewshot(args, events)
    if args.command == "split-labels":
        from backend.synth.labels import sample_labels, split_labels
        region = args.out_train + ".region.tif"
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
    if args.command == "preview":
        from backend.io.preview import preview_files
        return {"outputs": {"preview": preview_files(args.hsi, args.classes, args.out)}}
    if args.command == "evaluate":
        from backend.evaluation.evaluate import evaluate
        return evaluate(args.prediction, args.reference, class_field=args.class_field,
                        out_json=args.out_json, out_html=args.out_html, events=events)
    if args.command == "synth":
        from backend.synth.scene import generate_scene
        from backend.synth.labels import sample_labels
        scene = generate_scene(args.out, seed=args.seed, height=args.size, width=args.size, n_bands=args.bands)
        sparse = os.path.join(args.out, "labels_sparse.tif")
        counts = sample_labels(scene["labels"], sparse, per_class=args.per_class, seed=args.seed)
        outputs = dict({k: scene[k] for k in ("hsi", "dsm", "labels")}, labels_sparse=sparse)
        return {"outputs": outputs, "class_table": scene["classes"],
                "metrics": {"sparse_labels_per_class": {str(k): v for k, v in counts.items()}}}
    if args.command == "benchmark":
        from backend.evaluation.benchmark import run_benchmark
        return run_benchmark(args, events)
    if args.command == "demo":
        from backend.evaluation.demo import run_demo
        return run_demo(args.out, events, model_dir=args.model, device=args.device)
    raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"unknown command {args.command}")


def _on_signal(signum, frame):
    raise LandFuseError(ErrorCode.CANCELLED, f"Cancelled (signal {signum}); no output was written.")


def main(argv=None, stdout=None):
    events = EventWriter(stdout)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        devices.tune_host_allocator()
        from backend.io.rasters import gdal_env
        with gdal_env():
            result = _run(args, events)
    except LandFuseError as exc:
        events.error(exc.code, exc.message, exc.hint)
        if exc.code == ErrorCode.CANCELLED:
            return 130
        return 2 if exc.code == ErrorCode.BAD_ARGUMENTS else 1
    except MemoryError:
        events.error(ErrorCode.OUT_OF_MEMORY, "Ran out of memory.", "Try a smaller --tile-size or --batch-size.")
        return 1
    except Exception as exc:  # anything unexpected: report it, with the traceback on stderr
        traceback.print_exc(file=sys.stderr)
        events.error(ErrorCode.INTERNAL, f"Unexpected error: {type(exc).__name__}: {exc}",
                     "This is a bug in LandFuse; the log (stderr) has the details.")
        return 1
    events.result(args.command, **result)
    return 0
