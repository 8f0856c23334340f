"""The landscape of a synthetic scene, drawn on a fine (supersampled) grid.

A layout is a set of objects (a parcel of grass, a field of bare soil, a river, a road, a building,
a cluster of trees, ...) painted in order onto a fine grid `factor` times finer than the output
pixels: each fine pixel knows its class, its object and its height above ground, and the terrain
height under it. Geometry is in metres, so buildings, roads and crowns keep realistic sizes whatever
the output pixel size.

Painting order (later wins): parcels of grass / soil -> soil patches -> water -> roads (bridges over
a river) -> buildings along the roads, with their yards / parking lots -> sports grounds -> tree
crowns (street rows, parks and woods, along the water, gardens; never over roofs). `make_layout` runs
these steps in that order; each draws from the one generator, so the order of the steps and of the
draws within them is what makes a seed give the same scene.
"""

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from . import spectra

ROOF, PAVEMENT, LOW_VEG, TREE, SOIL, WATER = 1, 2, 3, 4, 5, 6


@dataclass
class SceneObject:
    cls: int
    kind: str
    variant: str
    blend: float = 0.3          # how far the object's pixels drift towards its second endmember
    height: float = 0.0


@dataclass
class Layout:
    factor: int
    fine_px: float
    cls: np.ndarray             # (FH, FW) uint8 class per fine pixel
    obj: np.ndarray             # (FH, FW) int32 object index
    height: np.ndarray          # (FH, FW) float32 metres above ground (roofs, crowns, bridge decks)
    ground: np.ndarray          # (FH, FW) float32 terrain height (m)
    building: np.ndarray        # (FH, FW) bool
    objects: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------
# smooth random fields


def _interp_matrix(n_out, n_in):
    """(n_out, n_in) linear interpolation weights mapping a coarse lattice onto n_out samples."""
    pos = (np.arange(n_out) + 0.5) * (n_in - 1) / n_out
    i0 = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    w = pos - i0
    m = np.zeros((n_out, n_in), dtype=np.float32)
    m[np.arange(n_out), i0] = 1.0 - w
    m[np.arange(n_out), i0 + 1] = w
    return m


def smooth_field(rng, shape, cell_px):
    """Zero-mean, unit-std smooth random field with a correlation length of about `cell_px`."""
    h, w = shape
    ch = max(2, int(np.ceil(h / cell_px)) + 2)
    cw = max(2, int(np.ceil(w / cell_px)) + 2)
    small = ndimage.gaussian_filter(rng.standard_normal((ch, cw)), 0.8, mode="wrap")
    out = _interp_matrix(h, ch) @ small.astype(np.float32) @ _interp_matrix(w, cw).T
    out -= out.mean()
    return out / max(float(out.std()), 1e-6)


# ---------------------------------------------------------------------------------------------------
# geometry helpers (x to the right / columns, y down / rows, metres from the top-left corner)


class _Grid:
    """The fine grid in metres: its size and extent, how many objects its area gets, the coordinates
    of its pixel centres, and windows and rotated rectangles on it."""

    def __init__(self, height, width, pixel_size, factor):
        self.rows, self.cols = height * factor, width * factor
        self.px = pixel_size / factor                       # fine pixel size (m)
        self.width_m, self.height_m = self.cols * self.px, self.rows * self.px
        self.extent_m = max(self.width_m, self.height_m)
        self.area_m2 = self.width_m * self.height_m
        # object counts follow the area in m2, capped per fine pixel so that coarse-pixel scenes (large
        # extents) stay fast: they get fewer, still realistically sized, objects
        self.budget = self.rows * self.cols / float(1024 * 1024)
        self.xs = ((np.arange(self.cols) + 0.5) * self.px).astype(np.float32)[None, :]
        self.ys = ((np.arange(self.rows) + 0.5) * self.px).astype(np.float32)[:, None]

    @property
    def shape(self):
        return self.rows, self.cols

    def count(self, per_m2, cap_per_budget, lo=0):
        """How many objects of a kind: `per_m2` of the area, at most `cap_per_budget` per budget unit."""
        return max(lo, int(min(self.area_m2 * per_m2, cap_per_budget * self.budget)))

    def window(self, cx, cy, radius):
        """Row/column slices of the fine grid around a point, and the pixel-centre coordinates."""
        px = self.px
        r0 = max(0, int((cy - radius) / px))
        r1 = min(self.rows, int(np.ceil((cy + radius) / px)) + 1)
        c0 = max(0, int((cx - radius) / px))
        c1 = min(self.cols, int(np.ceil((cx + radius) / px)) + 1)
        if r0 >= r1 or c0 >= c1:
            return None
        ys = ((np.arange(r0, r1) + 0.5) * px)[:, None]
        xs = ((np.arange(c0, c1) + 0.5) * px)[None, :]
        return (slice(r0, r1), slice(c0, c1)), xs, ys

    def rect(self, cx, cy, length, depth, angle, margin=0.0):
        """Mask of a rotated rectangle (length along `angle`), optionally grown by `margin`."""
        rad = 0.5 * np.hypot(length, depth) + margin + self.px
        win = self.window(cx, cy, rad)
        if win is None:
            return None
        sl, xs, ys = win
        ca, sa = np.cos(angle), np.sin(angle)
        along = (xs - cx) * ca + (ys - cy) * sa
        across = -(xs - cx) * sa + (ys - cy) * ca
        m = (np.abs(along) <= length / 2 + margin) & (np.abs(across) <= depth / 2 + margin)
        return sl, m


