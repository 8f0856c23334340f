"""`make bench`: LandFuse's speed and memory claims, each a ratio against a baseline measured in the
same run on the same machine (medians of several repeats). Writes benchmarks/results.json and
prints a table. Not part of `make test`.

    python benchmarks/run.py [--quick] [--only NAME ...] [--device cpu|cuda]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from backend import nets  # noqa: E402
from backend.protocol import EventWriter  # noqa: E402

TARGETS = {"dense_vs_patch_speedup": (">=", 50), "vs_random_forest_speed": (">=", 1),
           "scan_cpu_speedup": (">=", 2), "scan_max_abs_err": ("<=", 1e-4), "memory_ratio_16x": ("<=", 1.3),
           "batch_scaling_efficiency": (">=", 0.85), "batch_overhead_per_scene": ("<=", 0.10),
           "train_default_seconds": ("<=", 180), "train_bdgf_vs_m3amba_time": ("<=", 3)}


class Quiet(EventWriter):
    def emit(self, event_type, **fields):
        pass


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def scene_with_model(work, size, bands, arch, seed=3):
    """A synthetic HSI (`bands`) + DSM scene and an untrained package of `arch` for it: speed does not
    depend on what the weights learned."""
    from backend.engine import modalities, package
    from backend.synth.labels import sample_labels
    from backend.synth.scene import generate_scene
    from backend.training.train import set_normalisation
    scene = generate_scene(os.path.join(work, f"scene_{size}_{bands}"), seed=seed, height=size, width=size,
                           n_bands=bands)
    sample_labels(scene["labels"], os.path.join(work, "sparse.tif"), per_class=100, seed=seed)
    with modalities.open_modalities(scene["hsi"], [scene["dsm"]]) as (_, readers):
        mags = [set_normalisation(r) for r in readers]
        mods = [{"name": "hsi" if i == 0 else "dsm", "kind": r.kind, "bands": r.n_inputs,
                 "source_bands": r.source_count, "used_bands": r.used_bands, "mean": r.mean.tolist(),
                 "std": r.std.tolist(), "typical_magnitude": mags[i]} for i, r in enumerate(readers)]
    mods[1]["scene_offset"] = modalities.SCENE_OFFSET
    torch.manual_seed(0)
    net = nets.build(arch, {}, [m["bands"] for m in mods], 6)
    manifest = {"format": "landfuse-model", "format_version": 1, "id": f"bench-{arch}", "name": f"bench-{arch}",
                "architecture": {"name": arch, "params": nets.default_params(arch)}, "modalities": mods,
                "classes": scene["classes"], "halo": nets.halo(arch),
                "weights": {"file": "weights.safetensors", "sha256": "0" * 64}}
    model = os.path.join(work, f"model_{arch}_{bands}")
    package.save_package(model, manifest, net.state_dict(), "benchmark model (untrained)\n")
    return scene, model, os.path.join(work, "sparse.tif")


def dense_pixels_per_second(scene, model, work, device, repeats):
    from backend.engine.classify import classify
    from backend.io.rasters import gdal_env
    out = os.path.join(work, "dense.tif")

    def run():
        with gdal_env():  # the GDAL settings `python -m backend classify` runs under
            classify(scene["hsi"], [scene["dsm"]], model, out, Quiet(), device=device)
    seconds = median_time(run, repeats)
    import rasterio
    with rasterio.open(scene["hsi"]) as ds:
        return ds.width * ds.height / seconds


def patch_pixels_per_second(scene, model, device, n_pixels, patch=11, batch=128, repeats=3):
    """The patch-per-pixel way most papers classify: every pixel's 11×11 neighbourhood is a sample."""
    from rasterio.windows import Window

    from backend.engine import modalities, package
    from backend.manifest import read_manifest
    with modalities.open_modalities(scene["hsi"], [scene["dsm"]], read_manifest(model)["modalities"]) as (ref, readers):
        arrays = [r.read(Window(0, 0, ref.width, ref.height))[0] for r in readers]
    _, net = package.load_model(model, device)
    r = patch // 2
    padded = [torch.from_numpy(np.pad(a, ((0, 0), (r, r), (r, r)), mode="reflect")) for a in arrays]
    rng = np.random.default_rng(0)
    rows = rng.integers(0, arrays[0].shape[1], n_pixels)
    cols = rng.integers(0, arrays[0].shape[2], n_pixels)

    def run():
        with torch.inference_mode():
            for s in range(0, n_pixels, batch):
                rr, cc = rows[s:s + batch], cols[s:s + batch]
                xs = [torch.stack([p[:, i:i + patch, j:j + patch] for i, j in zip(rr, cc)]).to(device) for p in padded]
                net(xs)[:, :, r, r].argmax(1).cpu()
    run()  # warm-up
    return n_pixels / median_time(run, repeats)


