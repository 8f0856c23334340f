"""The client side of `classify-batch`: connect to a cluster (a LocalCluster by default, or a
scheduler address), turn the scenes into Dask tasks, report progress, write the summary.

Per scene, three kinds of task (backend.batch.worker):

    inspect ──► part 0 ─┐
            ├─► part 1 ─┼──► assemble  (the outputs renamed into place)
            └─► part k ─┘

`inspect` opens the scene on a worker and returns its window plan; the client then cuts the plan
into parts of about `windows_per_task` windows (whole batches, in `classify`'s order) and submits
the parts and the assembly, which depends on them. A large mosaic thus spreads over every worker
just as many scenes do. Every task of scene i has priority n - i: Dask finishes scenes roughly in
input order, so scenes come out one after another, and scratch space stays small. A rerun skips a
scene whose outputs are all in place (they only ever appear complete) unless the last summary says
they were made by another model or from an input that has changed since.

Placement, retries after a lost worker (`distributed.scheduler.allowed-failures`), work stealing
and the dashboard are Dask's.

Parts and assemblies exchange data through files in a hidden scratch folder inside the output
folder (`.classify-batch.part-PID/`, removed at the end, or by the next run if this one was
killed): with `--scheduler`, the output folder, the model and the inputs must be paths the workers
see too (a shared file system; inputs may also be anything GDAL opens, /vsis3/…, https://…).
Start such workers with MALLOC_ARENA_MAX=1 in their environment, as the LocalCluster's are
(`_one_malloc_arena`: ~20 % less time per scene on CPU).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from backend.batch import inputs as batch_inputs
from backend.batch import worker
from backend.protocol import DEFAULT_TILE_SIZE, MAP_WINDOW, ErrorCode, LandFuseError

# About this many core pixels per part task (4 windows of 512 px): seconds of work on a CPU, so
# Dask's per-task cost (~1 ms) is noise, while a 20,000 px mosaic still makes ~400 tasks to spread.
TASK_PIXELS = 4 * 512 * 512
SCRATCH = "classify-batch"           # scratch folder: atomic.part_path(out_dir/SCRATCH)
WORKER_WAIT_S = 120


@dataclass
class BatchConfig:
    inputs: Sequence[str]
    model: str
    out_dir: str
    aux: Sequence[Sequence[str]] = ()          # one list per auxiliary modality (see inputs.resolve_scenes)
    aux_patterns: Sequence[str] = ()
    scheduler: Optional[str] = None            # tcp://host:port; None: a LocalCluster on this machine
    workers: Optional[int] = None              # LocalCluster workers (default: one per core)
    worker_threads: Optional[int] = None       # torch/GDAL threads of each LocalCluster worker (default: cores ÷ workers)
    confidence: bool = False
    device: str = "auto"
    tile_size: int = DEFAULT_TILE_SIZE   # windows per forward pass, as for classify
    window: int = MAP_WINDOW
    min_confidence: float = 0.0   # as classify --min-confidence (0: off)
    batch_size: Optional[int] = None
    windows_per_task: Optional[int] = None
    wavelengths: Optional[Sequence[float]] = None
    command: Sequence[str] = field(default_factory=tuple)


def parts_of(batch_sizes: Sequence[int], windows_per_task: int) -> List[Tuple[int, int]]:
    """Cut a plan (windows per batch) into (first batch, batch count) runs of ≤ windows_per_task
    windows (a single larger batch stays whole)."""
    out, first, windows = [], 0, 0
    for i, size in enumerate(batch_sizes):
        if i > first and windows + size > windows_per_task:
            out.append((first, i - first))
            first, windows = i, 0
        windows += size
    if batch_sizes:
        out.append((first, len(batch_sizes) - first))
    return out


@contextlib.contextmanager
def _one_malloc_arena() -> Iterator[None]:
    """LocalCluster workers started in here get MALLOC_ARENA_MAX=1 (unless set already, in the
    environment or in the Dask config): glibc then serves the task thread from the main heap, as it
    does `classify`'s main thread. A worker runs tasks in a thread of its own, and a thread's own
    arena holds at most 64 MiB per heap: the network's 30-240 MB buffers were then mmap'ed afresh
    and unmapped on free (device.tune_host_allocator has no hold on that), ~2x `classify`'s page
    faults per scene (230k against 120k for the bench's 512 px scene), the bulk of a 28 % overhead.
    It must be in the environment before the worker process starts (Dask's pre-spawn-environ);
    the Nanny also writes it into this process's environment, restored here once the workers are up."""
    import dask
    key = "distributed.nanny.pre-spawn-environ.MALLOC_ARENA_MAX"
    if "MALLOC_ARENA_MAX" in os.environ or dask.config.get(key, None) is not None:
        yield
        return
    try:
        with dask.config.set({key: "1"}):
            yield
    finally:
        os.environ.pop("MALLOC_ARENA_MAX", None)


@contextlib.contextmanager
def connect(config: BatchConfig, log) -> Iterator[Tuple[Any, dict]]:
    """A distributed Client on the scheduler given, or on a LocalCluster started here (and closed
    at the end); yields (client, a description for the summary)."""
    from distributed import Client, LocalCluster
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if config.scheduler:
            try:
                # how long to try: Dask's own setting, distributed.comm.timeouts.connect (30 s)
                client = stack.enter_context(Client(config.scheduler))
            except (OSError, TimeoutError, ValueError) as exc:
                raise LandFuseError(ErrorCode.CLUSTER_UNAVAILABLE,
                                    f"The Dask scheduler at {config.scheduler} could not be reached: {exc}",
                                    "Check the address (tcp://host:8786) and that `dask scheduler` runs there.") from exc
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError as exc:
                raise LandFuseError(ErrorCode.CLUSTER_UNAVAILABLE,
                                    f"No worker joined the scheduler at {config.scheduler} within {WORKER_WAIT_S} s.",
                                    "Start workers with `dask worker tcp://host:8786` in the backend's environment.") from exc
        else:
            cores = os.cpu_count() or 1
            n = config.workers or cores
            threads = config.worker_threads or max(1, cores // n)
            env = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                             "LANDFUSE_GDAL_THREADS")}
            with _one_malloc_arena():
                cluster = stack.enter_context(LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=":0", silence_logs=logging.WARNING, env=env))
            client = stack.enter_context(Client(cluster))
            log(f"Started a local Dask cluster: {n} worker(s) × {threads} thread(s) for torch and GDAL")
        try:
            checks = client.run(worker.warm_up, os.path.abspath(config.model), config.device, config.window)
        except Exception as exc:
            raise LandFuseError(ErrorCode.CLUSTER_UNAVAILABLE,
                                f"The Dask workers cannot run the LandFuse backend: {type(exc).__name__}: {exc}",
                                "Start the workers in the backend's environment (its venv, with this checkout "
                                "on PYTHONPATH or the backend installed).") from exc
        for address, check in checks.items():
            if check.get("error"):
                error = check["error"]
                raise LandFuseError(error["code"], f"On the worker {address}: {error['message']}", error["hint"])
        # The scheduler's HTTP server runs without bokeh too (health, metrics): the dashboard pages need it.
        serves_http = "dashboard" in (client.scheduler_info().get("services") or {})
        try:
            bokeh_there = client.run_on_scheduler(importlib.util.find_spec, "bokeh") is not None
        except Exception:
            bokeh_there = False
        dashboard = client.dashboard_link if serves_http and bokeh_there else None
        if dashboard:
            log(f"Dask dashboard: {dashboard}")
        else:
            where = "in the backend environment" if not config.scheduler else f"where the scheduler {config.scheduler} runs"
            log(f"No Dask dashboard: bokeh is not installed {where} (pip install 'bokeh>=3.1' shows the cluster "
                "live in a browser).")
        described = {"scheduler": client.scheduler.address, "dashboard": dashboard, "workers": len(checks),
                     "local": not config.scheduler, "start_s": round(time.perf_counter() - started, 3)}
        yield client, described