def _polar(xs, ys, cx, cy):
    """Angle and distance of the points (xs, ys) seen from (cx, cy)."""
    return np.arctan2(ys - cy, xs - cx), np.hypot(xs - cx, ys - cy)


def _wobbly(radius, theta, harmonics):
    """Radius of a roundish outline at angles `theta`: `radius` modulated by (amplitude, order, phase)
    cosine harmonics, so patches, lakes and crowns are not circles."""
    shape = 1
    for amplitude, order, phase in harmonics:
        shape = shape + amplitude * np.cos(order * theta + phase)
    return radius * shape


def _polyline(points, step):
    """Resample a polyline at ~`step` metres; returns points (N, 2) and tangent angles (N,)."""
    pts = np.asarray(points, dtype=np.float64)
    seg = np.diff(pts, axis=0)
    seglen = np.hypot(seg[:, 0], seg[:, 1])
    s = np.concatenate([[0.0], np.cumsum(seglen)])
    t = np.arange(0.0, s[-1], step)
    x = np.interp(t, s, pts[:, 0])
    y = np.interp(t, s, pts[:, 1])
    ang = np.arctan2(np.gradient(y), np.gradient(x))
    return np.stack([x, y], axis=1), ang


def _line_through(p, angle, extent):
    d = np.array([np.cos(angle), np.sin(angle)])
    p = np.asarray(p, dtype=np.float64)
    return np.stack([p - d * extent, p + d * extent])


def _long_runs(flags, max_len):
    """Mask of the runs of True in a 1-D array that are longer than `max_len` samples."""
    out = np.zeros_like(flags)
    if not flags.any():
        return out
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    for s0, s1 in zip(starts, stops):
        if s1 - s0 > max_len:
            out[s0:s1] = True
    return out


def _bezier(p0, p1, p2, n=200):
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


# ---------------------------------------------------------------------------------------------------
# what is painted


class _Objects(list):
    """The scene's objects in painting order: an object's index is its value in `Layout.obj`."""

    def __init__(self, rng):
        super().__init__()
        self.rng = rng

    def add(self, cls, kind, variant=None, blend=None, height=0.0):
        """Append an object (a random variant of its class and blend unless given); returns its index."""
        if variant is None:
            variant = spectra.pick_variant(cls, self.rng)
        if blend is None:
            blend = float(self.rng.uniform(0.1, 0.5))
        self.append(SceneObject(cls, kind, variant, blend, height))
        return len(self) - 1


@dataclass
class _Layers:
    """The per-fine-pixel layers painted so far."""
    cls: np.ndarray             # class
    obj: np.ndarray             # object index
    height: np.ndarray = None   # metres above ground
    building: np.ndarray = None
    occupied: np.ndarray = None  # roads, water, lots and sports grounds: no building or ground on it

    def paint(self, sl, mask, cls, obj):
        """Give the pixels of `mask` (over the window `sl`) a class and an object."""
        self.cls[sl][mask] = cls
        self.obj[sl][mask] = obj


@dataclass
class _Water:
    dist: np.ndarray            # float32 signed distance to the shore (m), < 0 in the water
    mask: np.ndarray
    kind: str                   # "river" or "lake"
    width: float                # a river's mean width (m); 0 for a lake
    ground: np.ndarray          # terrain with the banks sloping down to the water


@dataclass
class _Road:
    points: np.ndarray          # (N, 2) centreline, sampled every `road_step` metres
    angles: np.ndarray          # (N,) tangent angles
    half_width: float
    has_trees: bool             # street trees on both sides


@dataclass
class _RoadRaster:
    """The roads on the fine grid: each pixel's distance to the nearest centreline, that centreline's
    half width, direction and road, and where it is."""
    dist: np.ndarray            # float32 m
    half_width: np.ndarray
    angle: np.ndarray
    near_row: np.ndarray        # the nearest centreline pixel
    near_col: np.ndarray
    road: np.ndarray            # index into the road list
    mask: np.ndarray            # on a road


class _Crown(NamedTuple):
    x: float
    y: float
    radius: float
    top: float                  # height of the crown's top above ground (m)
    obj: int


