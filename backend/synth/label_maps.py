"""The real label maps: where each is in the shared data folder, its pixel size, how its classes map
onto the generic scheme, which part of it is held out, and reading it.

Shared by real_layout.py (layouts cut from these maps) and heights.py (heights measured on the LiDAR
that comes with some of them): one class table for both.
"""

import os

import numpy as np

from .layout import LOW_VEG, PAVEMENT, ROOF, SOIL, TREE, WATER
from .library import require_data_dir

_BERLIN_L3 = {1: ROOF, 2: PAVEMENT, 3: LOW_VEG, 4: TREE, 5: SOIL, 6: WATER}

# ---------------------------------------------------------------------------------------------------
# THE table: every real label map, its native pixel size, how its classes map onto the generic scheme
# (1 roof, 2 pavement, 3 low vegetation, 4 tree, 5 soil, 6 water; a source class not listed -> 0,
# unknown) and which part is held out. `files` are (path under the data folder, .mat variable or None
# for a GeoTIFF); several files are merged (union of disjoint train / test label maps).
LABEL_MAPS = {
    # EnMAP-Box Berlin test data, rasterised reference polygons. Values 1-6 are the level-3 classes:
    # same values and colour table as landcover_map_l3.tif, checked against fraction_map_l3.tif (bands
    # named roof, pavement, low vegetation, tree, soil, water) and against l3 block by block.
    "berlin_1m": dict(
        files=(("enmap_berlin/raster/landcover_polygon_1m.tif", None),), pixel_m=1.0,
        classes=_BERLIN_L3,
        held_out=("rows", 0.75)),           # south of northing 5,811,372 m, as berlin_30m
    "berlin_30m": dict(                     # the 30 m level-3 land-cover map of the same area
        files=(("enmap_berlin/raster/landcover_map_l3.tif", None),), pixel_m=30.0,
        classes=_BERLIN_L3,
        held_out=("rows", 0.75)),
    "trento": dict(
        files=(("benchmarks/trento/allgrd.mat", "mask_test"),), pixel_m=1.0,
        # 1 apple trees, 2 buildings, 3 ground, 4 woods, 5 vineyard, 6 roads
        classes={1: TREE, 2: ROOF, 3: SOIL, 4: TREE, 5: LOW_VEG, 6: PAVEMENT},
        held_out=("cols", 0.75)),           # right-most 25 % of the columns
    "muufl": dict(
        files=(("benchmarks/muufl/gt.mat", "gt"),), pixel_m=1.0,
        # 1 trees, 2 mostly grass, 4 dirt and sand, 5 road, 6 water, 8 buildings, 9 sidewalk;
        # 3 mixed ground surface, 7 building shadow, 10 yellow curb, 11 cloth panels: unknown
        classes={1: TREE, 2: LOW_VEG, 4: SOIL, 5: PAVEMENT, 6: WATER, 8: ROOF, 9: PAVEMENT},
        held_out=("cols", 0.75)),
    "houston2013": dict(
        files=(("benchmarks/houston2013/TRLabel.mat", "TRLabel"),
               ("benchmarks/houston2013/TSLabel.mat", "TSLabel")), pixel_m=2.5,
        # 1 healthy, 2 stressed, 3 synthetic grass, 4 trees, 5 soil, 6 water, 7 residential,
        # 8 commercial, 9 road, 10 highway, 11 railway, 12/13 parking lots, 14 tennis court, 15 track
        classes={1: LOW_VEG, 2: LOW_VEG, 3: LOW_VEG, 4: TREE, 5: SOIL, 6: WATER, 7: ROOF, 8: ROOF,
                 9: PAVEMENT, 10: PAVEMENT, 11: PAVEMENT, 12: PAVEMENT, 13: PAVEMENT, 14: PAVEMENT,
                 15: PAVEMENT},
        held_out=("cols", 0.75)),
    "augsburg": dict(
        files=(("benchmarks/augsburg/TrainImage.mat", "TrainImage"),
               ("benchmarks/augsburg/TestImage.mat", "TestImage")), pixel_m=30.0,
        # 1 forest, 2 residential, 3 industrial, 4 low plants, 5 allotment, 6 commercial, 7 water
        classes={1: TREE, 2: ROOF, 3: ROOF, 4: LOW_VEG, 5: LOW_VEG, 6: ROOF, 7: WATER},
        held_out=("cols", 0.75)),
}


def _read_array(path, var):
    if var is None:
        import rasterio
        with rasterio.open(path) as src:
            return src.read(1)
    import scipy.io
    arr = scipy.io.loadmat(path, variable_names=[var])[var]
    if not np.issubdtype(arr.dtype, np.integer):     # Augsburg's TestImage is float32
        arr = np.clip(np.rint(np.nan_to_num(arr, nan=0.0)), 0, 255).astype(np.uint8)
    return arr


def source_labels(name, data_dir=None):
    """The source's own class values (integers, 0 = unlabelled), its label files merged. The dtype
    stays the file's (uint8 here): Berlin 1 m has 79 M pixels."""
    spec = LABEL_MAPS[name]
    d = require_data_dir(data_dir, "real label maps")
    out = None
    for rel, var in spec["files"]:
        a = _read_array(os.path.join(d, rel), var)
        # the split files are disjoint; where they were not, the first file wins
        out = a if out is None else np.where(out > 0, out, a)
    return out


def map_classes(raw, classes):
    """Source class values -> generic classes (uint8; unlisted values -> 0)."""
    if raw.min() < 0:
        raw = np.clip(raw, 0, None)
    lut = np.zeros(max(int(raw.max()), max(classes)) + 1, dtype=np.uint8)
    for k, v in classes.items():
        lut[k] = v
    return lut[raw]
