"""Choosing the torch device and catching out-of-memory in a way the user can act on."""

from backend.protocol import ErrorCode, LandFuseError


def resolve_device(requested):
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


def is_out_of_memory(exc):
    import torch
    if isinstance(exc, MemoryError) or isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "failed to allocate" in text)


def out_of_memory_error(tile_size):
    return LandFuseError(ErrorCode.OUT_OF_MEMORY,
                         f"Ran out of memory while classifying windows of {tile_size}×{tile_size} pixels.",
                         f"Try a smaller --tile-size (e.g. {max(32, tile_size // 2)}) or --batch-size 1, "
                         "or close other programs.")