class _Scene:
    """The client's book-keeping of one scene in flight."""

    def __init__(self, scene: batch_inputs.Scene, job: worker.SceneJob):
        self.scene, self.job = scene, job
        self.submitted = time.perf_counter()
        self.compute_s = 0.0
        self.task_s = {"inspect": 0.0, "part": 0.0, "assemble": 0.0}   # worker seconds by kind of task
        self.windows = 0
        self.logs: List[Tuple[str, str]] = []


def _error_of_future(future) -> dict:
    exc = future.exception()
    name = type(exc).__name__
    if name == "KilledWorker":
        return {"code": ErrorCode.INTERNAL, "message": f"Workers died while running this scene's tasks: {exc}",
                "hint": "A worker out of memory is the usual cause: use --batch-size 1, fewer --worker-threads or more "
                        "memory per worker."}
    return {"code": ErrorCode.INTERNAL, "message": f"{name}: {exc}", "hint": "The workers' logs have the details."}


def run_batch(config: BatchConfig, events) -> Dict[str, Any]:
    from backend.engine.classify import check_min_confidence, default_batch_size
    from backend.io import output
    from backend.io.atomic import part_path, remove_stale_parts, write_json_atomic
    from backend.io.paths import check_outputs
    from backend.manifest import read_manifest

    started = time.perf_counter()
    check_min_confidence(config.min_confidence)
    manifest = read_manifest(config.model)
    # With a confidence threshold every map (and its legend) has one more class: "unclassified".
    classes = output.with_unclassified(manifest["classes"]) if config.min_confidence > 0 else manifest["classes"]
    out_dir = os.path.abspath(config.out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise LandFuseError(ErrorCode.OUTPUT_NOT_WRITABLE, f"The output folder cannot be created: {out_dir} ({exc})") from exc
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise LandFuseError(ErrorCode.OUTPUT_NOT_WRITABLE, f"The output folder cannot be written: {out_dir}")
    scenes = batch_inputs.resolve_scenes(config.inputs, config.aux, config.aux_patterns, out_dir, config.confidence,
                                         warn=lambda m: events.log(m, "warning"))
    batch_size = config.batch_size or default_batch_size(config.tile_size, config.window)
    per_task = config.windows_per_task or max(1, round(TASK_PIXELS / config.window ** 2))
    wavelengths = tuple(float(w) for w in config.wavelengths) if config.wavelengths else None
    records: Dict[int, dict] = {}
    todo = []
    previous = _previous_records(batch_inputs.summary_path(out_dir))
    # What made a map: a changed model, input, window or confidence threshold (the tile size never changes
    # a map) makes it again. Defaults are left out, so that maps made before those options still count as done.
    made_by = {s.index: {"model_sha256": manifest["weights"]["sha256"],
                         "inputs": [list(_stamp(p) or ()) for p in [s.hsi, *s.aux]],
                         **({"window": config.window} if config.window != MAP_WINDOW else {}),
                         **({"min_confidence": config.min_confidence} if config.min_confidence > 0 else {})}
               for s in scenes}
    for s in scenes:
        try:
            check_outputs([s.hsi, *s.aux, config.model],
                          {"class map": s.outputs["classes"], "legend": s.outputs["qml"],
                           "confidence raster": s.outputs.get("confidence"),
                           "category names": s.outputs["classes"] + ".aux.xml"})
        except LandFuseError as exc:
            records[s.index] = batch_inputs.scene_record(s, "failed", 0.0, _error(exc))
            continue
        before = previous.get(s.outputs["classes"], {}).get("made_by")
        if before not in (None, made_by[s.index]):
            events.log(f"[{s.name}] the model or an input changed since its map was made: classifying it again")
        elif worker.scene_complete(s.outputs, classes):
            records[s.index] = batch_inputs.scene_record(s, "skipped", 0.0, made_by=made_by[s.index])
            continue
        todo.append(s)
    n = len(scenes)
    events.log(f"{n} scene(s): {len(todo)} to classify, {sum(r['status'] == 'skipped' for r in records.values())} "
               f"already complete (skipped), {sum(r['status'] == 'failed' for r in records.values())} refused")
    scratch_root = part_path(os.path.join(out_dir, SCRATCH))
    remove_stale_parts(os.path.join(out_dir, SCRATCH))   # what a killed earlier run left
    cluster: Dict[str, Any] = {}
    windows_done = windows_total = 0
    summary_file = batch_inputs.summary_path(out_dir)
    try:
        events.progress("scenes", len(records), n)
        if todo:
            os.makedirs(scratch_root, exist_ok=True)
            with connect(config, events.log) as (client, cluster):
                on_cluster = time.perf_counter()
                windows_done, windows_total = _run_on_cluster(client, todo, n, config, classes, batch_size, per_task,
                                                              wavelengths, scratch_root, records, made_by, events)
                cluster["run_s"] = round(time.perf_counter() - on_cluster, 3)   # without the start and the shutdown
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)
        for s in scenes:
            for path in s.outputs.values():
                remove_stale_parts(path)
            remove_stale_parts(s.outputs["classes"] + ".aux.xml")
            if s.index not in records:
                records[s.index] = batch_inputs.scene_record(
                    s, "failed", None, {"code": ErrorCode.CANCELLED, "message": "The batch stopped before this scene was done.",
                                        "hint": "Run the same command again: finished scenes are skipped."})
        ordered = [records[s.index] for s in scenes]
        ok, failed, skipped = batch_inputs.counts(ordered)
        summary = {"command": list(config.command), "model": os.path.abspath(config.model), "out_dir": out_dir,
                   "cluster": cluster, "tile_size": config.tile_size, "window": config.window, "batch_size": batch_size,
                   "windows_per_task": per_task, "totals": {"scenes": n, "ok": ok, "failed": failed, "skipped": skipped,
                                                           "windows": windows_done},
                   "seconds": round(time.perf_counter() - started, 3), "scenes": ordered}
        write_json_atomic(summary_file, summary, end="\n")
    events.log(f"Done: {ok} ok, {failed} failed, {skipped} skipped; summary in {summary_file}",
               "warning" if failed else "info")
    return {"outputs": {"summary": summary_file, "out_dir": out_dir}, "class_table": classes,
            "metrics": {"scenes": n, "ok": ok, "failed": failed, "skipped": skipped, "windows": windows_done,
                        "windows_planned": windows_total},
            "timings": {"total_s": round(time.perf_counter() - started, 3), "cluster_start_s": cluster.get("start_s"),
                        "cluster_run_s": cluster.get("run_s")},
            "cluster": cluster, "exit_status": 0 if not failed else 3}


