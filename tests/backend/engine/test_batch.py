"""classify-batch on real Dask clusters: a LocalCluster of 2 workers (through the CLI), and a real
`dask scheduler` with two `dask worker` processes on localhost, one of them SIGKILLed mid-run.

Every map must equal what single-process `classify` writes for its scene: the same class pixels,
byte for byte, the same profile and tags, and the same confidence raster. (Torch's CPU reductions
can differ in the last bit of a float between thread counts, so the reference runs with one torch
thread, as each worker here does; the class map is the same either way.)"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rasterio

from backend.batch.inputs import resolve_scenes
from backend.batch.run import parts_of
from backend.protocol import LandFuseError, parse_event
from tests.backend.conftest import REPO, make_package, run_cli, write_raster

CLUSTER_TIMEOUT_S = 240


def _scene(folder, name, seed, size=(96, 80), bands=10):
    rng = np.random.default_rng(seed)
    hsi = rng.normal(0.2, 0.05, (bands,) + size).astype(np.float32)
    dsm = rng.normal(30, 3, size).astype(np.float32)
    return (write_raster(folder / f"{name}.tif", hsi, nodata=-9999.0),
            write_raster(folder / f"{name}_dsm.tif", dsm, nodata=-9999.0))


def _reference(hsi, dsm, model, out, **kw):
    """Single-process classify with one torch thread (what each worker runs with)."""
    import torch

    from backend.engine.classify import classify
    from backend.io.rasters import gdal_env
    from tests.backend.engine.test_classify import Recorder
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with gdal_env():
            classify(hsi, [dsm], model, str(out), Recorder(), **kw)
    finally:
        torch.set_num_threads(threads)
    return str(out)


def _assert_same_raster(a, b):
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert x.profile == y.profile and x.tags() == y.tags()
        if x.dtypes[0] == "uint8":
            assert x.colormap(1) == y.colormap(1)
        assert x.read().tobytes() == y.read().tobytes()


def _no_parts(folder):
    return [f for f in os.listdir(folder) if ".part-" in f]


# ---- pure parts -------------------------------------------------------------------------------------

def test_inputs_globs_lists_folders_patterns_and_unique_names(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        for stem in ("scene", "scene_dsm", "other"):
            (tmp_path / folder / f"{stem}.tif").write_bytes(b"")
    (tmp_path / "list.txt").write_text("# scenes\na/scene.tif\n\nb/scene.tif\n")
    out = tmp_path / "out"
    scenes = resolve_scenes([f"@{tmp_path / 'list.txt'}"], [], ["{stem}_dsm.tif"], str(out), confidence=True)
    assert [s.name for s in scenes] == ["a_scene", "b_scene"]          # same stem: the folder disambiguates
    assert scenes[1].aux == [str(tmp_path / "b" / "scene_dsm.tif")]
    assert scenes[0].outputs == {"classes": str(out / "a_scene_classes.tif"), "qml": str(out / "a_scene_classes.qml"),
                                 "confidence": str(out / "a_scene_confidence.tif")}
    warnings = []
    scenes = resolve_scenes([str(tmp_path / "a")], [], ["{stem}_dsm.tif"], str(out), False, warnings.append)
    assert [os.path.basename(s.hsi) for s in scenes] == ["other.tif", "scene.tif"]   # the DSMs are not scenes
    assert "auxiliary" in warnings[0]
    scenes = resolve_scenes([str(tmp_path / "*" / "other.tif")], [[str(tmp_path / "a" / "scene_dsm.tif")]], [],
                            str(out), False)
    assert len(scenes) == 2 and all(s.aux == [str(tmp_path / "a" / "scene_dsm.tif")] for s in scenes)  # one for all
    with pytest.raises(LandFuseError) as err:
        resolve_scenes([str(tmp_path / "a" / "*.tif")], [["x.tif", "y.tif"]], [], str(out), False)
    assert err.value.code == "bad_arguments" and "2 files for 3 scenes" in err.value.message
    with pytest.raises(LandFuseError):
        resolve_scenes([str(tmp_path / "nothing*.tif")], [], [], str(out), False, warnings.append)
    with pytest.raises(LandFuseError):
        resolve_scenes([str(tmp_path / "a")], [], [], str(tmp_path / "a"), False)   # out dir = input folder


def test_a_worker_reloads_a_model_whose_manifest_changed(tmp_path):
    """`calibrate` rewrites model.json only: a long-lived worker must pick up the new temperature."""
    from backend.batch import worker
    from backend.engine import package
    model = make_package(tmp_path / "m", [10, 1])
    first = worker.cached_model(model, "cpu")
    assert worker.cached_model(model, "cpu") is first                      # cached while nothing changed
    package.update_manifest(model, {"calibration": {"temperature": 2.5}})
    manifest, net = worker.cached_model(model, "cpu")
    assert package.model_temperature(net) == 2.5 and manifest["calibration"] == {"temperature": 2.5}


def test_parts_keep_whole_batches_in_order():
    assert parts_of([4, 4, 4, 2], 8) == [(0, 2), (2, 2)]
    assert parts_of([1] * 5, 2) == [(0, 2), (2, 2), (4, 1)]
    assert parts_of([16], 4) == [(0, 1)]
    assert parts_of([], 4) == []


# ---- a LocalCluster of 2 workers, through the CLI ------------------------------------------------

def test_local_cluster_matches_classify_reports_bad_scenes_and_resumes(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    good = [_scene(data, f"tile{i}", seed=i) for i in range(3)]
    (data / "corrupt.tif").write_bytes(b"II*\x00" + b"\x00garbage" * 64)
    (data / "corrupt_dsm.tif").write_bytes(b"")
    _scene(data, "wrongbands", seed=9, bands=7)                     # band mismatch: 7 bands, the model wants 10
    model = make_package(tmp_path / "model", [10, 1])
    out = tmp_path / "out"
    args = ["classify-batch", "--inputs", str(data / "*.tif"), "--aux-pattern", "{stem}_dsm.tif", "--model", model,
            "--out-dir", out, "--workers", 2, "--confidence", "--window", 32, "--windows-per-task", 2]
    code, events, stderr = run_cli(*args, timeout=CLUSTER_TIMEOUT_S)
    assert code == 3, stderr                                         # a result, but not everything succeeded
    result = events[-1]
    assert result["type"] == "result" and result["metrics"]["ok"] == 3 and result["metrics"]["failed"] == 2
    logs = " ".join(e["message"] for e in events if e["type"] == "log")
    assert "No Dask dashboard: bokeh is not installed" in logs or "Dask dashboard: http" in logs
    progress = [e for e in events if e["type"] == "progress"]
    assert progress[-1]["stage"] == "scenes" and progress[-1]["done"] == progress[-1]["total"] == 5
    windows = [e for e in progress if e["stage"] == "windows"]
    assert windows[-1]["done"] == windows[-1]["total"] == 27 and len(windows) > 3

    summary = json.load(open(result["outputs"]["summary"]))
    by_name = {s["name"]: s for s in summary["scenes"]}
    assert by_name["corrupt"]["status"] == "failed" and by_name["corrupt"]["error"]["code"] == "input_unreadable"
    assert by_name["wrongbands"]["status"] == "failed" and by_name["wrongbands"]["error"]["code"] == "band_mismatch"
    assert by_name["wrongbands"]["outputs"] == {}
    for i, (hsi, dsm) in enumerate(good):
        record = by_name[f"tile{i}"]
        assert record["status"] == "ok" and record["seconds"] > 0 and record["error"] is None
        ref = _reference(hsi, dsm, model, tmp_path / f"ref{i}.tif", confidence=str(tmp_path / f"ref{i}_conf.tif"),
                         window=32)
        _assert_same_raster(ref, record["outputs"]["classes"])
        _assert_same_raster(str(tmp_path / f"ref{i}_conf.tif"), record["outputs"]["confidence"])
        assert open(record["outputs"]["qml"]).read() == open(tmp_path / f"ref{i}.qml").read()
        assert open(ref + ".aux.xml").read() == open(record["outputs"]["classes"] + ".aux.xml").read()
    assert not os.path.exists(out / "wrongbands_classes.tif") and not os.path.exists(out / "corrupt_classes.tif")
    assert _no_parts(out) == [] and not [f for f in os.listdir(out) if f.startswith(".")]

    # Rerun after one map was lost: only that scene is classified again; the others are skipped.
    first = {i: os.stat(out / f"tile{i}_classes.tif").st_mtime_ns for i in range(3)}
    os.remove(out / "tile1_confidence.tif")
    # (default task size this time: each small scene is one task, inspected, classified and assembled at once)
    args = args[:args.index("--windows-per-task")]
    code, events, stderr = run_cli(*args, "--allow-failures", timeout=CLUSTER_TIMEOUT_S)
    assert code == 0, stderr
    summary = json.load(open(events[-1]["outputs"]["summary"]))
    assert {s["name"]: s["status"] for s in summary["scenes"]} == {
            "corrupt": "failed", "tile0": "skipped", "tile1": "ok", "tile2": "skipped", "wrongbands": "failed"}
    assert os.stat(out / "tile0_classes.tif").st_mtime_ns == first[0]
    assert os.stat(out / "tile1_classes.tif").st_mtime_ns != first[1]
    _assert_same_raster(str(tmp_path / "ref1_conf.tif"), str(out / "tile1_confidence.tif"))
    assert summary["totals"] == {"scenes": 5, "ok": 1, "failed": 2, "skipped": 2, "windows": 9}

    # An input changed since its map was made: that scene is classified again, the others skipped.
    os.utime(good[2][1], ns=(time.time_ns(), time.time_ns()))
    code, events, stderr = run_cli(*args, "--allow-failures", timeout=CLUSTER_TIMEOUT_S)
    assert code == 0, stderr
    summary = json.load(open(events[-1]["outputs"]["summary"]))
    assert [s["status"] for s in summary["scenes"] if s["name"].startswith("tile")] == ["skipped", "skipped", "ok"]


# ---- a real `dask scheduler` and `dask worker` processes ---------------------------------------

@contextlib.contextmanager
def dask_cluster(tmp_path, n_workers=2):
    """`dask scheduler` + `dask worker` processes on 127.0.0.1 (no nanny: the pid is the worker), all
    stopped at the end; yields (address, [worker processes])."""
    dask = os.path.join(os.path.dirname(sys.executable), "dask")
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", LANDFUSE_GDAL_THREADS="1")
    sched_file = tmp_path / "scheduler.json"
    procs = []
    try:
        procs.append(subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                       "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(sched_file)],
                                      cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 60
        while not (sched_file.exists() and sched_file.stat().st_size):
            assert time.monotonic() < deadline and procs[0].poll() is None, "the dask scheduler did not start"
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        workers = [subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                                     "--no-dashboard", "--death-timeout", "60"], cwd=REPO, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n_workers)]
        procs += workers
        from distributed import Client
        with Client(address, timeout=30) as client:
            client.wait_for_workers(n_workers, timeout=90)
        yield address, workers
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def _long_run(tmp_path, name, seed):
    """Three 192×160 px scenes, a model, an output folder, and the classify-batch argv (16 px windows,
    2 per task: 120 windows, long enough to act on mid-run); append the cluster option."""
    data = tmp_path / "data"
    data.mkdir()
    scenes = [_scene(data, f"{name}{i}", seed=seed + i, size=(192, 160)) for i in range(3)]
    model = make_package(tmp_path / "model", [10, 1])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "backend", "classify-batch", "--inputs", *[h for h, _ in scenes],
           "--aux", *[d for _, d in scenes], "--model", model, "--out-dir", str(out),
           "--window", "16", "--windows-per-task", "2"]
    return scenes, model, out, cmd


def test_scheduler_and_workers_survive_a_worker_killed_mid_run(tmp_path):
    scenes, model, out, cmd = _long_run(tmp_path, "big", 20)
    with dask_cluster(tmp_path) as (address, workers):
        cmd += ["--scheduler", address]
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        events, killed_at = [], None
        try:
            for line in proc.stdout:
                event = parse_event(line)
                if not event:
                    continue
                events.append(event)
                if killed_at is None and event["type"] == "progress" and event["stage"] == "windows" \
                        and 0 < event["done"] < event["total"]:
                    assert workers[1].poll() is None
                    os.kill(workers[1].pid, signal.SIGKILL)
                    killed_at = event["done"]
            code = proc.wait(timeout=CLUSTER_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert workers[1].wait(timeout=10) == -signal.SIGKILL
    stderr = proc.stderr.read()
    assert killed_at is not None, "the run finished before a worker could be killed"
    assert code == 0, stderr
    result = events[-1]
    assert result["type"] == "result" and result["metrics"]["ok"] == 3 and result["cluster"]["workers"] == 2
    total = 3 * 12 * 10
    windows = [e for e in events if e["type"] == "progress" and e["stage"] == "windows"]
    assert windows[-1]["done"] >= total and killed_at < total   # retried parts may count twice
    for i, (hsi, dsm) in enumerate(scenes):
        ref = _reference(hsi, dsm, model, tmp_path / f"ref{i}.tif", window=16)
        _assert_same_raster(ref, str(out / f"big{i}_classes.tif"))
    assert _no_parts(out) == [] and sorted(os.listdir(out)) == sorted(
        ["classify_batch.json"] + [f"big{i}_classes{s}" for i in range(3) for s in (".tif", ".qml", ".tif.aux.xml")])


def test_unreachable_scheduler_is_a_typed_error(tmp_path):
    hsi, dsm = _scene(tmp_path, "s", 0)
    model = make_package(tmp_path / "model", [10, 1])
    code, events, _ = run_cli("classify-batch", "--inputs", hsi, "--aux", dsm, "--model", model, "--out-dir",
                              tmp_path / "out", "--scheduler", "tcp://127.0.0.1:9", timeout=120,
                              env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert code == 1 and events[-1]["type"] == "error" and events[-1]["code"] == "cluster_unavailable"
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


def test_cancel_stops_the_local_cluster_and_leaves_no_partial_output(tmp_path):
    import psutil
    scenes, model, out, cmd = _long_run(tmp_path, "c", 40)
    cmd += ["--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    events, children = [], []
    try:
        for line in proc.stdout:
            event = parse_event(line)
            if event:
                events.append(event)
            if event and event["type"] == "progress" and event["stage"] == "windows" and event["done"] > 0:
                children = psutil.Process(proc.pid).children(recursive=True)
                proc.send_signal(signal.SIGTERM)
                break
        events += [e for e in map(parse_event, proc.stdout) if e]
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert children, "the local cluster's worker processes were not found"
    assert code == 130 and events[-1]["type"] == "error" and events[-1]["code"] == "cancelled"
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"worker processes left running: {alive}"
    summary = json.load(open(out / "classify_batch.json"))
    assert "cancelled" in {s["error"]["code"] for s in summary["scenes"] if s["status"] == "failed"}
    for s in summary["scenes"]:      # whatever is there is complete; nothing half-written, no scratch
        assert (s["status"] == "ok") == os.path.exists(out / f"{s['name']}_classes.tif")
    assert not [f for f in os.listdir(out) if f.startswith(".")]
