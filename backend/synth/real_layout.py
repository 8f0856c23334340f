"""Layouts with REAL shapes: crops of real label maps turned into a `Layout` the renderer can use.

make_layout draws a procedural landscape; this module instead cuts a crop out of a real land-cover
map (Berlin, the four HSI+LiDAR benchmarks; read from ../shared/data as the table of label_maps.py
says), maps its classes onto the generic scheme, resamples it onto the scene's fine grid and gives
every connected patch an object with its own material variant and a height measured on real LiDAR
(heights.py). The spectra, the illumination and the sensor stay those of scene.py.

Sparse maps: 0 is unlabelled. Unlabelled pixels close to labelled ones (FILL_RADIUS_M) take the
class of the nearest labelled pixel (`labels` of real_label_maps); farther ones stay 0. A crop is
only used where at least MIN_LABELLED of it was labelled in the original map and MIN_COVERED of it is
labelled or near a label; what is still 0 inside it is then filled from the nearest labelled pixel of
the crop, so the shapes stay mostly real.

Held-out regions: every map is split once along one axis (LABEL_MAPS[...]["held_out"]); the
`held_out` part never supplies a `train` crop, so evaluation scenes can use layouts that pretraining
never saw. Both Berlin maps cover the same city and are split on the same northing.
"""

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import spectra
from .heights import measured_height_table
from .label_maps import LABEL_MAPS, map_classes, source_labels
from .layout import ROOF, TREE, WATER, Layout, SceneObject, smooth_field
from .library import require_data_dir

SPLITS = ("train", "held_out")
FILL_RADIUS_M = 10.0    # unlabelled pixels this close to a label take its class (at least 2 px)
MIN_LABELLED = 0.3      # a crop needs this fraction of originally labelled pixels ...
MIN_COVERED = 0.8       # ... and this fraction labelled or within FILL_RADIUS_M of a label: the rest
                        # is filled from the crop's nearest label, which extrudes straight stripes
MIN_CROP_PX = 8         # a crop narrower than this in map pixels is mostly one or two blocks of class
# when no crop of the requested extent fits (map or held-out part too small, too sparse), a smaller
# extent is tried, down to half: shapes then look up to twice their real size
SCALES = (1.0, 0.84, 0.71, 0.59, 0.5)
OBJECT_CELL_M = 40.0    # smallest piece a huge connected patch is cut into (see _objects)


def _fill_near(labels, radius):
    """Nearest-label fill of 0 pixels within `radius` px of a label, in bands of rows so that huge,
    mostly empty maps (Berlin 1 m) need little memory: the nearest label within `radius` is always
    inside the band grown by `radius`."""
    out = labels.copy()
    h = labels.shape[0]
    band = 1024
    for r0 in range(0, h, band):
        a0, a1 = max(0, r0 - radius - 1), min(h, r0 + band + radius + 1)
        sub = labels[a0:a1]
        if not sub.any() or sub.all():
            continue
        dist, (ir, ic) = ndimage.distance_transform_edt(sub == 0, return_indices=True)
        filled = np.where(dist <= radius, sub[ir, ic], 0).astype(labels.dtype)
        r1 = min(h, r0 + band)
        out[r0:r1] = filled[r0 - a0:r1 - a0]
    return out


def _load_map(name, d):
    spec = LABEL_MAPS[name]
    gen = map_classes(source_labels(name, d), spec["classes"])
    full_h, full_w = gen.shape
    axis, frac = spec["held_out"]
    split_src = int(round(frac * (full_h if axis == "rows" else full_w)))
    # keep the labelled bounding box (+ the fill radius): Berlin 1 m is 12000 x 6600 px, 98 % empty
    radius = max(2, int(np.ceil(FILL_RADIUS_M / spec["pixel_m"])))
    rows = np.flatnonzero(gen.any(axis=1))
    cols = np.flatnonzero(gen.any(axis=0))
    r0, r1 = max(0, rows[0] - radius), min(full_h, rows[-1] + 1 + radius)
    c0, c1 = max(0, cols[0] - radius), min(full_w, cols[-1] + 1 + radius)
    gen = np.ascontiguousarray(gen[r0:r1, c0:c1])
    labelled = gen > 0
    labels = _fill_near(gen, radius)
    start = int(np.clip(split_src - (r0 if axis == "rows" else c0), 0, gen.shape[0 if axis == "rows" else 1]))
    labels.flags.writeable = False
    labelled.flags.writeable = False
    return {"name": name, "labels": labels, "labelled": labelled, "pixel_m": float(spec["pixel_m"]),
            "offset": (int(r0), int(c0)), "source_shape": (int(full_h), int(full_w)),
            "held_out": {"axis": axis, "start": start}}


