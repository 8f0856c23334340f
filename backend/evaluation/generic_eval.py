"""`zeroshot` and `fewshot`: what the generic model does on scenes and sensors it never saw.

zeroshot  held-out scenes (held-out spectra, held-out parts of the real maps or new generated towns,
          held-out sensors), written as GeoTIFFs the way users have them (uint16 ×10000, band metadata,
          bad-band list) and run through the real `classify` path, with and without the DSM; against a
          RandomForest(300) trained on the raw training-partition library spectra convolved to each
          scene's bands. Same pixels for all; one confusion matrix over all scenes, every pixel once.
fewshot   on pairs of held-out scenes of one held-out sensor: N labelled pixels per class on scene A;
          fine-tune the generic model on them vs train the same architecture from scratch on them;
          both classify scene B.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import rasterio

from backend.engine.classify import classify
from backend.evaluation.baselines import random_forest
from backend.evaluation.metrics import confusion_matrix, summarize_confusion
from backend.io.atomic import write_json_atomic
from backend.protocol import ErrorCode, LandFuseError, NestedEvents
from backend.synth import library, sensors, spectra
from backend.synth.library_scene import required_range, split_library, write_library_scene
from backend.training.config import TrainConfig

SCENE_SIZE = 128


@dataclass(frozen=True)
class ZeroshotConfig:
    model: str
    out: str
    scenes: int = 6
    sensors: Optional[Sequence[str]] = None    # None: every held-out sensor
    seed: int = 0


@dataclass(frozen=True)
class FewshotConfig:
    model: str
    out: str
    sensor: str = "AisaFENIX"
    per_class: int = 20
    pairs: int = 1
    epochs: Optional[int] = None
    seed: int = 0


@dataclass(frozen=True)
class LibraryRfConfig:
    hsi: str
    out: str
    wavelengths: Optional[str] = None          # as given: a list or a file, parsed here
    seed: int = 0


def held_out_scene(out_dir, seed, sensor_name):
    return write_library_scene(out_dir, seed, "held_out", sensor_name, SCENE_SIZE, library.shared_data_dir())


def library_training_set(centres, fwhm, good):
    """The training partition's spectra convolved to a sensor's good bands: (X, y) for the baseline."""
    lib = split_library("train", library.shared_data_dir())
    lo, hi = required_range(centres[good])
    keep = lib.covering(lo, hi, skip_nm=library.LIBRARY_GAPS_NM)
    grid = lib.wavelengths_nm
    srf = spectra.band_response_matrix(grid, centres[good], fwhm[good])
    filled = np.array([np.interp(grid, grid[~np.isnan(s)], s[~np.isnan(s)]) for s in lib.spectra[keep]])
    return (filled @ srf.T).astype(np.float32), lib.classes[keep]


def _random_forest(scene, seed):
    good = ~scene["bad"]
    x, y = library_training_set(scene["centres"], scene["fwhm"], good)
    forest = random_forest(seed, balanced=True)
    forest.fit(x, y)
    pixels = scene["hsi"][:, :, good].reshape(-1, int(good.sum()))
    return forest.predict(pixels).reshape(scene["labels"].shape).astype(np.uint8), len(y)


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


# a 7th column/row: labelled pixels the model left unclassified (nodata) count as errors, not as absent
_NAMES = [c["name"] for c in library.GENERIC_CLASSES] + ["unclassified"]


def _summary(cm):
    return summarize_confusion(cm, _NAMES)


def _confusion(labels, prediction):
    mask = labels > 0
    pred = prediction[mask].astype(np.int64)
    return confusion_matrix(labels[mask].astype(np.int64) - 1, np.where((pred >= 1) & (pred <= 6), pred - 1, 6), 7)


def run_zeroshot(config: ZeroshotConfig, events) -> dict:
    started = time.perf_counter()
    out = os.path.abspath(config.out)
    os.makedirs(out, exist_ok=True)
    names = config.sensors or sensors.sensor_names("held_out")
    cms = {"generic_hsi_dsm": np.zeros((7, 7), np.int64), "generic_hsi_only": np.zeros((7, 7), np.int64),
           "random_forest": np.zeros((7, 7), np.int64)}
    scenes = []
    for i in range(config.scenes):
        sensor_name = names[i % len(names)]
        seed = config.seed * 1000 + i
        folder = os.path.join(out, f"scene_{i:02d}_{sensor_name}")
        paths, scene = held_out_scene(folder, seed, sensor_name)
        labels = scene["labels"]
        preds = {}
        for key, aux in (("generic_hsi_dsm", [paths["dsm"]]), ("generic_hsi_only", [])):
            target = os.path.join(folder, f"{key}.tif")
            classify(paths["hsi"], aux, config.model, target, NestedEvents(events, f"scene {i}", quiet=True))
            preds[key] = _read(target)
        preds["random_forest"], n_lib = _random_forest(scene, config.seed)
        row = {"scene": os.path.basename(folder), "sensor": sensor_name, "bands": int(scene["centres"].size),
               "layout": scene["layout"], "pixel_size_m": scene["pixel_size"], "labelled_px": int((labels > 0).sum()),
               "rf_library_spectra": n_lib}
        for key, pred in preds.items():
            cm = _confusion(labels, pred)
            cms[key] += cm
            row[key] = _summary(cm)["oa"]
        scenes.append(row)
        events.log(f"[scene {i}] {sensor_name} ({row['bands']} bands, {row['layout']}, {row['pixel_size_m']:g} m): "
                   + ", ".join(f"{k} OA {row[k]:.3f}" for k in cms))
        events.progress("zeroshot", i + 1, config.scenes)
    report = {"model": os.path.basename(os.path.abspath(config.model)), "seed": config.seed, "scenes": scenes,
              "metrics": {k: _summary(v) for k, v in cms.items()}}
    write_json_atomic(os.path.join(out, "zeroshot.json"), report, indent=1)
    metrics = {k: {m: v[m] for m in ("oa", "aa", "kappa", "n_pixels")} for k, v in report["metrics"].items()}
    return {"outputs": {"report": os.path.join(out, "zeroshot.json")}, "metrics": metrics,
            "timings": {"total_s": round(time.perf_counter() - started, 1)}}


def run_fewshot(config: FewshotConfig, events) -> dict:
    from backend.synth.labels import sample_labels
    from backend.training.train import run_training
    started = time.perf_counter()
    out = os.path.abspath(config.out)
    os.makedirs(out, exist_ok=True)
    manifest_arch = json.load(open(os.path.join(config.model, "model.json"), encoding="utf-8"))["architecture"]["name"]
    cms = {"finetuned_generic": np.zeros((7, 7), np.int64), "from_scratch": np.zeros((7, 7), np.int64),
           "zero_shot_generic": np.zeros((7, 7), np.int64)}
    pairs = []
    for p in range(config.pairs):
        seed = config.seed * 1000 + 500 + 2 * p
        train_dir, test_dir = (os.path.join(out, f"pair_{p}_{k}") for k in ("train", "test"))
        train_paths, _ = held_out_scene(train_dir, seed, config.sensor)
        test_paths, test_scene = held_out_scene(test_dir, seed + 1, config.sensor)
        sparse = os.path.join(train_dir, "labels_sparse.tif")
        counts = sample_labels(train_paths["labels"], sparse, per_class=config.per_class, seed=seed)
        runs = {
            "finetuned_generic": {"base_model": config.model},
            "from_scratch": {"arch": manifest_arch},
        }
        row = {"pair": p, "sensor": config.sensor, "labels_per_class": {str(k): v for k, v in counts.items()}}
        target = os.path.join(test_dir, "zero_shot_generic.tif")   # the reference point: no labels at all
        classify(test_paths["hsi"], [test_paths["dsm"]], config.model, target, NestedEvents(events, "zero_shot", quiet=True))
        cm = _confusion(test_scene["labels"], _read(target))
        cms["zero_shot_generic"] += cm
        row["zero_shot_generic"] = _summary(cm)["oa"]
        for key, start in runs.items():
            model_dir = os.path.join(out, f"pair_{p}_{key}")
            run_training(TrainConfig(hsi=train_paths["hsi"], aux=(train_paths["dsm"],), labels=sparse, out=model_dir,
                                     seed=config.seed, epochs=config.epochs, **start),
                         NestedEvents(events, key, quiet=True))
            target = os.path.join(test_dir, f"{key}.tif")
            classify(test_paths["hsi"], [test_paths["dsm"]], model_dir, target, NestedEvents(events, key, quiet=True))
            cm = _confusion(test_scene["labels"], _read(target))
            cms[key] += cm
            row[key] = _summary(cm)["oa"]
        pairs.append(row)
        events.log(f"[pair {p}] " + ", ".join(f"{k} OA {row[k]:.3f}" for k in cms))
    report = {"model": os.path.basename(os.path.abspath(config.model)), "sensor": config.sensor,
              "per_class": config.per_class, "pairs": pairs, "metrics": {k: _summary(v) for k, v in cms.items()}}
    write_json_atomic(os.path.join(out, "fewshot.json"), report, indent=1)
    metrics = {k: {m: v[m] for m in ("oa", "aa", "kappa", "n_pixels")} for k, v in report["metrics"].items()}
    return {"outputs": {"report": os.path.join(out, "fewshot.json")}, "metrics": metrics,
            "timings": {"total_s": round(time.perf_counter() - started, 1)}}


def run_library_rf(config: LibraryRfConfig, events) -> dict:
    """`library-rf`: the baseline on a real raster — a RandomForest(300) trained on the training-partition
    library spectra convolved to the raster's good bands, applied pixel by pixel. The raster's values are
    brought to reflectance by the power of ten that matches the library's magnitude (as classify does)."""
    from backend.engine.modalities import detect_scale, good_bands
    from backend.io import output, rasters
    from backend.io.paths import check_outputs
    from backend.io.spectral import require_wavelengths
    started = time.perf_counter()
    wavelengths = None
    if config.wavelengths:
        from backend.io.spectral import parse_wavelength_list
        wavelengths = parse_wavelength_list(config.wavelengths)
    check_outputs([config.hsi, config.wavelengths if config.wavelengths and os.path.isfile(config.wavelengths) else None],
                  {"class map": config.out, "legend (.qml beside the class map)": output.sidecar(config.out, ".qml"),
                   "category names (.aux.xml beside the class map)": config.out + ".aux.xml"}, events.log)
    with rasters.open_raster(config.hsi, "hyperspectral") as ds:
        centres, fwhm, _ = require_wavelengths(ds, wavelengths)
        good, _ = good_bands(ds, "hsi", events.log)
        c = np.asarray(centres, np.float64)
        fw = np.asarray(fwhm, np.float64) if fwhm else spectra.band_fwhm(c)
        mask = np.zeros(c.size, bool)
        mask[np.asarray(good) - 1] = True
        x, y = library_training_set(c, fw, mask)
        scale = detect_scale({"typical_magnitude": float(np.median(x))}, ds, good, "hsi", events.log)
        data, valid = rasters.read_window(ds, good, rasters.full_window(ds))
        pixel_valid = valid.all(axis=0)
        forest = random_forest(config.seed, balanced=True)
        forest.fit(x, y)
        pred = np.zeros(pixel_valid.shape, np.uint8)
        pred[pixel_valid] = forest.predict((data[:, pixel_valid] * scale).T)
        writer = output.ClassificationWriter(config.out, ds.profile, library.GENERIC_CLASSES, None)
        try:
            writer.write(rasters.full_window(ds), pred, None)
            outputs = writer.commit()
        except BaseException:
            writer.abort()
            raise
    return {"outputs": outputs, "class_table": library.GENERIC_CLASSES,
            "metrics": {"library_spectra": int(len(y)), "scale": scale},
            "timings": {"total_s": round(time.perf_counter() - started, 1)}}


def check_sensor(name):
    if name not in [n for n, _, _ in sensors.SENSORS]:
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"Unknown sensor {name!r}",
                            "Known: " + ", ".join(n for n, _, _ in sensors.SENSORS))
