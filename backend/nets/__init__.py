"""Architecture registry: name → builder(params, modality_bands, num_classes) → nn.Module.

Every network is dense: forward(list of (B, bands_i, H, W) tensors, HSI first) → (B, classes, H, W).
Builders are imported lazily so `info` and the plugin never pay for (or need) the heavy ones.
"""

import importlib

ARCHITECTURES = {
    "tiny": "backend.nets.tiny",
    "m3amba": "backend.nets.m3amba",
    "bdgf": "backend.nets.bdgf",
    "spectral": "backend.nets.spectral",
}


def default_params(name):
    return dict(_module(name).DEFAULT_PARAMS)


def _module(name):
    from backend.protocol import ErrorCode, LandFuseError
    if name not in ARCHITECTURES:
        raise LandFuseError(ErrorCode.BAD_MODEL, f"Unknown architecture {name!r}",
                            f"Known architectures: {', '.join(sorted(ARCHITECTURES))}.")
    return importlib.import_module(ARCHITECTURES[name])


def build(name, params, modality_bands, num_classes):
    module = _module(name)
    merged = dict(module.DEFAULT_PARAMS)
    merged.update(params or {})
    return module.build(merged, list(modality_bands), int(num_classes))


def halo(name):
    """Context (px) a window needs around its core so tiled output matches whole-image output."""
    return int(getattr(_module(name), "HALO", 16))
