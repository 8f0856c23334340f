"""What runs on a Dask worker: three task functions and the caches that make them cheap.

    warm_up(model, device, window)           on connecting: imports, the model into the cache, a first run
    inspect_scene(job, …)                    open and check a scene → its window plan (a small scene: done whole)
    classify_part(job, first, count, file)   `count` batches of windows from batch `first` → a part file
    assemble_scene(job, …, part results)     the part files → the scene's class GeoTIFF (+ .qml, + confidence)

Each task opens its rasters itself (any path GDAL opens) and takes the network from a per-worker
cache: a worker process loads a model once and keeps it for every later task, of this run and of
later runs on a long-lived cluster (the key holds the weights' sha256, so a changed model is
reloaded). Open scenes are cached per worker thread (GDAL handles are not shared between threads).

The windows of a task are exactly the batches `classify` feeds the network (`engine.classify.
window_batches`, cut into consecutive runs) and go through the same `classify_windows`: the map
is the one a single-process `classify` writes. A part is written to its own file through a part
file and a rename (`io.atomic`), so a task that Dask re-runs after its worker died simply writes it
again; the scene's outputs appear only at `assemble_scene`'s final renames (`io.output.
ClassificationWriter`).

Tasks return plain dicts and never raise for a bad input: a LandFuseError becomes
{"error": {code, message, hint}} (so one corrupt scene fails alone, and the error survives the trip
to the client whatever the worker's environment). Arrays are stored with numpy's own format
(`np.savez`, read back with allow_pickle=False): nothing of ours is pickled.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import sys
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from backend.protocol import ErrorCode, LandFuseError

MODEL_CACHE_SIZE = 2     # models kept per worker process
SCENE_CACHE_SIZE = 4     # open scenes kept per worker thread


@dataclass(frozen=True)
class SceneJob:
    """Everything a task needs to know about its scene (plain values: it travels with every task)."""
    hsi: str
    aux: Tuple[str, ...]
    model_dir: str
    device: str
    window: int          # the network's window (classify's MAP_WINDOW unless --window)
    batch_size: int
    confidence: bool
    wavelengths: Optional[Tuple[float, ...]] = None
    min_confidence: float = 0.0   # classify --min-confidence: below it, "unclassified"


# ---- per-worker caches ------------------------------------------------------------------------------

_models: OrderedDict[tuple, tuple] = OrderedDict()
_models_lock = threading.Lock()
_thread = threading.local()


def cached_model(model_dir: str, device: str) -> Tuple[Dict[str, Any], Any]:
    """(manifest, network) of this worker process, loaded on first use and kept."""
    from backend.engine import device as devices
    from backend.engine.package import load_model
    from backend.manifest import read_manifest
    # Keyed by the whole manifest (it names the weights' sha256), not the weights alone: `calibrate`
    # rewrites model.json only, and a long-lived worker must not keep the old temperature.
    key = (os.path.realpath(model_dir), json.dumps(read_manifest(model_dir), sort_keys=True), device)
    with _models_lock:   # held while loading: two threads of a worker never load the same model twice
        if key not in _models:
            devices.tune_host_allocator()   # what `python -m backend` does at start
            _models[key] = load_model(model_dir, device)
            while len(_models) > MODEL_CACHE_SIZE:
                _models.popitem(last=False)
        _models.move_to_end(key)
        return _models[key]


def _stamp(path: str) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None    # a GDAL virtual path: keyed by its name alone
    return st.st_mtime_ns, st.st_size


def open_scene(job: SceneJob) -> Tuple[Any, list, List[Tuple[str, str]]]:
    """(HSI dataset, modality readers, the log lines of opening it) for this thread, opened once."""
    from backend.engine import modalities
    from backend.manifest import read_manifest
    cache = getattr(_thread, "scenes", None)
    if cache is None:
        cache = _thread.scenes = OrderedDict()
    key = (job.hsi, job.aux, os.path.realpath(job.model_dir), job.wavelengths, _stamp(job.hsi),
           tuple(map(_stamp, job.aux)))
    if key not in cache:
        logs: List[Tuple[str, str]] = []
        specs = read_manifest(job.model_dir)["modalities"]
        stack = contextlib.ExitStack()
        try:
            ref, readers = stack.enter_context(modalities.open_modalities(
                job.hsi, list(job.aux), specs, lambda message, level="info": logs.append((message, level)),
                list(job.wavelengths) if job.wavelengths else None))
        except BaseException:
            stack.close()
            raise
        cache[key] = (stack, ref, readers, logs)
        while len(cache) > SCENE_CACHE_SIZE:
            cache.popitem(last=False)[1][0].close()
    cache.move_to_end(key)
    _, ref, readers, logs = cache[key]
    return ref, readers, logs


# ---- the tasks -------------------------------------------------------------------------------------

def _guarded(body: Callable[[], dict]) -> dict:
    """Run a task body under the backend's GDAL settings; a failure becomes {"error": …}."""
    from backend.engine import device as devices
    from backend.io.rasters import gdal_env
    started = time.perf_counter()
    try:
        with gdal_env():
            result = body()
    except LandFuseError as exc:
        result = {"error": {"code": exc.code, "message": exc.message, "hint": exc.hint}}
    except Exception as exc:
        if devices.is_out_of_memory(exc):
            result = {"error": {"code": ErrorCode.OUT_OF_MEMORY, "message": f"Ran out of memory on a worker: {exc}",
                                "hint": "Use a smaller --tile-size or --batch-size, or fewer threads per worker."}}
        else:
            traceback.print_exc(file=sys.stderr)   # the worker's log
            result = {"error": {"code": ErrorCode.INTERNAL, "message": f"Unexpected error: {type(exc).__name__}: {exc}",
                                "hint": "This is a bug in LandFuse; the worker's log has the details."}}
    result["seconds"] = time.perf_counter() - started
    return result


