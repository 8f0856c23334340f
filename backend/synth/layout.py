"""The landscape of a synthetic scene, drawn on a fine (supersampled) grid.

A layout is a set of objects (a parcel of grass, a field of bare soil, a river, a road, a building,
a cluster of trees, ...) painted in order onto a fine grid `factor` times finer than the output
pixels: each fine pixel knows its class, its object and its height above ground, and the terrain
height under it. Geometry is in metres, so buildings, roads and crowns keep realistic sizes whatever
the output pixel size.

Painting order (later wins): parcels of grass / soil -> soil patches -> water -> roads (bridges over
a river) -> paved lots and sports grounds -> buildings -> tree crowns (not over roofs).
"""

from dataclasses import dataclass, field

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


class _Canvas:
    def __init__(self, fh, fw, pf):
        self.fh, self.fw, self.pf = fh, fw, pf

    def window(self, cx, cy, radius):
        """Row/column slices of the fine grid around a point, and the pixel-centre coordinates."""
        pf = self.pf
        r0 = max(0, int((cy - radius) / pf))
        r1 = min(self.fh, int(np.ceil((cy + radius) / pf)) + 1)
        c0 = max(0, int((cx - radius) / pf))
        c1 = min(self.fw, int(np.ceil((cx + radius) / pf)) + 1)
        if r0 >= r1 or c0 >= c1:
            return None
        ys = ((np.arange(r0, r1) + 0.5) * pf)[:, None]
        xs = ((np.arange(c0, c1) + 0.5) * pf)[None, :]
        return (slice(r0, r1), slice(c0, c1)), xs, ys

    def rect(self, cx, cy, length, depth, angle, margin=0.0):
        """Mask of a rotated rectangle (length along `angle`), optionally grown by `margin`."""
        rad = 0.5 * np.hypot(length, depth) + margin + self.pf
        win = self.window(cx, cy, rad)
        if win is None:
            return None
        sl, xs, ys = win
        ca, sa = np.cos(angle), np.sin(angle)
        du = (xs - cx) * ca + (ys - cy) * sa
        dv = -(xs - cx) * sa + (ys - cy) * ca
        m = (np.abs(du) <= length / 2 + margin) & (np.abs(dv) <= depth / 2 + margin)
        return sl, m


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
# the layout


