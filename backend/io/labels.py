"""Training and reference labels: a label raster (0 = unlabelled) or a vector file (polygons or
points with a class field), brought onto the HSI grid."""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from rasterio.enums import Resampling
from rasterio.warp import reproject

from backend.io import rasters
from backend.protocol import ErrorCode, LandFuseError

if TYPE_CHECKING:
    from rasterio.io import DatasetReader

VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".sqlite", ".fgb", ".kml")
# Distinct colours for classes that arrive without one (ColorBrewer-like, readable on a map).
PALETTE = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33", "#a65628", "#f781bf",
           "#999999", "#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494"]
CLASS_FIELD_GUESSES = ("class", "classname", "class_name", "label", "landcover", "level_3", "id_class")


def default_color(value: int) -> str:
    return PALETTE[(value - 1) % len(PALETTE)]


def class_table_of(ds: DatasetReader) -> Dict[int, Dict[str, Any]]:
    """A raster's class table: LandFuse's own tag, else GDAL category names / colour table."""
    tag = ds.tags().get("LANDFUSE_CLASSES")
    if tag:
        try:
            return {int(c["value"]): c for c in json.loads(tag)}
        except (ValueError, KeyError, TypeError, RecursionError):
            pass
    table = {}
    try:
        cmap = ds.colormap(1)
    except ValueError:
        cmap = {}
    for value, rgba in cmap.items():
        if value > 0 and rgba[:3] != (0, 0, 0):
            table[value] = {"value": value, "name": f"class_{value}", "color": "#%02x%02x%02x" % tuple(rgba[:3])}
    return table


def _raster_labels(path, ref):
    with rasters.open_raster(path, "label") as src:
        table = class_table_of(src)
        same_grid = (src.width, src.height) == (ref.width, ref.height) and (
            rasters.dataset_crs(src) is None or rasters.dataset_crs(ref) is None
            or (src.transform.almost_equals(ref.transform) and src.crs == ref.crs))
        if same_grid:
            data = src.read(1)
        else:
            rasters.check_overlap(ref, src, path, "label raster")
            data = np.zeros((ref.height, ref.width), dtype=np.int32)
            reproject(src.read(1).astype(np.int32), data, src_transform=src.transform, src_crs=src.crs,
                      dst_transform=ref.transform, dst_crs=ref.crs, src_nodata=0, dst_nodata=0,
                      resampling=Resampling.nearest)
        nodata = src.nodata
    data = np.asarray(data)
    if not np.issubdtype(data.dtype, np.integer):
        data = np.where(np.isfinite(data), data, 0)
        if np.any(data != np.round(data)):
            raise LandFuseError(ErrorCode.BAD_LABELS, f"The label raster holds non-integer values: {path}",
                                "Labels must be class numbers (0 = unlabelled).")
    data = data.astype(np.int64)
    if nodata is not None and np.isfinite(nodata) and nodata != 0:
        data[data == int(nodata)] = 0
    data[data < 0] = 0
    if data.max(initial=0) > 255:
        raise LandFuseError(ErrorCode.BAD_LABELS, "Class numbers must be 1..255 (0 = unlabelled).")
    values = sorted(int(v) for v in np.unique(data) if v > 0)
    classes = [table.get(v, {"value": v, "name": f"class_{v}", "color": default_color(v)}) for v in values]
    return data.astype(np.int32), classes


def _first_layer(path):
    import pyogrio
    layers = [str(name) for name, _ in pyogrio.list_layers(path) if str(name) != "layer_styles"]
    if not layers:
        raise LandFuseError(ErrorCode.BAD_LABELS, f"The vector file holds no layer: {path}")
    return layers[0]


