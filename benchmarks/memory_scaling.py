"""Peak memory of `classify` on a raster 16× larger (4× per side) than the base size, same bands.

Flat memory is the point of windowed inference: the ratio should stay near 1 (target ≤ 1.3).
Each classify runs in its own child process; its peak RSS comes from getrusage(RUSAGE_CHILDREN). The
peak of one run varies by up to ~200 MiB from run to run on this machine (allocator and GDAL worker
threads), so each size runs `--repeats` times, the sizes alternating, and the ratio is of the medians.
Usage: python benchmarks/memory_scaling.py [--base 1024] [--bands 64] [--repeats 3] [--workdir DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import rasterio
from rasterio.transform import from_origin

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def write_scene(path, size, bands, block=512):
    """A smooth uint16 reflectance cube written block by block (never whole in memory)."""
    profile = dict(driver="GTiff", width=size, height=size, count=bands, dtype="uint16", crs="EPSG:32633",
                   transform=from_origin(389000, 5819000, 1, 1), tiled=True, blockxsize=256, blockysize=256,
                   compress="deflate", interleave="pixel", nodata=0)
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(0, size, block):
            for c in range(0, size, block):
                yy, xx = np.mgrid[r:r + block, c:c + block].astype(np.float32)
                base = 2000 + 1500 * np.sin(xx / 37.0) * np.cos(yy / 53.0)
                cube = base[None] * (1 + 0.3 * np.sin(np.arange(bands, dtype=np.float32) / 7.0))[:, None, None]
                dst.write(cube.astype(np.uint16), window=rasterio.windows.Window(c, r, block, block))
    return path


def peak_rss_of(cmd):
    """Run cmd as a fresh child (via a wrapper so RUSAGE_CHILDREN sees only it); peak RSS in MiB."""
    wrapper = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)")
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True)
    kib, code = out.stdout.split()
    if int(code) != 0:
        raise RuntimeError(f"classify failed ({code}): {' '.join(cmd)}")
    return int(kib) / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=int, default=1024)
    parser.add_argument("--bands", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    from tests.backend.conftest import make_package
    work = args.workdir or tempfile.mkdtemp(prefix="landfuse-mem-")
    model = make_package(os.path.join(work, "model"), [args.bands], mean=2000.0, std=1000.0)
    sizes = (("base", args.base), ("x16", args.base * 4))
    runs = {label: [] for label, _ in sizes}
    for _ in range(max(1, args.repeats)):
        for label, size in sizes:
            path = os.path.join(work, f"scene_{size}.tif")
            if not os.path.exists(path):
                write_scene(path, size, args.bands)
            started = time.perf_counter()
            rss = peak_rss_of([sys.executable, "-m", "backend", "classify", "--hsi", path, "--model", model,
                               "--out", os.path.join(work, f"out_{size}.tif"), "--device", "cpu"])
            runs[label].append({"peak_rss_mib": round(rss, 1), "seconds": round(time.perf_counter() - started, 1)})
            print(json.dumps({label: runs[label][-1]}), flush=True)
    results = {}
    for label, size in sizes:
        peaks = [r["peak_rss_mib"] for r in runs[label]]
        results[label] = {"size": size, "bands": args.bands, "peak_rss_mib": float(np.median(peaks)),
                          "peak_rss_mib_runs": peaks,
                          "seconds": float(np.median([r["seconds"] for r in runs[label]]))}
    results["memory_ratio_16x"] = round(results["x16"]["peak_rss_mib"] / results["base"]["peak_rss_mib"], 3)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    os.chdir(REPO)
    main()