_MAPS = {}      # data folder -> list of map dicts
_SATS = {}      # data folder -> [(summed-area table of `labelled`, of `labels` > 0)], one per map


def real_label_maps(data_dir=None):
    """Every map of LABEL_MAPS as {"name", "labels" (uint8 generic classes 0..6, filled near labels),
    "labelled" (bool: labelled in the original map), "pixel_m", "offset" (row, col of this array in
    the source raster), "source_shape", "held_out" ({"axis": "rows"|"cols", "start": index in this
    array where the held-out part begins})}. Cached per data folder; the arrays are read-only."""
    d = require_data_dir(data_dir, "real label maps")
    if d not in _MAPS:
        maps = [_load_map(name, d) for name in LABEL_MAPS]
        _SATS[d] = [(_sat(m["labelled"]), _sat(m["labels"] > 0)) for m in maps]
        _MAPS[d] = maps
    return _MAPS[d]


def _sat(mask):
    """Summed-area table: the count of True in any window from four look-ups."""
    s = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int32)
    np.cumsum(np.cumsum(mask, axis=0, dtype=np.int32), axis=1, out=s[1:, 1:])
    return s


def _split_bounds(m, split):
    """(row0, row1, col0, col1) of a map's part."""
    h, w = m["labels"].shape
    axis, start = m["held_out"]["axis"], m["held_out"]["start"]
    lo, hi = (0, start) if split == "train" else (start, h if axis == "rows" else w)
    return (lo, hi, 0, w) if axis == "rows" else (0, h, lo, hi)


def _window_sums(sat, r, c, ch, cw):
    return sat[r + ch, c + cw] - sat[r, c + cw] - sat[r + ch, c] + sat[r, c]


def _good(sats, r, c, ch, cw):
    """Which windows are labelled and covered enough (MIN_LABELLED, MIN_COVERED)."""
    n = ch * cw
    return ((_window_sums(sats[0], r, c, ch, cw) >= MIN_LABELLED * n)
            & (_window_sums(sats[1], r, c, ch, cw) >= MIN_COVERED * n))


@functools.lru_cache(maxsize=512)
def _valid_windows(d, index, split, ch, cw):
    """Top-left corners (rows, cols) of the windows of ch x cw px, on a lattice, that lie in the part
    and are labelled / covered enough (_good); and the lattice stride."""
    m = _MAPS[d][index]
    r_lo, r_hi, c_lo, c_hi = _split_bounds(m, split)
    stride = max(1, min(ch, cw) // 8)
    rs = np.arange(r_lo, r_hi - ch + 1, stride)
    cs = np.arange(c_lo, c_hi - cw + 1, stride)
    if rs.size == 0 or cs.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), stride
    ok_r, ok_c = np.nonzero(_good(_SATS[d][index], rs[:, None], cs[None, :], ch, cw))
    return rs[ok_r], cs[ok_c], stride


@dataclass(frozen=True)
class Crop:
    """Where a real layout comes from: rows / cols are the window in the map's `labels` array (add the
    map's `offset` for the source raster); the window is rotated by k_rot quarter turns, then
    mirrored left-right if `flip`. `scale` < 1: the scene shows a smaller real extent than asked."""
    name: str
    index: int
    rows: tuple
    cols: tuple
    k_rot: int
    flip: bool
    scale: float
    split: str


