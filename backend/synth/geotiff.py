"""Writing the synthetic rasters: tiled, compressed GeoTIFFs with their metadata, written atomically.

Shared by the scene writer (scene.py: HSI with full spectral metadata, DSM, SAR, labels, fractions) and
the label tools (labels.py: sparse and split label rasters).
"""

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import rasterio

from backend.io.atomic import atomic_path


def _tile_edge(n: int) -> int:
    """Tile edge: 256 for large rasters, else the largest power of two below the raster edge."""
    for b in (256, 128, 64, 32):
        if n > b:
            return b
    return 16


def geotiff_profile(h: int, w: int, count: int, dtype: str, nodata: Optional[float], crs: Any, transform: Any,
                    predictor: int) -> Dict[str, Any]:
    """A tiled, deflate-compressed GTiff profile (`predictor` 2 for integers, 3 for floats)."""
    return {
        "driver": "GTiff", "height": h, "width": w, "count": count, "dtype": dtype, "nodata": nodata,
        "crs": crs, "transform": transform, "tiled": True, "blockxsize": _tile_edge(w),
        "blockysize": _tile_edge(h), "compress": "deflate", "predictor": predictor,
    }


def write_geotiff(path: str, data: np.ndarray, profile: Mapping[str, Any],
                  band_tags: Optional[Sequence[Mapping[str, str]]] = None,
                  descriptions: Optional[Sequence[str]] = None,
                  dataset_tags: Optional[Mapping[str, str]] = None,
                  ns_tags: Optional[Mapping[str, Mapping[str, str]]] = None,
                  band_ns_tags: Optional[Sequence[Mapping[str, Mapping[str, str]]]] = None,
                  colormap: Optional[Mapping[int, tuple]] = None,
                  scales: Optional[List[float]] = None) -> None:
    """Write `data` (count, h, w) to `path` atomically, with dataset tags (`ns_tags`: per namespace),
    per-band tags, namespaced band tags and descriptions, a colour table on band 1 and band scales
    (offsets 0)."""
    with atomic_path(path) as part:
        with rasterio.open(part, "w", **profile) as dst:
            dst.write(data)
            if dataset_tags:
                dst.update_tags(**dataset_tags)
            for ns, tags in (ns_tags or {}).items():
                dst.update_tags(ns=ns, **tags)
            for i in range(profile["count"]):
                if band_tags:
                    dst.update_tags(i + 1, **band_tags[i])
                if band_ns_tags:
                    for ns, tags in band_ns_tags[i].items():
                        dst.update_tags(i + 1, ns=ns, **tags)
                if descriptions:
                    dst.set_band_description(i + 1, descriptions[i])
            if scales is not None:
                dst.scales = scales
                dst.offsets = [0.0] * profile["count"]
            if colormap:
                dst.write_colormap(1, colormap)
