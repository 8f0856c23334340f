"""A run killed mid-way (SIGTERM from the plugin's Cancel, SIGKILL from a crash) leaves no output."""

import os
import signal
import subprocess
import sys
import time

import numpy as np

from backend.protocol import parse_event
from tests.backend.conftest import REPO, make_package, write_raster


def start_classify(tmp_path):
    rng = np.random.default_rng(0)
    hsi = write_raster(tmp_path / "big.tif", rng.normal(0, 1, (16, 512, 512)).astype(np.float32))
    model = make_package(tmp_path / "m", [16])
    out = tmp_path / "out.tif"
    proc = subprocess.Popen([sys.executable, "-m", "backend", "classify", "--hsi", hsi, "--model", model,
                             "--out", str(out), "--confidence", str(tmp_path / "conf.tif"), "--window", "32",
                             "--batch-size", "1"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    # Wait until windows are being written, i.e. the temporary outputs exist.
    for line in proc.stdout:
        event = parse_event(line)
        if event and event["type"] == "progress" and event["done"] >= 2:
            break
    return proc, out


def leftovers(tmp_path):
    return sorted(f for f in os.listdir(tmp_path) if f.startswith(("out", "conf", ".out", ".conf")))


def test_sigterm_mid_run_reports_cancelled_and_leaves_nothing(tmp_path):
    proc, out = start_classify(tmp_path)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    proc.wait(timeout=30)
    assert time.monotonic() - started < 5
    assert proc.returncode == 130
    events = [e for e in map(parse_event, rest.splitlines()) if e]
    assert events[-1]["type"] == "error" and events[-1]["code"] == "cancelled"
    assert leftovers(tmp_path) == []


def test_sigkill_mid_run_leaves_no_output_and_the_next_run_cleans_up(tmp_path):
    proc, out = start_classify(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    assert not out.exists() and not (tmp_path / "conf.tif").exists()
    parts = [f for f in leftovers(tmp_path) if ".part-" in f]
    assert parts, "the killed run's temporaries are only ever hidden .part files"
    from backend.io.output import remove_stale_parts
    remove_stale_parts(str(out))
    remove_stale_parts(str(tmp_path / "conf.tif"))
    assert leftovers(tmp_path) == []