def _plan(job: SceneJob, height: int, width: int, halo: int):
    from backend.engine.classify import window_batches
    return window_batches(height, width, job.window, halo, job.batch_size)


def inspect_scene(job: SceneJob, whole_up_to: int = 0, scratch: Optional[str] = None,
                  outputs: Optional[Dict[str, str]] = None, classes: Optional[List[dict]] = None) -> dict:
    """Open and check the scene as `classify` would; its size, log lines and the window count of
    each batch of its plan (the client cuts the plan into tasks).

    A scene of at most `whole_up_to` windows is done right here, in this one task (its part and
    its assembly, as separate tasks would do them): a small scene is then opened once, on one
    worker, with no round trip to the client; the result holds the assembly's under "whole"."""
    def body():
        from backend.manifest import read_manifest
        ref, _, logs = open_scene(job)
        halo = int(read_manifest(job.model_dir).get("halo", 0))
        sizes = [len(b) for b in _plan(job, ref.height, ref.width, halo)]
        return {"height": ref.height, "width": ref.width, "batches": sizes, "logs": logs}
    result = _guarded(body)
    if result.get("error") or scratch is None or sum(result["batches"]) > whole_up_to:
        return result
    try:
        os.mkdir(scratch)      # not makedirs: after the client removed the scratch root, nothing is recreated
    except FileExistsError:
        pass
    except OSError as exc:
        result["error"] = {"code": ErrorCode.OUTPUT_NOT_WRITABLE, "message": f"Scratch folder: {exc}", "hint": ""}
        return result
    part_file = os.path.join(scratch, "part-00000.npz")
    part = classify_part(job, 0, len(result["batches"]), part_file)
    whole = assemble_scene(job, outputs or {}, classes or [], scratch, [part_file], [part])
    result.update(part=part, whole=whole, seconds=result["seconds"] + part["seconds"] + whole["seconds"])
    return result