def make_layout(rng, height, width, pixel_size, factor=4):
    fh, fw = height * factor, width * factor
    pf = pixel_size / factor
    wm, hm = fw * pf, fh * pf
    ext = max(wm, hm)
    area = wm * hm
    # object counts follow the area in m2, capped per fine pixel so that coarse-pixel scenes (large
    # extents) stay fast: they get fewer, still realistically sized, objects
    budget = fh * fw / float(1024 * 1024)

    def count(per_m2, cap_per_budget, lo=0):
        return max(lo, int(min(area * per_m2, cap_per_budget * budget)))
    cv = _Canvas(fh, fw, pf)
    objects = []

    def new_object(cls, kind, variant=None, blend=None, height=0.0):
        if variant is None:
            variant = spectra.pick_variant(cls, rng)
        if blend is None:
            blend = float(rng.uniform(0.1, 0.5))
        objects.append(SceneObject(cls, kind, variant, blend, height))
        return len(objects) - 1

    xs = ((np.arange(fw) + 0.5) * pf).astype(np.float32)[None, :]
    ys = ((np.arange(fh) + 0.5) * pf).astype(np.float32)[:, None]

    # terrain: gentle, 30-40 m
    terrain = smooth_field(rng, (fh, fw), max(8, fh // 3)) + 0.5 * smooth_field(rng, (fh, fw), max(4, fh // 8))
    terrain = (terrain - terrain.min()) / max(float(np.ptp(terrain)), 1e-6)
    z0 = rng.uniform(30.0, 33.0)
    terrain = (z0 + rng.uniform(3.0, 6.0) * terrain).astype(np.float32)

    # 1) parcels of grass (green or dry) and bare soil: a warped Voronoi tessellation
    n_parcels = count(1.0 / rng.uniform(2500.0, 4500.0), 200, lo=6)
    seeds = np.ones((fh, fw), dtype=bool)
    sr = rng.integers(0, fh, n_parcels)
    sc = rng.integers(0, fw, n_parcels)
    seeds[sr, sc] = False
    seed_id = np.full((fh, fw), -1, dtype=np.int32)
    seed_id[sr, sc] = np.arange(n_parcels)
    _, (ir, ic) = ndimage.distance_transform_edt(seeds, return_indices=True)
    warp = 6.0 / pf
    wr = np.clip(np.arange(fh)[:, None] + (warp * smooth_field(rng, (fh, fw), max(4, fh // 12))).astype(np.int32), 0, fh - 1)
    wc = np.clip(np.arange(fw)[None, :] + (warp * smooth_field(rng, (fh, fw), max(4, fh // 12))).astype(np.int32), 0, fw - 1)
    parcel = seed_id[ir[wr, wc], ic[wr, wc]]
    del ir, ic, wr, wc, seeds
    parcel_obj = np.empty(n_parcels, dtype=np.int32)
    soil_parcels = rng.random(n_parcels) < 0.15
    if not soil_parcels.any():
        soil_parcels[rng.integers(n_parcels)] = True
    for k in range(n_parcels):
        if soil_parcels[k]:
            parcel_obj[k] = new_object(SOIL, "field")
        else:
            parcel_obj[k] = new_object(LOW_VEG, "grass", blend=float(rng.uniform(0.2, 0.8)))
    obj = parcel_obj[parcel]
    cls = np.where(soil_parcels[parcel], SOIL, LOW_VEG).astype(np.uint8)
    del parcel

    # 2) soil patches (construction sites, bare spots, playgrounds)
    for _ in range(count(1 / 30000.0, 20, lo=2)):
        cx, cy = rng.uniform(0, wm), rng.uniform(0, hm)
        r0 = rng.uniform(8.0, 25.0)
        win = cv.window(cx, cy, 1.6 * r0)
        if win is None:
            continue
        sl, wx, wy = win
        th = np.arctan2(wy - cy, wx - cx)
        rr = np.hypot(wx - cx, wy - cy)
        edge = r0 * (1 + 0.25 * np.cos(2 * th + rng.uniform(0, 6.3)) + 0.15 * np.cos(3 * th + rng.uniform(0, 6.3)))
        m = (rr < edge) & (cls[sl] == LOW_VEG)
        o = new_object(SOIL, "patch")
        cls[sl][m] = SOIL
        obj[sl][m] = o

    # 3) water: a meandering river or a lake; the banks slope down to it
    if rng.random() < 0.6:
        theta = rng.uniform(0, np.pi)
        p0 = np.array([wm, hm]) / 2 + rng.uniform(-0.25, 0.25, 2) * ext
        d = np.array([np.cos(theta), np.sin(theta)])
        n = np.array([-d[1], d[0]])
        u = (xs - p0[0]) * d[0] + (ys - p0[1]) * d[1]
        v = (xs - p0[0]) * n[0] + (ys - p0[1]) * n[1]
        a1, l1, ph1 = rng.uniform(0.03, 0.09) * ext, rng.uniform(0.6, 1.4) * ext, rng.uniform(0, 6.3)
        a2, l2, ph2 = rng.uniform(0.0, 0.03) * ext, rng.uniform(0.2, 0.4) * ext, rng.uniform(0, 6.3)
        vc = a1 * np.sin(2 * np.pi * u / l1 + ph1) + a2 * np.sin(2 * np.pi * u / l2 + ph2)
        dvc = (a1 * 2 * np.pi / l1) * np.cos(2 * np.pi * u / l1 + ph1) + (a2 * 2 * np.pi / l2) * np.cos(2 * np.pi * u / l2 + ph2)
        w0 = float(np.clip(rng.uniform(0.035, 0.07) * ext, 8.0, 60.0))
        half = 0.5 * w0 * (1 + 0.15 * np.sin(2 * np.pi * u / (0.5 * ext) + rng.uniform(0, 6.3)))
        wdist = (np.abs(v - vc) / np.sqrt(1 + dvc ** 2) - half).astype(np.float32)  # <0 inside
        water_kind = "river"
    else:
        cx, cy = rng.uniform(0.25, 0.75) * wm, rng.uniform(0.25, 0.75) * hm
        r0 = rng.uniform(0.08, 0.14) * ext
        th = np.arctan2(ys - cy, xs - cx)
        edge = r0 * (1 + 0.2 * np.cos(2 * th + rng.uniform(0, 6.3)) + 0.1 * np.cos(3 * th + rng.uniform(0, 6.3))
                     + 0.05 * np.cos(5 * th + rng.uniform(0, 6.3)))
        wdist = (np.hypot(xs - cx, ys - cy) - edge).astype(np.float32)
        water_kind = "lake"
        w0 = 0.0
    water = wdist < 0
    o = new_object(WATER, water_kind, blend=float(rng.uniform(0.2, 0.6)))
    cls[water] = WATER
    obj[water] = o
    bank = rng.uniform(1.5, 3.0)
    ground = terrain - (bank * np.exp(-np.clip(wdist, 0, None) / 12.0)).astype(np.float32)
    ground[water] = terrain[water] - bank

    # 4) roads: main roads, a street grid in a district, a curved road; bridges over a river
    district_c = np.array([rng.uniform(0.3, 0.7) * wm, rng.uniform(0.3, 0.7) * hm])
    district_r = rng.uniform(0.35, 0.55) * ext
    roads = []   # (points, angles, half width, has street trees)
    grid_angle = rng.uniform(0, np.pi)
    step = pf * 0.7
    for k in range(int(rng.integers(1, 3))):
        ang = grid_angle + (k * np.pi / 2) + rng.normal(0, 0.05)
        p = district_c + rng.uniform(-0.15, 0.15, 2) * ext
        pts, angs = _polyline(_line_through(p, ang, 1.5 * ext), step)
        roads.append((pts, angs, rng.uniform(5.0, 8.0), rng.random() < 0.6))
    sp_u, sp_v = rng.uniform(70, 120), rng.uniform(50, 100)
    du_ = np.array([np.cos(grid_angle), np.sin(grid_angle)])
    dv_ = np.array([-du_[1], du_[0]])
    for direction, normal, spacing in ((du_, dv_, sp_v), (dv_, du_, sp_u)):
        n_lines = int(2 * district_r / spacing) + 1
        for i in range(n_lines):
            off = -district_r + (i + rng.uniform(0.2, 0.8)) * spacing
            base = district_c + normal * off
            pts, angs = _polyline(np.stack([base - direction * district_r, base + direction * district_r]), step)
            inside = np.hypot(*(pts - district_c).T) < district_r * (0.85 + 0.15 * rng.random())
            # break the line into segments between crossings and drop a few of them
            seg_len = rng.uniform(0.8, 1.2) * (sp_u if spacing == sp_v else sp_v)
            seg_id = (np.hypot(*(pts - pts[0]).T) // seg_len).astype(int)
            keep_seg = rng.random(seg_id.max() + 1) > 0.18
            keep = inside & keep_seg[seg_id]
            if keep.sum() > 10:
                roads.append((pts[keep], angs[keep], rng.uniform(3.0, 4.5), rng.random() < 0.35))
    if rng.random() < 0.8:
        side = rng.integers(4)
        corners = np.array([[0, 0], [wm, 0], [wm, hm], [0, hm]])
        a_, b_ = corners[side], corners[(side + 1) % 4]
        c_, d_ = corners[(side + 2) % 4], corners[(side + 3) % 4]
        p0 = a_ + rng.uniform(0.2, 0.8) * (b_ - a_)
        p2 = c_ + rng.uniform(0.2, 0.8) * (d_ - c_)
        p1 = np.array([rng.uniform(0, wm), rng.uniform(0, hm)])
        pts, angs = _polyline(_bezier(p0, p1, p2, 400), step)
        roads.append((pts, angs, rng.uniform(3.5, 6.0), rng.random() < 0.5))

    centre = np.ones((fh, fw), dtype=bool)
    cl_half = np.zeros((fh, fw), dtype=np.float32)
    cl_ang = np.zeros((fh, fw), dtype=np.float32)
    cl_road = np.full((fh, fw), -1, dtype=np.int32)
    for ri, (pts, angs, hw, _) in enumerate(roads):
        r = (pts[:, 1] / pf).astype(int)
        c = (pts[:, 0] / pf).astype(int)
        ok = (r >= 0) & (r < fh) & (c >= 0) & (c < fw)
        wet = np.zeros(ok.shape, dtype=bool)
        wet[ok] = wdist[r[ok], c[ok]] < 1.0
        ok &= ~_long_runs(wet, (max(40.0, 2.5 * w0) if water_kind == "river" else 0.0) / step)
        r, c = r[ok], c[ok]
        centre[r, c] = False
        cl_half[r, c] = hw
        cl_ang[r, c] = angs[ok]
        cl_road[r, c] = ri
    if centre.all():
        centre[fh // 2, :] = False
        cl_half[fh // 2, :] = 4.0
        cl_road[fh // 2, :] = 0
    rdist, (nr, nc) = ndimage.distance_transform_edt(centre, return_indices=True)
    rdist = (rdist * pf).astype(np.float32)
    road_half = cl_half[nr, nc]
    road_ang = cl_ang[nr, nc]
    road = rdist <= road_half
    del centre
    road_objs = {}
    for ri in range(len(roads)):
        m = road & (cl_road[nr, nc] == ri)
        if m.any():
            road_objs[ri] = new_object(PAVEMENT, "road", variant="asphalt" if rng.random() < 0.85 else "concrete",
                                       blend=float(rng.uniform(0.1, 0.4)))
            cls[m] = PAVEMENT
            obj[m] = road_objs[ri]
    height = np.zeros((fh, fw), dtype=np.float32)
    bridge = road & water
    height[bridge] = (terrain - ground)[bridge] + 0.5

    occupied = road | water
    building = np.zeros((fh, fw), dtype=bool)
    in_district = (np.hypot(xs - district_c[0], ys - district_c[1]) < district_r * 1.05)

    # 5) buildings along the roads, oriented with them; some with a yard or parking lot
    n_try = count(1 / 45.0, 8000)
    roof_prior = {
        "house": {"red_tile": 0.6, "grey_concrete": 0.1, "metal_bright": 0.05, "bitumen": 0.25},
        "apartment": {"red_tile": 0.3, "grey_concrete": 0.35, "metal_bright": 0.1, "bitumen": 0.25},
        "industrial": {"red_tile": 0.05, "grey_concrete": 0.3, "metal_bright": 0.5, "bitumen": 0.15},
    }
    dens = smooth_field(rng, (fh, fw), max(4, fh // 6))
    for _ in range(n_try):
        px, py = rng.uniform(0, wm), rng.uniform(0, hm)
        i, j = min(int(py / pf), fh - 1), min(int(px / pf), fw - 1)
        d = float(rdist[i, j])
        hw = float(road_half[i, j])
        if d > 75.0 or d < hw:
            continue
        urban = bool(in_district[i, j])
        if not urban and (rng.random() > 0.35 or d > 45.0):
            continue
        if dens[i, j] < -1.0:
            continue
        kind = rng.choice(["house", "apartment", "industrial"],
                          p=[0.6, 0.3, 0.1] if urban else [0.75, 0.1, 0.15])
        if kind == "house":
            ln, dp, ht = rng.uniform(8, 16), rng.uniform(8, 13), rng.uniform(5, 11)
        elif kind == "apartment":
            ln, dp, ht = rng.uniform(18, 45), rng.uniform(10, 16), rng.uniform(10, 28)
        else:
            ln, dp, ht = rng.uniform(30, 70), rng.uniform(18, 40), rng.uniform(6, 14)
        ang = float(road_ang[i, j]) + (rng.normal(0, 0.03) if rng.random() > 0.1 else rng.uniform(0, np.pi))
        setback = rng.uniform(3.0, 10.0)
        qr, qc = nr[i, j], nc[i, j]
        q = np.array([(qc + 0.5) * pf, (qr + 0.5) * pf])
        off = np.array([px, py]) - q
        nvec = np.array([-np.sin(ang), np.cos(ang)])
        side = 1.0 if off @ nvec >= 0 else -1.0
        if d < hw + setback + dp / 2:
            cx, cy = q + side * nvec * (hw + setback + dp / 2) + (off - (off @ nvec) * nvec)
        else:
            cx, cy = px, py
        gap = rng.uniform(2.0, 5.0)
        parts = [(cx, cy, ln, dp)]
        if kind != "house" and rng.random() < 0.35:   # an L-shaped wing
            wl_, wd_ = rng.uniform(0.4, 0.8) * ln, rng.uniform(0.8, 1.5) * dp
            su = rng.choice([-1, 1]) * (ln - wd_ * 0.5) / 2
            ca, sa = np.cos(ang), np.sin(ang)
            reach = dp / 2 + wl_ / 2 - 1.0          # the wing runs away from the road
            parts.append((cx + su * ca + side * nvec[0] * reach, cy + su * sa + side * nvec[1] * reach,
                          wd_, wl_))
        masks = []
        ok = True
        for (x0, y0, l0, d0) in parts:
            big = cv.rect(x0, y0, l0, d0, ang, margin=gap)
            if big is None:
                ok = False
                break
            sl, m = big
            if (m & (occupied[sl] | building[sl])).any():
                ok = False
                break
            exact = cv.rect(x0, y0, l0, d0, ang)
            if exact is not None:
                masks.append(exact)
        if not ok or not masks:
            continue
        o = new_object(ROOF, str(kind), variant=spectra.pick_variant_from(roof_prior[kind], rng),
                       blend=float(rng.uniform(0.05, 0.3)), height=float(ht))
        for sl, m in masks:
            building[sl] |= m
            cls[sl][m] = ROOF
            obj[sl][m] = o
            height[sl][m] = ht
        # yard / parking lot behind larger buildings
        if kind != "house" and rng.random() < 0.5:
            lx, ly = np.array([cx, cy]) + side * nvec * (dp / 2 + 2.0 + dp * 0.6)
            lot = cv.rect(lx, ly, ln * rng.uniform(0.7, 1.2), dp * 1.1, ang)
            if lot is not None:
                sl, m = lot
                m = m & ~occupied[sl] & ~building[sl]
                lo = new_object(PAVEMENT, "lot", variant="asphalt" if rng.random() < 0.6 else "concrete",
                                blend=float(rng.uniform(0.05, 0.3)))
                cls[sl][m] = PAVEMENT
                obj[sl][m] = lo
                occupied[sl] |= m

    # sports grounds in open land
    for _ in range(int(rng.integers(0, 3)) + (1 if area > 100000 else 0)):
        for _try in range(30):
            cx, cy = rng.uniform(0, wm), rng.uniform(0, hm)
            ln, dp, ang = rng.uniform(30, 60), rng.uniform(18, 35), rng.uniform(0, np.pi)
            big = cv.rect(cx, cy, ln, dp, ang, margin=3.0)
            if big is None or (big[1] & (occupied[big[0]] | building[big[0]])).any():
                continue
            sl, m = cv.rect(cx, cy, ln, dp, ang)
            o = new_object(PAVEMENT, "sports", variant="red_surface", blend=0.1)
            cls[sl][m] = PAVEMENT
            obj[sl][m] = o
            occupied[sl] |= m
            break

    # 6) trees: street rows, park clusters, along the water, single garden trees
    crowns = []   # (cx, cy, radius, top height, object)

    def add_cluster(cx, cy, n, spread, r_lo, r_hi, h_lo, h_hi, kind):
        o = new_object(TREE, kind, blend=float(rng.uniform(0.1, 0.5)))
        htop = rng.uniform(h_lo, h_hi)
        for _ in range(n):
            tx, ty = cx + rng.normal(0, spread), cy + rng.normal(0, spread)
            crowns.append((tx, ty, rng.uniform(r_lo, r_hi), float(np.clip(htop + rng.normal(0, 1.5), 5, 20)), o))

    for ri, (pts, angs, hw, trees_on) in enumerate(roads):
        if not trees_on:
            continue
        spacing = rng.uniform(8.0, 14.0)
        every = max(1, int(spacing / step))
        for sgn in (-1.0, 1.0):
            o = new_object(TREE, "street", variant="deciduous", blend=float(rng.uniform(0.1, 0.4)))
            htop = rng.uniform(7, 15)
            rad = rng.uniform(2.5, 4.5)
            sel = np.arange(0, len(pts), every)
            nvec = np.stack([-np.sin(angs[sel]), np.cos(angs[sel])], axis=1)
            tpos = pts[sel] + sgn * nvec * (hw + rng.uniform(1.0, 3.0, (sel.size, 1)))
            radii = rad * rng.uniform(0.85, 1.15, sel.size)
            tops = np.clip(htop + rng.normal(0, 1.0, sel.size), 5, 20)
            ti, tj = (tpos[:, 1] / pf).astype(int), (tpos[:, 0] / pf).astype(int)
            inside = (ti >= 0) & (ti < fh) & (tj >= 0) & (tj < fw)
            ti, tj = np.clip(ti, 0, fh - 1), np.clip(tj, 0, fw - 1)
            free = inside & ~building[ti, tj] & ~water[ti, tj] & ~road[ti, tj]
            for (tx, ty), r_, h_ in zip(tpos[free], radii[free], tops[free]):
                crowns.append((float(tx), float(ty), float(r_), float(h_), o))
    n_parks = count(1 / 9000.0, 60, lo=3)
    n_woods = int(rng.integers(1, 3)) if area > 60000 else 0
    for k in range(n_parks + n_woods):
        for _try in range(20):
            cx, cy = rng.uniform(0, wm), rng.uniform(0, hm)
            i, j = int(cy / pf), int(cx / pf)
            if cls[i, j] in (LOW_VEG, SOIL) and not building[i, j]:
                break
        if k < n_parks:
            add_cluster(cx, cy, int(rng.integers(8, 50)), rng.uniform(8, 28), 2.0, 6.0, 8, 20, "park")
        else:   # a small wood
            add_cluster(cx, cy, int(rng.integers(80, 160)), rng.uniform(20, 40), 3.0, 6.0, 12, 20, "wood")
    shore = np.flatnonzero(((wdist > 1.0) & (wdist < 6.0) & ~road & ~building).ravel())
    if shore.size:
        picks = rng.choice(shore, size=min(shore.size, max(3, int(np.sqrt(shore.size) * pf * 0.8))), replace=False)
        o = new_object(TREE, "riparian", blend=float(rng.uniform(0.1, 0.5)))
        for p in np.sort(picks):
            i, j = divmod(int(p), fw)
            crowns.append(((j + 0.5) * pf, (i + 0.5) * pf, rng.uniform(2.5, 5.5), rng.uniform(6, 16), o))
    garden = new_object(TREE, "garden", blend=float(rng.uniform(0.1, 0.5)))
    for _ in range(count(1 / 3000.0, 180)):
        cx, cy = rng.uniform(0, wm), rng.uniform(0, hm)
        i, j = int(cy / pf), int(cx / pf)
        if in_district[i, j] and cls[i, j] == LOW_VEG:
            crowns.append((cx, cy, rng.uniform(2.0, 4.0), rng.uniform(5, 10), garden))

    max_crowns = int(6000 * budget) + 500
    if len(crowns) > max_crowns:        # very large extents: thin the crowns, keep their order
        keep = np.sort(rng.choice(len(crowns), size=max_crowns, replace=False))
        crowns = [crowns[i] for i in keep]
    for tx, ty, rad, htop, o in crowns:
        win = cv.window(tx, ty, rad * 1.25)
        if win is None:
            continue
        sl, wx, wy = win
        th = np.arctan2(wy - ty, wx - tx)
        rr = np.hypot(wx - tx, wy - ty) / (rad * (1 + 0.12 * np.cos(3 * th + (tx * 7.31) % 6.28)))
        depth = min(0.6 * htop, 1.2 * rad)
        crown = (htop - depth * rr ** 2).astype(np.float32)
        m = (rr < 1.0) & ~building[sl] & (crown > height[sl])
        cls[sl][m] = TREE
        obj[sl][m] = o
        height[sl][m] = crown[m]

    return Layout(factor=factor, fine_px=pf, cls=cls, obj=obj.astype(np.int32), height=height,
                  ground=ground, building=building, objects=objects)