def random_forest_pixels_per_second(scene, sparse, repeats):
    from rasterio.windows import Window
    from sklearn.ensemble import RandomForestClassifier

    from backend.engine import modalities
    from backend.io.labels import load_labels
    with modalities.open_modalities(scene["hsi"], [scene["dsm"]]) as (ref, readers):
        for r in readers:
            r.mean = np.zeros(r.n_inputs, np.float32)
            r.std = np.ones(r.n_inputs, np.float32)
        x = np.concatenate([r.read(Window(0, 0, ref.width, ref.height))[0] for r in readers])
        labels, _ = load_labels(sparse, ref)
    features = x.reshape(x.shape[0], -1).T
    y = labels.ravel()
    forest = RandomForestClassifier(n_estimators=300, n_jobs=os.cpu_count(), random_state=0)
    forest.fit(features[y > 0], y[y > 0])
    forest.predict(features[:1000])
    return features.shape[0] / median_time(lambda: forest.predict(features), repeats)


def bench_scan(repeats):
    from scan_speed import loop_unbind, make, run

    from backend.nets.scan import selective_scan_cpu, selective_scan_reference
    ts = make(64, 128, 256, 16)
    # Ours and the per-step loop alternate, repeat after repeat (each run is well under a second): a
    # burst of load from elsewhere on a shared machine then slows both instead of only one of them.
    fns = {"ours": selective_scan_cpu, "per_step_loop": loop_unbind}
    times = {name: [] for name in fns}
    for fn in fns.values():
        run(fn, ts)  # warm-up
    for _ in range(3 * repeats):
        for name, fn in fns.items():
            times[name].append(run(fn, ts)[1])
    results = {name: statistics.median(t) for name, t in times.items()}
    results["per_step_indexed"] = run(selective_scan_reference, ts)[1]  # ~half a minute a run: once
    u, delta, A, B, C, D, z, bias = [t.detach() for t in ts]
    kw = dict(D=D, z=z, delta_bias=bias, delta_softplus=True)
    err = (selective_scan_cpu(u, delta, A, B, C, **kw) - loop_unbind(u, delta, A, B, C, **kw)).abs().max().item()
    return {"scan_cpu_speedup": results["per_step_loop"] / results["ours"],
            "scan_speedup_vs_indexed_loop": results["per_step_indexed"] / results["ours"],
            "scan_max_abs_err": err, "scan_seconds": results}


def bench_train(work, archs, height=200, width=330, bands=224, per_class=20):
    """`python -m backend train` with its defaults (few-label recipe, cross-validated estimate included)
    on a synthetic `height` × `width` px scene of `bands` bands + DSM, `per_class` labelled px per class:
    issue 20's time budget (≤ 3 min for the default network on 2 cores; bdgf ≤ 3× m3amba)."""
    import subprocess

    from backend.synth.labels import sample_labels
    from backend.synth.scene import generate_scene
    scene = generate_scene(os.path.join(work, "train_scene"), seed=7, height=height, width=width, n_bands=bands)
    sparse = os.path.join(work, "train_scene_sparse.tif")
    sample_labels(scene["labels"], sparse, per_class=per_class, seed=7)
    results = {}
    for arch in archs:
        out = os.path.join(work, f"trained_{arch}")
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "backend", "train", "--hsi", scene["hsi"], "--aux", scene["dsm"],
                               "--labels", sparse, "--arch", arch, "--out", out], cwd=REPO, capture_output=True,
                              text=True)
        seconds = time.perf_counter() - start
        last = json.loads(proc.stdout.strip().splitlines()[-1])
        metrics = last.get("metrics", {})
        results[arch] = {"seconds": round(seconds, 1), "ok": proc.returncode == 0, "cv_oa": metrics.get("oa"),
                         "cv_forest_oa": metrics.get("cross_validation", {}).get("random_forest", {}).get("oa")}
        print(f"train {arch} ({height}×{width} px, {bands} bands + DSM, {per_class}/class): {seconds:.0f} s, "
              f"cross-validated OA {results[arch]['cv_oa']} (forest {results[arch]['cv_forest_oa']})", flush=True)
    return results


def _classify_seconds(scenes, model, work, window):
    """`python -m backend classify` of each scene at once, one process each with one torch and one
    GDAL thread; the seconds each took by its own clock (its result event)."""
    import subprocess
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", LANDFUSE_GDAL_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-m", "backend", "classify", "--hsi", hsi, "--aux", dsm, "--model", model,
                               "--out", os.path.join(work, f"control{i}.tif"), "--device", "cpu",
                               "--window", str(window)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for i, (hsi, dsm) in enumerate(scenes)]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1])["timings"]["total_s"] for p in procs]


