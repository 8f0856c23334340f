"""The host allocator policy set before heavy work (see backend.engine.device.tune_host_allocator)."""

import subprocess
import sys

import pytest

from tests.backend.conftest import REPO

# Run in a fresh interpreter: this test process may already have tuned its allocator (any classify).
PROBE = r"""
import ctypes, sys
import numpy as np
from backend.engine import device

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2

def mmapped_by_a_big_buffer():
    before = libc.mallinfo2().hblkhd
    buffer = np.ones(64 << 20, np.uint8)  # 64 MiB: above glibc's largest dynamic mmap threshold
    return libc.mallinfo2().hblkhd - before

untuned = mmapped_by_a_big_buffer()
device.tune_host_allocator()
device.tune_host_allocator()  # idempotent
print(untuned, mmapped_by_a_big_buffer())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt/mallinfo2 are glibc's")
def test_big_buffers_come_from_the_reusable_heap_once_tuned():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True)
    untuned, tuned = (int(v) for v in out.stdout.split())
    assert untuned >= 64 << 20   # glibc's default: a fresh mapping, unmapped again on free
    assert tuned == 0            # after tuning: heap memory, kept for the next feature map


TRIM_PROBE = r"""
import os
import numpy as np
from backend.engine import device

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

device.tune_host_allocator()
keep = np.ones(1 << 20, np.uint8)  # allocated after the big one: the big one's pages are not the heap's top
big = np.ones(256 << 20, np.uint8)
keep2 = np.ones(1 << 20, np.uint8)
del big
held = rss_mib()
device.release_free_host_memory()
print(held, rss_mib())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_released_between_windows():
    out = subprocess.run([sys.executable, "-c", TRIM_PROBE], cwd=REPO, capture_output=True, text=True, check=True)
    held, released = (float(v) for v in out.stdout.split())
    assert held - released > 200  # the freed 256 MiB stayed resident (tuned heap) until the release


def test_other_platforms_are_left_alone(monkeypatch):
    from backend.engine import device
    monkeypatch.setattr(device, "_allocator_tuned", False)
    monkeypatch.setattr(device.sys, "platform", "darwin")
    device.tune_host_allocator()
    assert device._allocator_tuned is False