def classify_part(job: SceneJob, first: int, count: int, part_file: str) -> dict:
    """Batches `first` … `first + count - 1` of the scene's plan → `part_file` (an .npz of the class
    and confidence blocks and their windows); returns the pixels per class value."""
    def body():
        from backend.engine import device as devices
        from backend.engine.classify import class_values, classify_windows
        from backend.io.atomic import atomic_path
        dev = devices.resolve_device(job.device)
        manifest, net = cached_model(job.model_dir, dev)
        ref, readers, _ = open_scene(job)
        values = class_values(manifest, unclassified=job.min_confidence > 0)
        counts = np.zeros(len(values), np.int64)
        arrays = {}
        k = 0
        plan = _plan(job, ref.height, ref.width, int(manifest.get("halo", 0)))
        for tile_batch in itertools.islice(plan, first, first + count):
            for tile, classes, conf, tile_counts in classify_windows(net, readers, tile_batch, dev, values, job.window,
                                                                     job.min_confidence):
                w = tile.core
                arrays[f"w{k}"] = np.array([w.col_off, w.row_off, w.width, w.height], np.int64)
                arrays[f"c{k}"] = classes.astype(np.uint8)
                if job.confidence:
                    arrays[f"f{k}"] = conf.astype(np.float32)
                counts += tile_counts
                k += 1
            devices.release_free_host_memory()   # between windows, as classify does
        arrays["n"] = np.array(k, np.int64)
        with atomic_path(part_file) as part:
            with open(part, "wb") as f:
                np.savez(f, **arrays)
        return {"windows": k, "counts": counts.tolist()}
    return _guarded(body)


def scene_complete(outputs: Dict[str, str], classes: Sequence[dict]) -> bool:
    """True when every output of the scene is in place and the class map is one of this model's
    class table (outputs appear only complete: they are renamed into place last)."""
    import rasterio
    if not all(os.path.isfile(p) for p in outputs.values()):
        return False
    try:
        with rasterio.open(outputs["classes"]) as ds:
            return json.loads(ds.tags().get("LANDFUSE_CLASSES", "null")) == list(classes)
    except Exception:
        return False


def assemble_scene(job: SceneJob, outputs: Dict[str, str], classes: List[dict], scratch: str,
                   part_files: Sequence[str], part_results: Sequence[dict]) -> dict:
    """Once every part of the scene is done: write the class GeoTIFF (+ confidence, + .qml and the
    category names) from the part files and rename them into place; then remove the scene's
    scratch folder. A failed part fails the scene and nothing is written."""
    def body():
        from rasterio.windows import Window

        from backend.io import output, rasters
        failed = [r["error"] for r in part_results if r.get("error")]
        counts = np.sum([r["counts"] for r in part_results if not r.get("error")] or [[0]], axis=0)
        windows = sum(r.get("windows", 0) for r in part_results)
        if failed:
            shutil.rmtree(scratch, ignore_errors=True)
            return {"error": failed[0]}
        if not os.path.isdir(scratch) and scene_complete(outputs, classes):
            # an earlier try of this task renamed everything into place and died before returning
            return {"outputs": dict(outputs), "counts": counts.tolist(), "windows": windows}
        with rasters.open_raster(job.hsi, "hyperspectral") as ref:
            profile = ref.profile
        writer = output.ClassificationWriter(outputs["classes"], profile, classes, outputs.get("confidence"))
        try:
            for path in part_files:
                with np.load(path, allow_pickle=False) as part:
                    for k in range(int(part["n"])):
                        window = Window(*(int(v) for v in part[f"w{k}"]))
                        writer.write(window, part[f"c{k}"], part[f"f{k}"] if job.confidence else None)
            written = writer.commit()
        except BaseException:
            writer.abort()
            raise
        shutil.rmtree(scratch, ignore_errors=True)
        return {"outputs": written, "counts": counts.tolist(), "windows": windows}
    return _guarded(body)


def warm_up(model_dir: str, device: str, window: int) -> dict:
    """Run on every worker when the client connects: proves the backend runs there, loads the model
    into the worker's cache and runs it once on a blank window of the batch's size (imports, loading
    and torch's first-call set-up are a worker's start-up cost, paid once, not a cost of its first
    scene). A model that does not load comes back as {"error": …}."""
    import backend

    def body():
        import torch

        from backend.engine import device as devices
        dev = devices.resolve_device(device)
        manifest, net = cached_model(model_dir, dev)
        side = window + 2 * int(manifest.get("halo", 0))
        blank = [torch.zeros((1, m["bands"] + int(bool(m.get("optional"))), side, side), device=dev)
                 for m in manifest["modalities"]]
        with torch.inference_mode():
            net(blank)
        return {"python": sys.version.split()[0], "backend": getattr(backend, "__version__", "?"), "pid": os.getpid()}
    return _guarded(body)
