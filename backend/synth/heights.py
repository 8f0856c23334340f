"""Heights above ground of each generic class, measured on real airborne LiDAR.

Sources: the Trento and MUUFL benchmarks, whose LiDAR rasters (≈1 m) come with a label map of the same
grid (../shared/data/benchmarks). Their classes are mapped onto the generic scheme by the one class
table of label_maps.LABEL_MAPS.

Height above ground = DSM - ground level, where the ground level is estimated from the pixels that
certainly lie on the ground, i.e. labelled with a ground class (roads, sidewalks, grass, dirt; see
HEIGHT_SOURCES): in blocks of GROUND_BLOCK_M, the GROUND_PERCENTILE-th percentile of those pixels'
DSM in a window GROUND_PAD_M wider on every side; blocks without enough of them are interpolated
linearly between the others (nearest value outside their hull), and the block values are bilinearly
resampled to pixels. Why not a plain low-percentile filter of the DSM: woods and large buildings
are wider than any window that still follows the terrain, so their interiors would become "ground";
the labels say where the ground is. A low percentile (not the median) keeps cars, kerbs and branches
over a road from lifting the ground; a small window (16 m) keeps the bias on slopes small (a low
percentile of a tilted window lies below its centre). Checked on the data (medians of interior
pixels): Trento roads 0.03 m, ground 0.04 m, vineyard 1.0 m, buildings 10.7 m; MUUFL roads 0.05 m,
grass 0.08 m, buildings 11.8 m; leaving grass (MUUFL) or roads (Trento) out of the ground set moves
their own medians by less than 0.05 m, so the check is not circular.

Per class only interior pixels count (the class mask eroded by one pixel): edge pixels of a rasterised
DSM mix a roof with the street below it. Trees: both LiDAR rasters take one return per cell, and
through a crown many cells see the ground (MUUFL tree pixels have a median of 1.5 m), so tree heights
are read on a pit-free canopy model: the maximum of the tree pixels within TREE_WINDOW_PX (≈ a crown
radius), as usual for canopy height models from sparse returns.

Sources are weighted equally per class (not per pixel), so the larger benchmark does not decide alone.
"""

import os
from dataclasses import dataclass, field

import numpy as np
from scipy import interpolate, ndimage

from .label_maps import LABEL_MAPS, map_classes, source_labels
from .layout import LOW_VEG, PAVEMENT, ROOF, SOIL, TREE, WATER
from .library import require_data_dir, shared_data_dir  # noqa: F401  (re-exported: callers find it here too)

CLASSES = (ROOF, PAVEMENT, LOW_VEG, TREE, SOIL, WATER)

# label map (label_maps.LABEL_MAPS) -> its DSM (file, .mat variable, band or None) and the SOURCE
# class values that lie on the ground (they set the ground level, excluded classes included)
HEIGHT_SOURCES = {
    # ground 3, roads 6. Trento's DSM is already close to height above the valley floor (ground class
    # ≈ 0.1 m) and its zeros (5 %) are fields and roads: real values, not holes
    "trento": dict(dsm=("benchmarks/trento/LiDAR.mat", "LiDAR", None), ground=(3, 6), zero_is_nodata=False),
    # grass 2, mixed ground 3, dirt and sand 4, road 5, sidewalk 9, yellow curb 10. The ground is at
    # 3-6 m there, so the 32 zero pixels are dropouts
    "muufl": dict(dsm=("benchmarks/muufl/LiDAR.mat", "LiDAR", 0), ground=(2, 3, 4, 5, 9, 10), zero_is_nodata=True),
}

GROUND_BLOCK_M = 8.0
GROUND_PAD_M = 4.0
GROUND_PERCENTILE = 25.0
GROUND_MIN_PX = 16
TREE_WINDOW_PX = 5


@dataclass
class HeightTable:
    quantiles: dict         # {class: (101,) quantiles 0..100 % of height above ground, m, >= 0}
    sources: dict           # {class: [dataset names that contributed]}
    source_medians: dict = field(default_factory=dict)   # {class: {dataset: median m}}, for reports

    def sample(self, cls, rng, n=None):
        """Heights of class `cls` by inverse CDF (piecewise linear between percentiles); 0 for a class
        without a measurement. A float if n is None, else an (n,) array."""
        q = self.quantiles.get(int(cls))
        u = rng.random() if n is None else rng.random(int(n))
        if q is None:
            return 0.0 if n is None else np.zeros(int(n))
        h = np.interp(np.asarray(u) * 100.0, np.arange(101.0), q)
        return float(h) if n is None else h


def _read_dsm(path, var, band):
    import scipy.io
    a = scipy.io.loadmat(path, variable_names=[var])[var]
    if band is not None:
        a = a[..., band]
    return a.astype(np.float64)