ROOF_PRIOR = {
    "house": {"red_tile": 0.6, "grey_concrete": 0.1, "metal_bright": 0.05, "bitumen": 0.25},
    "apartment": {"red_tile": 0.3, "grey_concrete": 0.35, "metal_bright": 0.1, "bitumen": 0.25},
    "industrial": {"red_tile": 0.05, "grey_concrete": 0.3, "metal_bright": 0.5, "bitumen": 0.15},
}


# ---------------------------------------------------------------------------------------------------
# the steps, in painting order (each draws from the one generator: their order fixes the scene of a seed)


def _terrain(rng, grid):
    """Gentle terrain, 30-40 m: two smooth fields (large and medium scale) scaled to a few metres."""
    terrain = (smooth_field(rng, grid.shape, max(8, grid.rows // 3))
               + 0.5 * smooth_field(rng, grid.shape, max(4, grid.rows // 8)))
    terrain = (terrain - terrain.min()) / max(float(np.ptp(terrain)), 1e-6)
    base = rng.uniform(30.0, 33.0)
    return (base + rng.uniform(3.0, 6.0) * terrain).astype(np.float32)


def _parcel_map(rng, grid, n_parcels):
    """Parcel index of each fine pixel: a Voronoi tessellation of random seeds, read through a smooth
    random warp so that parcel edges are not straight."""
    rows, cols = grid.shape
    not_seed = np.ones(grid.shape, dtype=bool)
    seed_rows = rng.integers(0, rows, n_parcels)
    seed_cols = rng.integers(0, cols, n_parcels)
    not_seed[seed_rows, seed_cols] = False
    seed_id = np.full(grid.shape, -1, dtype=np.int32)
    seed_id[seed_rows, seed_cols] = np.arange(n_parcels)
    _, (near_r, near_c) = ndimage.distance_transform_edt(not_seed, return_indices=True)
    warp = 6.0 / grid.px
    warp_r = np.clip(np.arange(rows)[:, None]
                     + (warp * smooth_field(rng, grid.shape, max(4, rows // 12))).astype(np.int32), 0, rows - 1)
    warp_c = np.clip(np.arange(cols)[None, :]
                     + (warp * smooth_field(rng, grid.shape, max(4, rows // 12))).astype(np.int32), 0, cols - 1)
    return seed_id[near_r[warp_r, warp_c], near_c[warp_r, warp_c]]


def _parcels(rng, grid, objects):
    """The ground cover everything else is painted over: parcels of grass (green or dry) and of bare
    soil (about 15 %, at least one). Returns the class and object layers."""
    n_parcels = grid.count(1.0 / rng.uniform(2500.0, 4500.0), 200, lo=6)
    parcel = _parcel_map(rng, grid, n_parcels)
    parcel_obj = np.empty(n_parcels, dtype=np.int32)
    soil = rng.random(n_parcels) < 0.15
    if not soil.any():
        soil[rng.integers(n_parcels)] = True
    for k in range(n_parcels):
        if soil[k]:
            parcel_obj[k] = objects.add(SOIL, "field")
        else:
            parcel_obj[k] = objects.add(LOW_VEG, "grass", blend=float(rng.uniform(0.2, 0.8)))
    return _Layers(cls=np.where(soil[parcel], SOIL, LOW_VEG).astype(np.uint8), obj=parcel_obj[parcel])


def _soil_patches(rng, grid, objects, layers):
    """Roundish bare patches in the grass (construction sites, bare spots, playgrounds)."""
    for _ in range(grid.count(1 / 30000.0, 20, lo=2)):
        cx, cy = rng.uniform(0, grid.width_m), rng.uniform(0, grid.height_m)
        radius = rng.uniform(8.0, 25.0)
        win = grid.window(cx, cy, 1.6 * radius)
        if win is None:
            continue
        sl, wx, wy = win
        theta, dist = _polar(wx, wy, cx, cy)
        edge = _wobbly(radius, theta, ((0.25, 2, rng.uniform(0, 6.3)), (0.15, 3, rng.uniform(0, 6.3))))
        m = (dist < edge) & (layers.cls[sl] == LOW_VEG)
        layers.paint(sl, m, SOIL, objects.add(SOIL, "patch"))


def _river(rng, grid):
    """Signed distance (m) to the banks of a meandering river (two sine meanders along a random axis,
    a slowly varying width) across the scene; and its mean width."""
    ext = grid.extent_m
    xs, ys = grid.xs, grid.ys
    theta = rng.uniform(0, np.pi)
    p0 = np.array([grid.width_m, grid.height_m]) / 2 + rng.uniform(-0.25, 0.25, 2) * ext
    axis = np.array([np.cos(theta), np.sin(theta)])
    normal = np.array([-axis[1], axis[0]])
    u = (xs - p0[0]) * axis[0] + (ys - p0[1]) * axis[1]
    v = (xs - p0[0]) * normal[0] + (ys - p0[1]) * normal[1]
    a1, l1, ph1 = rng.uniform(0.03, 0.09) * ext, rng.uniform(0.6, 1.4) * ext, rng.uniform(0, 6.3)
    a2, l2, ph2 = rng.uniform(0.0, 0.03) * ext, rng.uniform(0.2, 0.4) * ext, rng.uniform(0, 6.3)
    centre = a1 * np.sin(2 * np.pi * u / l1 + ph1) + a2 * np.sin(2 * np.pi * u / l2 + ph2)
    slope = (a1 * 2 * np.pi / l1) * np.cos(2 * np.pi * u / l1 + ph1) + (a2 * 2 * np.pi / l2) * np.cos(
        2 * np.pi * u / l2 + ph2)
    width = float(np.clip(rng.uniform(0.035, 0.07) * ext, 8.0, 60.0))
    half = 0.5 * width * (1 + 0.15 * np.sin(2 * np.pi * u / (0.5 * ext) + rng.uniform(0, 6.3)))
    # distance across the meander's local direction, not straight across the axis
    return (np.abs(v - centre) / np.sqrt(1 + slope ** 2) - half).astype(np.float32), width


def _lake(rng, grid):
    """Signed distance (m) to the shore of a roundish lake near the middle of the scene."""
    ext = grid.extent_m
    cx, cy = rng.uniform(0.25, 0.75) * grid.width_m, rng.uniform(0.25, 0.75) * grid.height_m
    radius = rng.uniform(0.08, 0.14) * ext
    theta, dist = _polar(grid.xs, grid.ys, cx, cy)
    edge = _wobbly(radius, theta, ((0.2, 2, rng.uniform(0, 6.3)), (0.1, 3, rng.uniform(0, 6.3)),
                                   (0.05, 5, rng.uniform(0, 6.3))))
    return (dist - edge).astype(np.float32)


def _water(rng, grid, objects, layers, terrain):
    """A river (60 %) or a lake, painted over the ground cover; the banks slope down to it."""
    if rng.random() < 0.6:
        dist, width = _river(rng, grid)
        kind = "river"
    else:
        dist, width = _lake(rng, grid), 0.0
        kind = "lake"
    mask = dist < 0
    o = objects.add(WATER, kind, blend=float(rng.uniform(0.2, 0.6)))
    layers.cls[mask] = WATER
    layers.obj[mask] = o
    bank = rng.uniform(1.5, 3.0)
    ground = terrain - (bank * np.exp(-np.clip(dist, 0, None) / 12.0)).astype(np.float32)
    ground[mask] = terrain[mask] - bank
    return _Water(dist=dist, mask=mask, kind=kind, width=width, ground=ground)


def _main_roads(rng, grid, district_c, grid_angle, step):
    """One or two long straight roads through the district, along (or across) its street grid."""
    roads = []
    for k in range(int(rng.integers(1, 3))):
        ang = grid_angle + (k * np.pi / 2) + rng.normal(0, 0.05)
        p = district_c + rng.uniform(-0.15, 0.15, 2) * grid.extent_m
        pts, angs = _polyline(_line_through(p, ang, 1.5 * grid.extent_m), step)
        roads.append(_Road(pts, angs, rng.uniform(5.0, 8.0), rng.random() < 0.6))
    return roads


def _street_grid(rng, grid, district_c, district_r, grid_angle, step):
    """Streets in a grid over the (round) district, broken at some crossings: a few segments dropped."""
    roads = []
    spacing_u, spacing_v = rng.uniform(70, 120), rng.uniform(50, 100)
    dir_u = np.array([np.cos(grid_angle), np.sin(grid_angle)])
    dir_v = np.array([-dir_u[1], dir_u[0]])
    for direction, normal, spacing in ((dir_u, dir_v, spacing_v), (dir_v, dir_u, spacing_u)):
        n_lines = int(2 * district_r / spacing) + 1
        for i in range(n_lines):
            off = -district_r + (i + rng.uniform(0.2, 0.8)) * spacing
            base = district_c + normal * off
            pts, angs = _polyline(np.stack([base - direction * district_r, base + direction * district_r]), step)
            inside = np.hypot(*(pts - district_c).T) < district_r * (0.85 + 0.15 * rng.random())
            # break the line into segments between crossings (the other direction's spacing) and drop a
            # few of them
            seg_len = rng.uniform(0.8, 1.2) * (spacing_u if spacing == spacing_v else spacing_v)
            seg_id = (np.hypot(*(pts - pts[0]).T) // seg_len).astype(int)
            keep_seg = rng.random(seg_id.max() + 1) > 0.18
            keep = inside & keep_seg[seg_id]
            if keep.sum() > 10:
                roads.append(_Road(pts[keep], angs[keep], rng.uniform(3.0, 4.5), rng.random() < 0.35))
    return roads


def _curved_road(rng, grid, step):
    """Often (80 %) a curved road from one side of the scene to the opposite one; else None."""
    if rng.random() >= 0.8:
        return None
    side = rng.integers(4)
    wm, hm = grid.width_m, grid.height_m
    corners = np.array([[0, 0], [wm, 0], [wm, hm], [0, hm]])
    a, b = corners[side], corners[(side + 1) % 4]
    c, d = corners[(side + 2) % 4], corners[(side + 3) % 4]
    p0 = a + rng.uniform(0.2, 0.8) * (b - a)
    p2 = c + rng.uniform(0.2, 0.8) * (d - c)
    p1 = np.array([rng.uniform(0, wm), rng.uniform(0, hm)])
    pts, angs = _polyline(_bezier(p0, p1, p2, 400), step)
    return _Road(pts, angs, rng.uniform(3.5, 6.0), rng.random() < 0.5)


def _road_network(rng, grid, step):
    """The district (a disc the street grid, most buildings and the gardens lie in) and the roads:
    main roads, the district's street grid, a curved road. Returns (centre, radius, roads)."""
    district_c = np.array([rng.uniform(0.3, 0.7) * grid.width_m, rng.uniform(0.3, 0.7) * grid.height_m])
    district_r = rng.uniform(0.35, 0.55) * grid.extent_m
    grid_angle = rng.uniform(0, np.pi)
    roads = _main_roads(rng, grid, district_c, grid_angle, step)
    roads += _street_grid(rng, grid, district_c, district_r, grid_angle, step)
    curved = _curved_road(rng, grid, step)
    if curved is not None:
        roads.append(curved)
    return district_c, district_r, roads


def _rasterise_roads(grid, roads, water, step):
    """Burn the centrelines into the fine grid and spread them by distance transform. A centreline's
    long runs over water are dropped: a road crosses a river on a bridge of at most
    max(40 m, 2.5 river widths) and never crosses a lake."""
    rows, cols = grid.shape
    not_centre = np.ones(grid.shape, dtype=bool)
    centre_half = np.zeros(grid.shape, dtype=np.float32)
    centre_ang = np.zeros(grid.shape, dtype=np.float32)
    centre_road = np.full(grid.shape, -1, dtype=np.int32)
    max_bridge_m = max(40.0, 2.5 * water.width) if water.kind == "river" else 0.0
    for index, road in enumerate(roads):
        r = (road.points[:, 1] / grid.px).astype(int)
        c = (road.points[:, 0] / grid.px).astype(int)
        ok = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
        wet = np.zeros(ok.shape, dtype=bool)
        wet[ok] = water.dist[r[ok], c[ok]] < 1.0
        ok &= ~_long_runs(wet, max_bridge_m / step)
        r, c = r[ok], c[ok]
        not_centre[r, c] = False
        centre_half[r, c] = road.half_width
        centre_ang[r, c] = road.angles[ok]
        centre_road[r, c] = index
    if not_centre.all():        # every road fell outside or in the water: one across the middle
        not_centre[rows // 2, :] = False
        centre_half[rows // 2, :] = 4.0
        centre_road[rows // 2, :] = 0
    dist, (near_r, near_c) = ndimage.distance_transform_edt(not_centre, return_indices=True)
    del not_centre
    dist = (dist * grid.px).astype(np.float32)
    half = centre_half[near_r, near_c]
    return _RoadRaster(dist=dist, half_width=half, angle=centre_ang[near_r, near_c], near_row=near_r,
                       near_col=near_c, road=centre_road[near_r, near_c], mask=dist <= half)


def _paint_roads(rng, objects, layers, raster, n_roads):
    """One pavement object per road that shows on the grid (asphalt, sometimes concrete)."""
    for index in range(n_roads):
        m = raster.mask & (raster.road == index)
        if m.any():
            o = objects.add(PAVEMENT, "road", variant="asphalt" if rng.random() < 0.85 else "concrete",
                            blend=float(rng.uniform(0.1, 0.4)))
            layers.cls[m] = PAVEMENT
            layers.obj[m] = o


def _building_kind(rng, urban):
    """A building type (more apartments in the district) and its length, depth and height (m)."""
    kind = rng.choice(["house", "apartment", "industrial"], p=[0.6, 0.3, 0.1] if urban else [0.75, 0.1, 0.15])
    if kind == "house":
        size = rng.uniform(8, 16), rng.uniform(8, 13), rng.uniform(5, 11)
    elif kind == "apartment":
        size = rng.uniform(18, 45), rng.uniform(10, 16), rng.uniform(10, 28)
    else:
        size = rng.uniform(30, 70), rng.uniform(18, 40), rng.uniform(6, 14)
    return kind, size


def _front_to_road(grid, raster, i, j, px, py, dist, half_width, depth, angle, setback):
    """Where a building drawn at (px, py) stands: pushed back from the nearest road to `setback` from
    its edge if it stood closer. Returns its centre, which side of the road it is on (+-1) and the
    road's normal there."""
    q = np.array([(raster.near_col[i, j] + 0.5) * grid.px, (raster.near_row[i, j] + 0.5) * grid.px])
    off = np.array([px, py]) - q
    normal = np.array([-np.sin(angle), np.cos(angle)])
    side = 1.0 if off @ normal >= 0 else -1.0
    if dist < half_width + setback + depth / 2:
        cx, cy = q + side * normal * (half_width + setback + depth / 2) + (off - (off @ normal) * normal)
    else:
        cx, cy = px, py
    return cx, cy, side, normal


def _wing(rng, cx, cy, length, depth, angle, side, normal):
    """The wing of an L-shaped building: at one end of the main part, running away from the road."""
    wing_len, wing_depth = rng.uniform(0.4, 0.8) * length, rng.uniform(0.8, 1.5) * depth
    shift = rng.choice([-1, 1]) * (length - wing_depth * 0.5) / 2
    ca, sa = np.cos(angle), np.sin(angle)
    reach = depth / 2 + wing_len / 2 - 1.0
    return (cx + shift * ca + side * normal[0] * reach, cy + shift * sa + side * normal[1] * reach,
            wing_depth, wing_len)


def _free_footprint(grid, layers, parts, angle, gap):
    """The masks of a building's parts, or None where one of them (grown by `gap`) leaves the grid or
    touches a road, water, a lot or another building."""
    masks = []
    for (x0, y0, l0, d0) in parts:
        big = grid.rect(x0, y0, l0, d0, angle, margin=gap)
        if big is None:
            return None
        sl, m = big
        if (m & (layers.occupied[sl] | layers.building[sl])).any():
            return None
        exact = grid.rect(x0, y0, l0, d0, angle)
        if exact is not None:
            masks.append(exact)
    return masks or None


def _try_building(rng, grid, objects, layers, raster, in_district, density):
    """One attempt at a building at a random point: near enough a road (closer outside the district,
    and only a third of the time there), not in a sparse area, oriented with the road (sometimes
    not), set back from it, maybe L-shaped, on free ground; larger ones may get a yard or parking lot
    behind them."""
    px, py = rng.uniform(0, grid.width_m), rng.uniform(0, grid.height_m)
    i, j = min(int(py / grid.px), grid.rows - 1), min(int(px / grid.px), grid.cols - 1)
    dist = float(raster.dist[i, j])
    half_width = float(raster.half_width[i, j])
    if dist > 75.0 or dist < half_width:
        return
    urban = bool(in_district[i, j])
    if not urban and (rng.random() > 0.35 or dist > 45.0):
        return
    if density[i, j] < -1.0:
        return
    kind, (length, depth, height) = _building_kind(rng, urban)
    angle = float(raster.angle[i, j]) + (rng.normal(0, 0.03) if rng.random() > 0.1 else rng.uniform(0, np.pi))
    setback = rng.uniform(3.0, 10.0)
    cx, cy, side, normal = _front_to_road(grid, raster, i, j, px, py, dist, half_width, depth, angle, setback)
    gap = rng.uniform(2.0, 5.0)
    parts = [(cx, cy, length, depth)]
    if kind != "house" and rng.random() < 0.35:   # an L-shaped wing
        parts.append(_wing(rng, cx, cy, length, depth, angle, side, normal))
    masks = _free_footprint(grid, layers, parts, angle, gap)
    if masks is None:
        return
    o = objects.add(ROOF, str(kind), variant=spectra.pick_variant_from(ROOF_PRIOR[kind], rng),
                    blend=float(rng.uniform(0.05, 0.3)), height=float(height))
    for sl, m in masks:
        layers.building[sl] |= m
        layers.paint(sl, m, ROOF, o)
        layers.height[sl][m] = height
    # yard / parking lot behind larger buildings
    if kind != "house" and rng.random() < 0.5:
        lx, ly = np.array([cx, cy]) + side * normal * (depth / 2 + 2.0 + depth * 0.6)
        lot = grid.rect(lx, ly, length * rng.uniform(0.7, 1.2), depth * 1.1, angle)
        if lot is not None:
            sl, m = lot
            m = m & ~layers.occupied[sl] & ~layers.building[sl]
            o = objects.add(PAVEMENT, "lot", variant="asphalt" if rng.random() < 0.6 else "concrete",
                            blend=float(rng.uniform(0.05, 0.3)))
            layers.paint(sl, m, PAVEMENT, o)
            layers.occupied[sl] |= m


def _buildings(rng, grid, objects, layers, raster, in_district):
    """Buildings along the roads, oriented with them, thinned out where a smooth density field is low;
    some with a yard or parking lot."""
    n_try = grid.count(1 / 45.0, 8000)
    density = smooth_field(rng, grid.shape, max(4, grid.rows // 6))
    for _ in range(n_try):
        _try_building(rng, grid, objects, layers, raster, in_district, density)


def _sports_grounds(rng, grid, objects, layers):
    """A few sports grounds (one more in large scenes) on free land: up to 30 tries each."""
    for _ in range(int(rng.integers(0, 3)) + (1 if grid.area_m2 > 100000 else 0)):
        for _try in range(30):
            cx, cy = rng.uniform(0, grid.width_m), rng.uniform(0, grid.height_m)
            length, depth, angle = rng.uniform(30, 60), rng.uniform(18, 35), rng.uniform(0, np.pi)
            big = grid.rect(cx, cy, length, depth, angle, margin=3.0)
            if big is None or (big[1] & (layers.occupied[big[0]] | layers.building[big[0]])).any():
                continue
            sl, m = grid.rect(cx, cy, length, depth, angle)
            layers.paint(sl, m, PAVEMENT, objects.add(PAVEMENT, "sports", variant="red_surface", blend=0.1))
            layers.occupied[sl] |= m
            break


def _street_trees(rng, grid, objects, layers, roads, water, raster, step):
    """Rows of street trees on both sides of the roads that have them, one object per row, where the
    spot is not on a building, water or a road."""
    crowns = []
    for road in roads:
        if not road.has_trees:
            continue
        spacing = rng.uniform(8.0, 14.0)
        every = max(1, int(spacing / step))
        for sign in (-1.0, 1.0):
            o = objects.add(TREE, "street", variant="deciduous", blend=float(rng.uniform(0.1, 0.4)))
            top = rng.uniform(7, 15)
            radius = rng.uniform(2.5, 4.5)
            sel = np.arange(0, len(road.points), every)
            normal = np.stack([-np.sin(road.angles[sel]), np.cos(road.angles[sel])], axis=1)
            pos = road.points[sel] + sign * normal * (road.half_width + rng.uniform(1.0, 3.0, (sel.size, 1)))
            radii = radius * rng.uniform(0.85, 1.15, sel.size)
            tops = np.clip(top + rng.normal(0, 1.0, sel.size), 5, 20)
            ti, tj = (pos[:, 1] / grid.px).astype(int), (pos[:, 0] / grid.px).astype(int)
            inside = (ti >= 0) & (ti < grid.rows) & (tj >= 0) & (tj < grid.cols)
            ti, tj = np.clip(ti, 0, grid.rows - 1), np.clip(tj, 0, grid.cols - 1)
            free = inside & ~layers.building[ti, tj] & ~water.mask[ti, tj] & ~raster.mask[ti, tj]
            for (tx, ty), r, h in zip(pos[free], radii[free], tops[free]):
                crowns.append(_Crown(float(tx), float(ty), float(r), float(h), o))
    return crowns


def _tree_cluster(rng, objects, cx, cy, n, spread, r_lo, r_hi, h_lo, h_hi, kind):
    """`n` crowns scattered (Gaussian, `spread` m) around a point, one object, heights around a
    common top."""
    o = objects.add(TREE, kind, blend=float(rng.uniform(0.1, 0.5)))
    top = rng.uniform(h_lo, h_hi)
    crowns = []
    for _ in range(n):
        tx, ty = cx + rng.normal(0, spread), cy + rng.normal(0, spread)
        crowns.append(_Crown(tx, ty, rng.uniform(r_lo, r_hi), float(np.clip(top + rng.normal(0, 1.5), 5, 20)), o))
    return crowns


def _parks_and_woods(rng, grid, objects, layers):
    """Clusters of trees in parks and, in large scenes, one or two small woods, centred on grass or
    soil where one of 20 tries finds it (else on the last try)."""
    crowns = []
    n_parks = grid.count(1 / 9000.0, 60, lo=3)
    n_woods = int(rng.integers(1, 3)) if grid.area_m2 > 60000 else 0
    for k in range(n_parks + n_woods):
        for _try in range(20):
            cx, cy = rng.uniform(0, grid.width_m), rng.uniform(0, grid.height_m)
            i, j = int(cy / grid.px), int(cx / grid.px)
            if layers.cls[i, j] in (LOW_VEG, SOIL) and not layers.building[i, j]:
                break
        if k < n_parks:
            crowns += _tree_cluster(rng, objects, cx, cy, int(rng.integers(8, 50)), rng.uniform(8, 28),
                                    2.0, 6.0, 8, 20, "park")
        else:   # a small wood
            crowns += _tree_cluster(rng, objects, cx, cy, int(rng.integers(80, 160)), rng.uniform(20, 40),
                                    3.0, 6.0, 12, 20, "wood")
    return crowns


def _riparian_trees(rng, grid, objects, layers, water, raster):
    """Trees along the shore (1-6 m from the water, off roads and buildings), one object."""
    shore = np.flatnonzero(((water.dist > 1.0) & (water.dist < 6.0) & ~raster.mask & ~layers.building).ravel())
    if not shore.size:
        return []
    picks = rng.choice(shore, size=min(shore.size, max(3, int(np.sqrt(shore.size) * grid.px * 0.8))), replace=False)
    o = objects.add(TREE, "riparian", blend=float(rng.uniform(0.1, 0.5)))
    crowns = []
    for p in np.sort(picks):
        i, j = divmod(int(p), grid.cols)
        crowns.append(_Crown((j + 0.5) * grid.px, (i + 0.5) * grid.px, rng.uniform(2.5, 5.5), rng.uniform(6, 16), o))
    return crowns


def _garden_trees(rng, grid, objects, layers, in_district):
    """Single trees on the grass of the district (gardens), all one object."""
    garden = objects.add(TREE, "garden", blend=float(rng.uniform(0.1, 0.5)))
    crowns = []
    for _ in range(grid.count(1 / 3000.0, 180)):
        cx, cy = rng.uniform(0, grid.width_m), rng.uniform(0, grid.height_m)
        i, j = int(cy / grid.px), int(cx / grid.px)
        if in_district[i, j] and layers.cls[i, j] == LOW_VEG:
            crowns.append(_Crown(cx, cy, rng.uniform(2.0, 4.0), rng.uniform(5, 10), garden))
    return crowns


def _thin_crowns(rng, grid, crowns):
    """Very large extents: keep a random subset of the crowns (in their order) so painting stays fast."""
    max_crowns = int(6000 * grid.budget) + 500
    if len(crowns) <= max_crowns:
        return crowns
    keep = np.sort(rng.choice(len(crowns), size=max_crowns, replace=False))
    return [crowns[i] for i in keep]


def _paint_crowns(grid, layers, crowns):
    """Paint each crown as a dome (a paraboloid, slightly lobed outline) wherever it is higher than what
    is there already, never over a roof."""
    for crown in crowns:
        win = grid.window(crown.x, crown.y, crown.radius * 1.25)
        if win is None:
            continue
        sl, wx, wy = win
        theta, dist = _polar(wx, wy, crown.x, crown.y)
        rr = dist / _wobbly(crown.radius, theta, ((0.12, 3, (crown.x * 7.31) % 6.28),))
        depth = min(0.6 * crown.top, 1.2 * crown.radius)
        surface = (crown.top - depth * rr ** 2).astype(np.float32)
        m = (rr < 1.0) & ~layers.building[sl] & (surface > layers.height[sl])
        layers.paint(sl, m, TREE, crown.obj)
        layers.height[sl][m] = surface[m]


# ---------------------------------------------------------------------------------------------------
# the layout


def make_layout(rng: np.random.Generator, height: int, width: int, pixel_size: float, factor: int = 4) -> Layout:
    """A procedural landscape of `height` x `width` output pixels of `pixel_size` m, painted on a grid
    `factor` times finer. Everything follows from `rng` (the steps draw from it in a fixed order)."""
    grid = _Grid(height, width, pixel_size, factor)
    objects = _Objects(rng)
    road_step = grid.px * 0.7       # centreline sampling: finer than a fine pixel, so lines have no gaps

    terrain = _terrain(rng, grid)
    layers = _parcels(rng, grid, objects)
    _soil_patches(rng, grid, objects, layers)
    water = _water(rng, grid, objects, layers, terrain)

    district_c, district_r, roads = _road_network(rng, grid, road_step)
    raster = _rasterise_roads(grid, roads, water, road_step)
    _paint_roads(rng, objects, layers, raster, len(roads))
    layers.height = np.zeros(grid.shape, dtype=np.float32)
    bridge = raster.mask & water.mask
    layers.height[bridge] = (terrain - water.ground)[bridge] + 0.5
    layers.occupied = raster.mask | water.mask
    layers.building = np.zeros(grid.shape, dtype=bool)
    in_district = (np.hypot(grid.xs - district_c[0], grid.ys - district_c[1]) < district_r * 1.05)

    _buildings(rng, grid, objects, layers, raster, in_district)
    _sports_grounds(rng, grid, objects, layers)

    crowns = _street_trees(rng, grid, objects, layers, roads, water, raster, road_step)
    crowns += _parks_and_woods(rng, grid, objects, layers)
    crowns += _riparian_trees(rng, grid, objects, layers, water, raster)
    crowns += _garden_trees(rng, grid, objects, layers, in_district)
    _paint_crowns(grid, layers, _thin_crowns(rng, grid, crowns))

    return Layout(factor=factor, fine_px=grid.px, cls=layers.cls, obj=layers.obj.astype(np.int32),
                  height=layers.height, ground=water.ground, building=layers.building, objects=list(objects))
