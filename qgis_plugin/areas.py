"""Area per class of a class map: pixels from the backend's result (or counted here), hectares
from the layer's pixel size when its CRS is in linear units, and the share of mapped pixels."""

from typing import Dict, List, Optional

from qgis.core import QgsUnitTypes


def pixel_area_m2(layer) -> Optional[float]:
    """Square metres per pixel; None for a CRS in degrees (or unknown units)."""
    crs = layer.crs()
    units = crs.mapUnits() if crs.isValid() else QgsUnitTypes.DistanceUnknownUnit
    if units in (QgsUnitTypes.DistanceDegrees, QgsUnitTypes.DistanceUnknownUnit):
        return None
    factor = QgsUnitTypes.fromUnitToUnitFactor(units, QgsUnitTypes.DistanceMeters)
    return abs(layer.rasterUnitsPerPixelX() * factor) * abs(layer.rasterUnitsPerPixelY() * factor)


def count_pixels(path: str, values: List[int]) -> Dict[int, int]:
    """Pixels of each class value in a one-band class raster, read block row by block row."""
    import numpy as np
    from osgeo import gdal
    ds = gdal.Open(path)
    band = ds.GetRasterBand(1)
    counts = np.zeros(256, np.int64)
    rows = max(1, band.GetBlockSize()[1])
    for y in range(0, ds.RasterYSize, rows):
        block = band.ReadAsArray(0, y, ds.RasterXSize, min(rows, ds.RasterYSize - y))
        counts += np.bincount(block.ravel().astype(np.int64).clip(0, 255), minlength=256)
    ds = None
    return {v: int(counts[v]) for v in values if 0 <= v < 256}


def class_areas(layer, class_table, pixels_per_class: Optional[Dict[str, int]] = None) -> List[dict]:
    """[{value, name, color, pixels, ha (None in degrees), percent}] for every class of the
    table, in value order; `percent` of the pixels that got a class (nodata not counted)."""
    table = sorted(class_table, key=lambda c: int(c["value"]))
    if pixels_per_class and all(c["name"] in pixels_per_class for c in table):
        pixels = {int(c["value"]): int(pixels_per_class[c["name"]]) for c in table}
    else:
        pixels = count_pixels(layer.source().split("|")[0], [int(c["value"]) for c in table])
    total = sum(pixels.values())
    area = pixel_area_m2(layer)
    rows = []
    for c in table:
        n = pixels.get(int(c["value"]), 0)
        rows.append({"value": int(c["value"]), "name": c["name"], "color": c.get("color", "#808080"), "pixels": n,
                     "ha": (n * area / 10000.0) if area is not None else None,
                     "percent": (100.0 * n / total) if total else 0.0})
    return rows


def area_lines(rows: List[dict]) -> List[str]:
    """The table as text lines for the log."""
    width = max([len(r["name"]) for r in rows] + [5])
    lines = []
    for r in rows:
        ha = f"{r['ha']:>12,.2f} ha" if r["ha"] is not None else f"{r['pixels']:>12,} px"
        lines.append(f"  {r['name']:<{width}} {ha}  {r['percent']:5.1f} %")
    return lines