def _error(exc: LandFuseError) -> dict:
    return {"code": exc.code, "message": exc.message, "hint": exc.hint}


def _stamp(path: str) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _previous_records(summary_file: str) -> Dict[str, dict]:
    """The last run's scene records by class-map path (none when there is no readable summary)."""
    try:
        with open(summary_file, encoding="utf-8") as f:
            return {r["outputs"]["classes"]: r for r in json.load(f)["scenes"] if r.get("outputs", {}).get("classes")}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _run_on_cluster(client, todo, n, config, classes, batch_size, per_task, wavelengths, scratch_root, records,
                    made_by, events) -> Tuple[int, int]:
    from distributed import as_completed
    run = uuid.uuid4().hex[:8]
    meta: Dict[Any, Tuple[str, _Scene, Any]] = {}
    futures = []
    for s in todo:
        job = worker.SceneJob(s.hsi, tuple(s.aux), os.path.abspath(config.model), config.device, config.window,
                              batch_size, config.confidence, wavelengths, config.min_confidence)
        state = _Scene(s, job)
        f = client.submit(worker.inspect_scene, job, per_task, os.path.join(scratch_root, f"{s.index:06d}"), s.outputs,
                          classes, key=f"landfuse-scene-{run}-{s.index}", priority=n - s.index)
        meta[f] = ("inspect", state, None)
        futures.append(f)
    windows_done = windows_total = 0
    scenes_done = len(records)
    pending = as_completed(futures)
    del futures
    for future in pending:
        kind, state, extra = meta.pop(future)
        s = state.scene
        if future.status != "finished":
            result = {"error": _error_of_future(future) if future.status == "error" else
                      {"code": ErrorCode.CANCELLED, "message": "The task was cancelled.", "hint": ""}}
        else:
            result = future.result()
        state.compute_s += result.get("seconds", 0.0)
        state.task_s[kind] += result.get("seconds", 0.0)
        if kind == "inspect" and "whole" in result:
            # a small scene done whole in its inspect task (worker.inspect_scene): only the outcome remains
            for message, level in result["logs"]:
                events.log(f"[{s.name}] {message}", level)
            state.task_s.update(part=result["part"]["seconds"], assemble=result["whole"]["seconds"])
            state.task_s["inspect"] -= result["part"]["seconds"] + result["whole"]["seconds"]
            windows_total += sum(result["batches"])
            windows_done += sum(result["batches"])
            events.progress("windows", windows_done, windows_total)
            result = result["whole"]
            kind = "assemble"
        if kind == "part":
            windows_done += result.get("windows", 0) if not result.get("error") else extra
            events.progress("windows", windows_done, windows_total)
            continue
        if kind == "inspect" and not result.get("error"):
            for message, level in result["logs"]:
                events.log(f"[{s.name}] {message}", level)
            scratch = os.path.join(scratch_root, f"{s.index:06d}")
            os.makedirs(scratch, exist_ok=True)
            plan = parts_of(result["batches"], per_task)
            windows_total += sum(result["batches"])
            state.windows = sum(result["batches"])
            files, part_futures = [], []
            for j, (first, count) in enumerate(plan):
                files.append(os.path.join(scratch, f"part-{j:05d}.npz"))
                pf = client.submit(worker.classify_part, state.job, first, count, files[-1],
                                   key=f"landfuse-part-{run}-{s.index}-{j}", priority=n - s.index)
                meta[pf] = ("part", state, sum(result["batches"][first:first + count]))
                part_futures.append(pf)
            af = client.submit(worker.assemble_scene, state.job, s.outputs, classes, scratch, files, part_futures,
                               key=f"landfuse-assemble-{run}-{s.index}", priority=n - s.index)
            meta[af] = ("assemble", state, None)
            pending.update(part_futures + [af])
            events.log(f"[{s.name}] {result['width']}×{result['height']} px: {state.windows} window(s) in "
                       f"{len(plan)} task(s)")
            events.progress("windows", windows_done, windows_total)
            continue
        # an assembly finished, or the scene failed at its inspection
        elapsed = time.perf_counter() - state.submitted
        if result.get("error"):
            records[s.index] = batch_inputs.scene_record(s, "failed", state.compute_s, result["error"],
                                                         elapsed_s=round(elapsed, 3))
            events.log(f"[{s.name}] failed: {result['error']['code']}: {result['error']['message']}", "warning")
        else:
            pixels = {c["name"]: int(v) for c, v in zip(classes, result["counts"][1:])}
            records[s.index] = batch_inputs.scene_record(s, "ok", state.compute_s, None, made_by=made_by[s.index],
                                                         elapsed_s=round(elapsed, 3),
                                                         task_s={k: round(v, 3) for k, v in state.task_s.items()},
                                                         windows=result["windows"], pixels_per_class=pixels,
                                                         nodata_pixels=int(result["counts"][0]))
        scenes_done += 1
        events.progress("scenes", scenes_done, n)
    return windows_done, windows_total