def _options(d, index, ext_h, ext_w, split):
    """The largest usable scale of one map, with the orientations (0: as is, 1: quarter turn) that
    reach it: [(scale, orientation, ch, cw)]."""
    pm = _MAPS[d][index]["pixel_m"]
    for s in SCALES:
        found = []
        for o in (0, 1):
            eh, ew = (ext_h, ext_w) if o == 0 else (ext_w, ext_h)
            ch, cw = int(round(eh * s / pm)), int(round(ew * s / pm))
            if min(ch, cw) < MIN_CROP_PX:
                continue
            if _valid_windows(d, index, split, ch, cw)[0].size:
                found.append((s, o, ch, cw))
        if found:
            return found
    return []


def sample_real_crop(rng, height, width, pixel_size, split="train", data_dir=None):
    """Pick a map (uniformly among those that can supply a crop), a window in its `split` part and an
    orientation for a scene of height x width pixels of pixel_size metres. Returns a Crop."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    maps = real_label_maps(data_dir)
    d = require_data_dir(data_dir, "real label maps")
    ext_h, ext_w = height * float(pixel_size), width * float(pixel_size)
    choices = [(i, opts) for i in range(len(maps)) for opts in [_options(d, i, ext_h, ext_w, split)] if opts]
    if not choices:
        raise ValueError(f"no real label map can supply a {ext_h:g} x {ext_w:g} m crop in its {split} part")
    index, opts = choices[int(rng.integers(len(choices)))]
    scale, orient, ch, cw = opts[int(rng.integers(len(opts)))]
    rs, cs, stride = _valid_windows(d, index, split, ch, cw)
    j = int(rng.integers(rs.size))
    r, c = int(rs[j]), int(cs[j])
    # jitter off the lattice so that crops are not limited to it; keep the lattice point if the moved
    # window leaves the part or gets too sparse
    r_lo, r_hi, c_lo, c_hi = _split_bounds(maps[index], split)
    half = stride // 2
    jr = int(np.clip(r + rng.integers(-half, half + 1), r_lo, r_hi - ch))
    jc = int(np.clip(c + rng.integers(-half, half + 1), c_lo, c_hi - cw))
    if _good(_SATS[d][index], jr, jc, ch, cw):
        r, c = jr, jc
    k_rot = orient + 2 * int(rng.integers(2))
    flip = bool(rng.random() < 0.5)
    return Crop(maps[index]["name"], index, (r, r + ch), (c, c + cw), k_rot, flip, float(scale), split)


def crop_labels(crop, data_dir=None):
    """The crop's generic classes, every pixel filled (nearest label of the crop), oriented."""
    m = real_label_maps(data_dir)[crop.index]
    win = (slice(*crop.rows), slice(*crop.cols))
    lab = np.array(m["labels"][win])
    if not lab.all():
        # still-unknown pixels (far from any label) take the nearest class of the crop; a crop is at
        # least MIN_LABELLED labelled, so there is one
        _, (ir, ic) = ndimage.distance_transform_edt(lab == 0, return_indices=True)
        lab = lab[ir, ic]
    lab = np.rot90(lab, crop.k_rot)
    if crop.flip:
        lab = lab[:, ::-1]
    return np.ascontiguousarray(lab)


def _nearest_resample(a, out_h, out_w):
    ri = ((np.arange(out_h) + 0.5) * a.shape[0] / out_h).astype(np.int64)
    ci = ((np.arange(out_w) + 0.5) * a.shape[1] / out_w).astype(np.int64)
    return a[np.minimum(ri, a.shape[0] - 1)][:, np.minimum(ci, a.shape[1] - 1)]