def bench_batch(work, size, bands, arch, n_scenes=8, window=256, repeats=2):
    """classify-batch on a LocalCluster: `n_scenes` scenes with 1 and with 2 workers of one thread
    each, against plain `classify` of the same scenes in this process with one torch and one GDAL
    thread (one worker's resources). Rounds of (plain, 1 worker, 2 workers; then the other way
    round) and a control repeat `repeats` times; each figure takes its fastest round (the least
    disturbed by other load).

    scaling efficiency = throughput(2 workers) / (2 × throughput(1 worker)); per-scene overhead =
    batch time with 1 worker / plain time - 1. Cluster start-up and shutdown (seconds per run, not
    per scene) are reported apart. The control: one plain classify process alone, then two at once
    (one scene each): what this machine gives two busy processes right now (1.0 = two free cores;
    a shared or hyper-threaded machine gives less); batch_scaling_vs_machine divides it out."""
    import shutil

    import rasterio

    from backend.batch.run import BatchConfig, run_batch
    from backend.engine.classify import classify
    from backend.io.rasters import gdal_env
    scene, model, _ = scene_with_model(work, size, bands, arch, seed=5)
    folder = os.path.join(work, "batch_scenes")
    os.makedirs(folder)
    pairs = []
    for i in range(n_scenes):
        pairs.append((os.path.join(folder, f"scene{i}.tif"), os.path.join(folder, f"scene{i}_dsm.tif")))
        shutil.copy(scene["hsi"], pairs[-1][0])
        shutil.copy(scene["dsm"], pairs[-1][1])

    def plain_run():
        threads, gdal_threads = torch.get_num_threads(), os.environ.get("LANDFUSE_GDAL_THREADS")
        torch.set_num_threads(1)
        os.environ["LANDFUSE_GDAL_THREADS"] = "1"
        try:
            start = time.perf_counter()
            for i, (hsi, dsm) in enumerate(pairs):
                with gdal_env():
                    classify(hsi, [dsm], model, os.path.join(work, f"plain{i}.tif"), Quiet(), device="cpu",
                             window=window)
            return {"wall_s": time.perf_counter() - start}
        finally:
            torch.set_num_threads(threads)
            if gdal_threads is None:
                os.environ.pop("LANDFUSE_GDAL_THREADS", None)
            else:
                os.environ["LANDFUSE_GDAL_THREADS"] = gdal_threads

    def batch_run(workers, r):
        out = os.path.join(work, f"batch_out_{workers}_{r}")
        result = run_batch(BatchConfig(inputs=[folder], aux_patterns=["{stem}_dsm.tif"], model=model, out_dir=out,
                                       workers=workers, worker_threads=1, device="cpu", window=window), Quiet())
        assert result["metrics"]["ok"] == n_scenes, result
        return {"wall_s": result["timings"]["cluster_run_s"], "start_s": result["timings"]["cluster_start_s"],
                "total_s": result["timings"]["total_s"], "windows": result["metrics"]["windows"], "out": out}

    rounds = []
    for r in range(repeats):
        load = os.getloadavg()[0]
        row = {"load_1min": load}
        # every other round in the opposite order: a slow spell on a shared machine then hits each in turn
        for what in (("plain", 1, 2) if r % 2 == 0 else (2, 1, "plain")):
            row[what] = plain_run() if what == "plain" else batch_run(what, r)
        alone = _classify_seconds(pairs[:1], model, work, window)[0]
        both = _classify_seconds(pairs[:2], model, work, window)
        row["control"] = {"alone_s": alone, "two_at_once_s": both, "efficiency": alone / statistics.mean(both)}
        rounds.append(row)
        print(f"round {r + 1}/{repeats} (load average {load:.1f}): plain {row['plain']['wall_s']:.1f} s, "
              f"1 worker {row[1]['wall_s']:.1f} s (+{row[1]['start_s']:.1f} s start), 2 workers {row[2]['wall_s']:.1f} s "
              f"(+{row[2]['start_s']:.1f} s start) for {n_scenes} scenes; control: one classify alone {alone:.1f} s, "
              f"two at once {both[0]:.1f} and {both[1]:.1f} s", flush=True)
    best = {k: min(rounds, key=lambda row: row[k]["wall_s"])[k] for k in ("plain", 1, 2)}
    machine = max(row["control"]["efficiency"] for row in rounds)
    with rasterio.open(os.path.join(work, "plain0.tif")) as a, \
            rasterio.open(os.path.join(best[2]["out"], "scene0_classes.tif")) as b:
        same = bool(np.array_equal(a.read(), b.read()))
    windows = best[1]["windows"]
    efficiency = best[1]["wall_s"] / (2 * best[2]["wall_s"])
    return {"batch_scaling_efficiency": efficiency,
            "batch_overhead_per_scene": best[1]["wall_s"] / best["plain"]["wall_s"] - 1,
            "batch_overhead_per_scene_with_startup": best[1]["total_s"] / best["plain"]["wall_s"] - 1,
            "machine_two_process_efficiency": machine,
            "batch_scaling_vs_machine": efficiency / machine,
            "batch_seconds_per_window": best["plain"]["wall_s"] / windows,
            "batch": {"scenes": n_scenes, "size": size, "bands": bands, "arch": arch, "window": window,
                      "windows": windows, "rounds": [{str(k): v for k, v in row.items()} for row in rounds],
                      "maps_equal_classify": same}}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (a smoke run)")
    parser.add_argument("--only", nargs="*", default=None,
                        help="dense_vs_patch random_forest scan memory train batch")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--arch", default="m3amba")
    args = parser.parse_args()
    from backend.engine.device import tune_host_allocator
    tune_host_allocator()  # as every backend command does at start (cli.main): baselines run under it too
    only = set(args.only or ["dense_vs_patch", "random_forest", "scan", "memory", "train", "batch"])
    repeats = 2 if args.quick else 3
    size = 256 if args.quick else 512
    work = tempfile.mkdtemp(prefix="landfuse-bench-")
    results = {"machine": machine(), "device": args.device, "arch": args.arch, "quick": args.quick}
    figures = {}
    if only & {"dense_vs_patch", "random_forest"}:
        scene, model, sparse = scene_with_model(work, size, 144, args.arch)
        dense = dense_pixels_per_second(scene, model, work, args.device, repeats)
        figures["dense_pixels_per_second"] = dense
        print(f"dense tiled classify ({args.arch}, {size}² × 144+1 bands): {dense:,.0f} px/s", flush=True)
        if "dense_vs_patch" in only:
            patch = patch_pixels_per_second(scene, model, args.device, 256 if args.quick else 1024)
            figures["patch_pixels_per_second"] = patch
            figures["dense_vs_patch_speedup"] = dense / patch
            print(f"patch-per-pixel (11×11): {patch:,.0f} px/s", flush=True)
        if "random_forest" in only:
            forest = random_forest_pixels_per_second(scene, sparse, repeats)
            figures["random_forest_pixels_per_second"] = forest
            figures["vs_random_forest_speed"] = dense / forest
            print(f"random forest (300 trees, {os.cpu_count()} jobs) predict: {forest:,.0f} px/s", flush=True)
    if "scan" in only:
        figures.update(bench_scan(repeats))
    if "memory" in only:
        import memory_scaling
        sys.argv = [sys.argv[0], "--base", "512" if args.quick else "1024", "--repeats", "1" if args.quick else "3",
                    "--workdir", os.path.join(work, "mem")]
        mem = memory_scaling.main()
        figures["memory_ratio_16x"] = mem["memory_ratio_16x"]
        figures["memory"] = mem
    if "train" in only:
        trained = bench_train(work, ["m3amba", "bdgf", "spectral"]) if not args.quick else \
            bench_train(work, ["spectral"], 64, 96, 32, 10)
        figures["train"] = trained
        if "m3amba" in trained:
            figures["train_default_seconds"] = trained["m3amba"]["seconds"]
        if {"m3amba", "bdgf"} <= set(trained):
            figures["train_bdgf_vs_m3amba_time"] = trained["bdgf"]["seconds"] / trained["m3amba"]["seconds"]
    if "batch" in only:
        figures.update(bench_batch(work, size, 144 if not args.quick else 32, args.arch,
                                   window=256 if not args.quick else 128, repeats=1 if args.quick else 3))
    results["figures"] = figures
    out = os.path.join(REPO, "benchmarks", "results.json" if args.device == "cpu" else f"results-{args.device}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2, default=float)
    print(f"\n{'figure':34s} {'value':>14s}  target")
    for key, value in figures.items():
        if isinstance(value, (int, float)):
            op, target = TARGETS.get(key, ("", ""))
            ok = "" if not op else ("met" if (value >= target if op == ">=" else value <= target) else "MISSED")
            print(f"{key:34s} {value:14.4g}  {op}{target} {ok}")
    for arch, row in figures.get("train", {}).items():
        print(f"train[{arch}]{'':24s} {row['seconds']:14.1f}  (cross-validated OA {row['cv_oa']}, "
              f"forest {row['cv_forest_oa']})")
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    os.chdir(REPO)
    main()