def _vector_labels(path, ref, class_field, class_table):
    import pyogrio.raw
    import shapely
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom
    try:
        meta, _, geoms, fields = pyogrio.raw.read(path, layer=_first_layer(path))
    except LandFuseError:
        raise
    except Exception as exc:
        raise LandFuseError(ErrorCode.INPUT_UNREADABLE, f"The label file cannot be read as vectors: {exc}") from exc
    names = [str(n) for n in meta["fields"]]
    if class_field is None:
        lowered = {n.lower(): n for n in names}
        class_field = next((lowered[g] for g in CLASS_FIELD_GUESSES if g in lowered), None)
        if class_field is None:
            raise LandFuseError(ErrorCode.BAD_LABELS,
                                f"Which field holds the class? The label layer has: {', '.join(names) or 'no fields'}.",
                                "Pass --class-field NAME.")
    if class_field not in names:
        raise LandFuseError(ErrorCode.BAD_LABELS,
                            f"The label layer has no field {class_field!r}; it has: {', '.join(names)}.")
    column = fields[names.index(class_field)]
    # Layers made by the plugin (or by hand) may carry a name and a colour beside a numeric class:
    # those become the class table, so a legend drawn in QGIS reaches the model unchanged.
    lowered = {n.lower(): i for i, n in enumerate(names) if n != class_field}
    name_column = next((fields[lowered[f]] for f in ("class_name", "classname", "name") if f in lowered), None)
    color_column = next((fields[lowered[f]] for f in ("color", "colour") if f in lowered), None)
    by_name = {c["name"].lower(): c for c in class_table or []}
    by_value = {c["value"]: c for c in class_table or []}
    classes = {}
    shapes = []
    src_crs = meta.get("crs")
    dst_crs = rasters.dataset_crs(ref)
    for row, (wkb, raw) in enumerate(zip(geoms, column)):
        if wkb is None or raw is None or (isinstance(raw, float) and np.isnan(raw)) or str(raw).strip() == "":
            continue
        text = str(raw).strip()
        value = _class_number(raw, text, class_field)
        if value is not None:
            cls = by_value.get(value) or {"value": value, "name": _field_text(name_column, row) or f"class_{value}",
                                          "color": _field_color(color_column, row) or default_color(value)}
            by_value[value] = cls
        elif text.lower() in by_name:
            cls = by_name[text.lower()]
        else:
            used = {c["value"] for c in by_name.values()} | set(by_value) | {c["value"] for c in classes.values()}
            value = next((v for v in range(1, 256) if v not in used), None)
            if value is None:
                raise LandFuseError(ErrorCode.BAD_LABELS,
                                    f"The class field {class_field!r} names more than 255 classes; a class map holds "
                                    "at most 255 (values 1..255).", "Merge classes, or check that the right field is used.")
            cls = {"value": value, "name": text, "color": default_color(value)}
            by_name[text.lower()] = cls
        if not 1 <= cls["value"] <= 255:
            raise LandFuseError(ErrorCode.BAD_LABELS, f"Class numbers must be 1..255; found {cls['value']}.")
        classes[cls["value"]] = cls
        geom = shapely.from_wkb(wkb).__geo_interface__
        if src_crs and dst_crs is not None:
            geom = transform_geom(src_crs, dst_crs, geom)
        shapes.append((geom, cls["value"]))
    if not shapes:
        raise LandFuseError(ErrorCode.BAD_LABELS, f"The label layer holds no labelled feature: {path}")
    data = rasterize(shapes, out_shape=(ref.height, ref.width), transform=ref.transform, fill=0, dtype="int32")
    return data, [classes[v] for v in sorted(classes)]


def _class_number(raw, text, class_field):
    """The class value of a field entry, or None when it is a class name. Numbers are class values
    whatever their type: 4, 4.0 (a decimal field, as shapefiles and GeoPackages often store them),
    "4" and "4.0"; a number with a fraction is no class."""
    if isinstance(raw, (bool, np.bool_)):
        return None
    if isinstance(raw, (int, np.integer)):
        return int(raw)
    number = raw if isinstance(raw, (float, np.floating)) else None
    if number is None and re.fullmatch(r"[-+]?[0-9]+(\.[0-9]*)?", text):
        number = float(text)
    if number is None:
        return None
    if not np.isfinite(number) or number != int(number):
        raise LandFuseError(ErrorCode.BAD_LABELS,
                            f"The class field {class_field!r} holds {text}, a number that is not a whole class number.",
                            "Class fields hold whole numbers (1..255) or class names.")
    return int(number)


def _field_text(column, row):
    if column is None or column[row] is None:
        return None
    text = str(column[row]).strip()
    return text or None


def _field_color(column, row):
    text = _field_text(column, row)
    if text and re.fullmatch(r"#[0-9a-fA-F]{6}", text):
        return text.lower()
    return None


def load_labels(path: str, ref: DatasetReader, class_field: Optional[str] = None,
                class_table: Optional[Sequence[Mapping[str, Any]]] = None) -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    """(labels int32 array on the HSI grid, 0 = unlabelled; class table of the values present)."""
    if not path or not os.path.exists(path):
        raise LandFuseError(ErrorCode.INPUT_NOT_FOUND, f"The label file does not exist: {path}")
    if not os.path.isdir(path):      # a folder is a vector data set for some drivers
        rasters.require_regular_file(path, "label")
    if path.lower().endswith(VECTOR_SUFFIXES):
        data, classes = _vector_labels(path, ref, class_field, class_table)
    else:
        data, classes = _raster_labels(path, ref)
        if class_table:
            known = {c["value"]: c for c in class_table}
            classes = [known.get(c["value"], c) for c in classes]
    if not classes or not (data > 0).any():
        raise LandFuseError(ErrorCode.BAD_LABELS, f"No labelled pixel falls on the image: {path}",
                            "Check that the labels cover the image and carry the right CRS.")
    return data, classes