def _objects(cls, rng, fine_px):
    """Object index per fine pixel: connected patches of one class (4-connected), huge ones cut by a
    coarse, slightly warped grid, so that e.g. a road network or a wood spanning the scene does not get
    one spectrum. Returns (obj int32, [(class, piece key)] in object order)."""
    fh, fw = cls.shape
    cell = max(OBJECT_CELL_M / fine_px, max(fh, fw) / 4.0)
    warp = 0.25 * cell
    rr = np.arange(fh)[:, None] + warp * smooth_field(rng, (fh, fw), max(4, int(cell)))
    cc = np.arange(fw)[None, :] + warp * smooth_field(rng, (fh, fw), max(4, int(cell)))
    n_cc = int(np.ceil(fw / cell)) + 2
    piece = (np.floor(rr / cell).astype(np.int64) + 1) * n_cc + (np.floor(cc / cell).astype(np.int64) + 1)
    obj = np.zeros((fh, fw), dtype=np.int32)
    owners = []
    for c in range(1, 7):
        mask = cls == c
        if not mask.any():
            continue
        comp, n = ndimage.label(mask)
        sizes = np.bincount(comp.ravel(), minlength=n + 1)
        huge = sizes > 0.5 * cell * cell
        huge[0] = False
        key = comp.astype(np.int64) * (piece.max() + 1) + np.where(huge[comp], piece, 0)
        uniq, inv = np.unique(key[mask], return_inverse=True)
        obj[mask] = len(owners) + inv.astype(np.int32)
        owners.extend([c] * uniq.size)
    return obj, owners


def sample_real_layout(rng, height, width, pixel_size, factor, split="train", data_dir=None, heights=None):
    """A Layout on a (height*factor, width*factor) fine grid of pixel_size/factor m, cut from a real
    label map (sample_real_crop, drawn first from `rng`). Objects get a material variant of their
    class, a blend and a height: roofs and trees from `heights` (default: measured_height_table),
    other classes a few cm. Deterministic given the state of `rng`."""
    factor = int(factor)
    if height < 1 or width < 1 or factor < 1 or not pixel_size > 0:
        raise ValueError("need height, width, factor >= 1 and pixel_size > 0")
    if heights is None:
        heights = measured_height_table(data_dir)
    crop = sample_real_crop(rng, height, width, pixel_size, split, data_dir)
    fh, fw = height * factor, width * factor
    fine_px = float(pixel_size) / factor
    cls = _nearest_resample(crop_labels(crop, data_dir), fh, fw).astype(np.uint8)

    obj, owners = _objects(cls, rng, fine_px)
    objects = []
    for c in owners:
        if c in (ROOF, TREE):
            h = float(heights.sample(c, rng))
        else:
            h = float(abs(rng.normal(0.0, 0.03)))     # kerbs, lawns, puddles: flat to a few cm
        objects.append(SceneObject(int(c), kind="real", variant=spectra.pick_variant(c, rng),
                                   blend=float(rng.uniform(0.1, 0.5)), height=h))

    obj_h = np.array([o.height for o in objects], dtype=np.float32)
    height_m = obj_h[obj]
    tree = cls == TREE
    if tree.any():
        # crowns are domes, not plates: lower towards the canopy edge and bumpy inside woods, so that
        # the renderer's crown slopes and self-shading have something to work with
        edge = ndimage.distance_transform_edt(tree) * fine_px
        dome = np.sqrt(np.clip(edge / 4.0, 0.0, 1.0))
        bumps = 0.5 + 0.5 * np.tanh(smooth_field(rng, (fh, fw), max(2, int(round(5.0 / fine_px)))))
        shape = 0.6 + 0.4 * np.clip(0.6 * dome + 0.4 * bumps, 0.0, 1.0)
        height_m[tree] *= shape[tree].astype(np.float32)

    # gentle terrain, 0.5-3 m of relief across the scene; water lies a little below its banks
    terrain = smooth_field(rng, (fh, fw), max(8, max(fh, fw) // 2))
    terrain = (terrain - terrain.min()) / max(float(np.ptp(terrain)), 1e-6)
    ground = (rng.uniform(30.0, 33.0) + rng.uniform(0.5, 3.0) * terrain).astype(np.float32)
    water = cls == WATER
    if water.any():
        ground[water] -= np.float32(rng.uniform(0.3, 1.0))

    return Layout(factor=factor, fine_px=fine_px, cls=cls, obj=obj, height=height_m.astype(np.float32),
                  ground=ground, building=cls == ROOF, objects=objects)
