"""The pure-Python pieces of the backend package (protocol schema, manifest reader).

They live in `<plugin root>/backend/` and import each other as the top-level package `backend`,
so the plugin root goes on sys.path. Only `backend.protocol`, `backend.manifest` and `backend.io.spectral`
(the band-wavelength conventions, read here through GDAL) are imported: never anything that pulls
torch, rasterio or numpy (tests/plugin/test_spectral.py checks it).
"""

import importlib
import os
import sys

from .paths import PLUGIN_ROOT


def _ours(module):
    path = getattr(module, "__file__", None) or ""
    return os.path.abspath(path).startswith(os.path.join(PLUGIN_ROOT, "backend") + os.sep)


def _import(name):
    existing = sys.modules.get("backend")
    if existing is not None and not _ours(existing):
        raise ImportError("another Python package named 'backend' is already loaded "
                          f"({getattr(existing, '__file__', '?')}); LandFuse cannot read its own backend")
    if PLUGIN_ROOT not in sys.path:
        sys.path.append(PLUGIN_ROOT)
    return importlib.import_module(name)


protocol = _import("backend.protocol")
manifest = _import("backend.manifest")
spectral = _import("backend.io.spectral")

ErrorCode = protocol.ErrorCode
LandFuseError = protocol.LandFuseError
parse_event = protocol.parse_event
PROTOCOL_VERSION = protocol.PROTOCOL_VERSION
DEFAULT_TILE_SIZE = protocol.DEFAULT_TILE_SIZE
MAP_WINDOW = protocol.MAP_WINDOW
UNCLASSIFIED = protocol.UNCLASSIFIED
read_manifest = manifest.read_manifest
summarize = manifest.summarize
