"""Choosing the torch device, the host allocator's policy, and catching out-of-memory in a way the
user can act on."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

from backend.protocol import ErrorCode, LandFuseError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time
if TYPE_CHECKING:
    from typing import Optional

# glibc's mallopt parameters (malloc.h) and the size below which big buffers come from the heap.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
HEAP_REUSE_BYTES = 1 << 30
_allocator_tuned = False


def tune_host_allocator() -> None:
    """Let glibc reuse freed feature maps instead of returning them to the kernel (Linux only).

    A 32-channel float map of a 512 px window is ~34 MB, above glibc's largest mmap threshold (32 MB):
    every such tensor was mmap'ed fresh and unmapped on free, so each full-resolution operation paid
    ~8k page faults, 3-6x its arithmetic (a GELU of that map: 17 ms, 4 ms on reused memory). With both
    thresholds at 1 GiB the freed buffers stay in the heap for the next operation; peak memory is still
    what is alive at the peak (make bench's memory_ratio_16x checks it). Called once per process, before
    heavy work; a no-op where the C library has no mallopt (macOS, Windows, musl).
    """
    global _allocator_tuned
    if _allocator_tuned or not sys.platform.startswith("linux"):
        return
    _allocator_tuned = True
    mallopt = _libc_function("mallopt")
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, HEAP_REUSE_BYTES)
        mallopt(_M_TRIM_THRESHOLD, HEAP_REUSE_BYTES)


def release_free_host_memory() -> None:
    """Hand the heap's free pages back to the kernel (glibc's malloc_trim; a no-op elsewhere).

    Called between inference windows. With the tuned allocator nothing is ever returned, and GDAL's
    cached blocks, allocated between two windows' big buffers, fragment the heap: a 16x larger raster
    peaked 931-1126 MiB against 765 for the base size (make bench's memory_ratio_16x 1.2-1.5, run to
    run). Trimming once per window keeps the in-window reuse (what the tuning is for) and took the
    16x run to 995-1034 MiB for ~8 % more time on the bench's small model (less on a real network)."""
    if not _allocator_tuned:
        return
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)


@functools.cache
def _libc_function(name):
    # Looked up once per name: find_library runs `ldconfig -p` (~1.6 ms), and the release runs per window.
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def resolve_device(requested: Optional[str]) -> str:
    import torch
    requested = (requested or "auto").lower()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise LandFuseError(ErrorCode.CUDA_UNAVAILABLE,
                                "CUDA was requested but this backend's torch sees no usable NVIDIA GPU.",
                                "Choose device 'auto' or 'cpu', or install the CUDA build of torch (make setup on the GPU machine).")
        return "cuda"
    if requested == "cpu":
        return "cpu"
    raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"Unknown device {requested!r}: use auto, cpu or cuda.")


def is_out_of_memory(exc: BaseException) -> bool:
    import torch
    if isinstance(exc, MemoryError) or isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "failed to allocate" in text)


def out_of_memory_error(window: int, windows: int = 1) -> LandFuseError:
    """The network's window, not the tile size, sets the least memory a forward pass needs: with one
    window per pass already, only a smaller --window (which changes the map a little) or the CPU is left."""
    fewer = (f"Try a smaller --tile-size or --batch-size 1 ({windows} windows went through at once), "
             if windows > 1 else "")
    return LandFuseError(ErrorCode.OUT_OF_MEMORY,
                         f"Ran out of memory while classifying {windows} window(s) of {window}×{window} pixels.",
                         fewer + "close other programs, or run on the CPU (--device cpu); a smaller --window "
                         f"(e.g. {max(64, window // 2)}) needs less memory but changes about 1 % of the map.")