def ground_level(dsm, on_ground, pixel_m=1.0):
    """Ground elevation per pixel from the DSM of the pixels known to be on the ground (NaN = no data);
    see the module docstring."""
    h, w = dsm.shape
    b = max(2, int(round(GROUND_BLOCK_M / pixel_m)))
    pad = int(round(GROUND_PAD_M / pixel_m))
    nbr, nbc = -(-h // b), -(-w // b)
    vals = np.where(on_ground & np.isfinite(dsm), dsm, np.nan)
    g = np.full((nbr, nbc), np.nan)
    for i in range(nbr):
        r0, r1 = max(0, i * b - pad), min(h, (i + 1) * b + pad)
        for j in range(nbc):
            v = vals[r0:r1, max(0, j * b - pad):min(w, (j + 1) * b + pad)]
            v = v[np.isfinite(v)]
            if v.size >= GROUND_MIN_PX:
                g[i, j] = np.percentile(v, GROUND_PERCENTILE)
    ok = np.isfinite(g)
    if not ok.any():
        raise ValueError("no ground pixels to estimate the ground level from")
    if not ok.all():
        pts, known = np.argwhere(ok), g[ok]
        todo = np.argwhere(~ok)
        fill = np.full(len(todo), np.nan)
        if len(known) >= 3 and np.linalg.matrix_rank(pts - pts.mean(0)) == 2:
            fill = interpolate.griddata(pts, known, todo, method="linear")
        miss = ~np.isfinite(fill)
        if miss.any():
            fill[miss] = interpolate.griddata(pts, known, todo[miss], method="nearest")
        g[~ok] = fill
    rr = (np.arange(h) + 0.5) / b - 0.5
    cc = (np.arange(w) + 0.5) / b - 0.5
    return ndimage.map_coordinates(g, np.meshgrid(rr, cc, indexing="ij"), order=1, mode="nearest")


def measure_source(name, data_dir):
    """{generic class: 1-D array of heights above ground (m)} of one LiDAR source."""
    spec = HEIGHT_SOURCES[name]
    raw = source_labels(name, data_dir)
    rel, var, band = spec["dsm"]
    dsm = _read_dsm(os.path.join(data_dir, rel), var, band)
    if dsm.shape != raw.shape:
        raise ValueError(f"{name}: DSM {dsm.shape} and labels {raw.shape} differ")
    if spec["zero_is_nodata"]:
        dsm[dsm == 0] = np.nan
    pixel_m = LABEL_MAPS[name]["pixel_m"]
    above = np.clip(dsm - ground_level(dsm, np.isin(raw, spec["ground"]), pixel_m), 0.0, None)
    gen = map_classes(raw, LABEL_MAPS[name]["classes"])
    out = {}
    for c in CLASSES:
        mask = gen == c
        inner = ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool))
        if c == TREE:
            canopy = np.where(mask & np.isfinite(above), above, -np.inf)
            vals = ndimage.maximum_filter(canopy, size=TREE_WINDOW_PX)[inner]
        else:
            vals = above[inner]
        vals = vals[np.isfinite(vals)]
        if vals.size:
            out[c] = vals
    return out


def _weighted_quantiles(parts):
    """101 quantiles of the mixture that gives every part the same total weight."""
    v = np.concatenate(parts)
    wgt = np.concatenate([np.full(p.size, 1.0 / p.size) for p in parts])
    order = np.argsort(v, kind="stable")
    v, wgt = v[order], wgt[order]
    cdf = (np.cumsum(wgt) - 0.5 * wgt) / wgt.sum()
    return np.maximum(np.interp(np.linspace(0.0, 1.0, 101), cdf, v), 0.0)


_TABLES = {}


def measured_height_table(data_dir=None):
    """The HeightTable measured on every HEIGHT_SOURCES dataset in `data_dir` (default
    shared_data_dir()); cached per folder. A class no source measures gets 0 m."""
    d = require_data_dir(data_dir, "measured heights")
    if d not in _TABLES:
        per_class = {c: [] for c in CLASSES}
        names = {c: [] for c in CLASSES}
        medians = {c: {} for c in CLASSES}
        for name in HEIGHT_SOURCES:
            for c, vals in measure_source(name, d).items():
                per_class[c].append(vals)
                names[c].append(name)
                medians[c][name] = float(np.median(vals))
        quantiles = {c: (_weighted_quantiles(p) if p else np.zeros(101)) for c, p in per_class.items()}
        _TABLES[d] = HeightTable(quantiles=quantiles, sources=names, source_medians=medians)
    return _TABLES[d]
