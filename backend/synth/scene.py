"""Render a synthetic multimodal scene (HSI + DSM [+ SAR] + labels) and write it as GeoTIFFs.

The physics, in order:
  layout on a grid `supersample` times finer than the output (layout.py)
  -> one spectrum per object, a second endmember it drifts towards in places (within-class variation)
  -> illumination per fine pixel: direct sun (cast shadows from buildings and trees, crown and terrain
     slopes) + diffuse sky light (bluer), a scene gain and a slight across-track brightness trend
  -> average of the fine pixels in each output pixel (edges become linear mixtures)
  -> Gaussian band responses, signal-dependent sensor noise (SNR ~100-300), bad bands in the deep
     atmospheric water absorptions, a ragged nodata strip at a flight-line edge.
Labels are the dominant class of each output pixel. Everything follows from the seed.
"""

import json
import os
from typing import Callable, List, Optional, Tuple

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage, sparse

from backend.io.atomic import write_json_atomic

from . import spectra
from .geotiff import geotiff_profile, write_geotiff
from .layout import LOW_VEG, PAVEMENT, ROOF, SOIL, TREE, WATER, Layout, make_layout, smooth_field

DEMO_CLASSES = [
    {"value": 1, "name": "roof", "color": "#d7301f"},
    {"value": 2, "name": "pavement", "color": "#969696"},
    {"value": 3, "name": "low vegetation", "color": "#a1d99b"},
    {"value": 4, "name": "tree", "color": "#238b45"},
    {"value": 5, "name": "soil", "color": "#c2a36b"},
    {"value": 6, "name": "water", "color": "#2171b5"},
]

# deep atmospheric water-vapour absorptions: bands centred here carry no usable signal
BAD_BAND_WINDOWS_NM = ((1350.0, 1450.0), (1800.0, 1960.0))

HSI_NAME, DSM_NAME, SAR_NAME, LABELS_NAME, META_NAME = "hsi.tif", "dsm.tif", "sar.tif", "labels.tif", "scene.json"
FRACTIONS_NAME = "fractions.tif"


def band_centres(n_bands, wl_min_nm, wl_max_nm):
    """Band centres (nm, rounded to 0.1 nm as written to the metadata)."""
    if n_bands == 1:
        return np.array([round(0.5 * (wl_min_nm + wl_max_nm), 1)])
    return np.round(np.linspace(wl_min_nm, wl_max_nm, n_bands), 1)


def bad_band_mask(centres_nm):
    c = np.asarray(centres_nm)
    bad = np.zeros(c.shape, dtype=bool)
    for lo, hi in BAD_BAND_WINDOWS_NM:
        bad |= (c >= lo) & (c <= hi)
    return bad


def _snr(centres_nm):
    """Sensor SNR per band at 25 % reflectance: ~300 in the VNIR falling to ~100 at the end of the
    SWIR, lower in the 940/1140 nm water-vapour bands."""
    c = np.asarray(centres_nm, dtype=np.float64)
    snr = 100.0 + 200.0 * (1.0 - spectra._sig(c, 1300, 250))
    snr *= 1.0 - 0.4 * spectra._g(c, 940, 25) - 0.4 * spectra._g(c, 1135, 30)
    return snr


# ---------------------------------------------------------------------------------------------------
# rendering


def _object_endmembers(objects, rng, wl):
    """Two spectra per object: its own variant and the one it drifts towards in places."""
    k = len(objects)
    a = np.empty((k, wl.size))
    b = np.empty((k, wl.size))
    for i, o in enumerate(objects):
        _, a[i] = spectra.sample_spectrum(o.cls, rng, wl, o.variant)
        if o.cls == LOW_VEG:       # lawns dry out in patches, dry meadows green up in patches
            other = "dry_grass" if o.variant == "green_grass" else "green_grass"
            _, b[i] = spectra.sample_spectrum(o.cls, rng, wl, other)
        elif o.cls == WATER:       # sediment plumes / clearer water
            other = "turbid" if o.variant == "clear" else "clear"
            _, b[i] = spectra.sample_spectrum(o.cls, rng, wl, other)
        elif o.cls == SOIL:        # wet patches
            _, b[i] = spectra.sample_spectrum(o.cls, rng, wl, "moist_soil")
        elif o.cls == TREE:        # another individual of the same kind
            _, b[i] = spectra.sample_spectrum(o.cls, rng, wl, o.variant)
        else:                      # weathering, dirt, patches of repair
            b[i] = a[i] * rng.uniform(0.85, 1.15)
    return a, b


def _cast_shadow(surface, fine_px, sun_az, sun_el):
    """True where the fine pixel is in the shadow of something between it and the sun."""
    fh, fw = surface.shape
    dx, dy = np.sin(sun_az), -np.cos(sun_az)        # towards the sun, in (column, row) steps
    rise = np.tan(sun_el) * fine_px                  # height the ray gains per step
    span = float(surface.max() - surface.min())
    n_steps = int(np.ceil(span / rise)) + 1
    shadow = np.zeros((fh, fw), dtype=bool)
    for k in range(1, n_steps + 1):
        oy, ox = int(round(k * dy)), int(round(k * dx))
        if abs(oy) >= fh or abs(ox) >= fw:
            break
        dst = (slice(max(0, -oy), fh - max(0, oy)), slice(max(0, -ox), fw - max(0, ox)))
        src = (slice(max(0, oy), fh + min(0, oy)), slice(max(0, ox), fw + min(0, ox)))
        shadow[dst] |= surface[src] > surface[dst] + k * rise + 0.05
    return shadow


def _slope_illumination(surface, fine_px, sun_az, sun_el):
    """cos(incidence) / sin(elevation): 1 on flat ground, brighter on slopes facing the sun."""
    gy, gx = np.gradient(surface.astype(np.float64), fine_px)
    east, north = gx, -gy
    sx, sy, sz = np.sin(sun_az) * np.cos(sun_el), np.cos(sun_az) * np.cos(sun_el), np.sin(sun_el)
    cos_i = (-east * sx - north * sy + sz) / np.sqrt(1.0 + east ** 2 + north ** 2)
    return np.clip(cos_i / sz, 0.0, 1.6).astype(np.float32)


def dominant_class(cls_fine: np.ndarray, factor: int, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    """Label of each output pixel (the class covering most of its `factor` x `factor` fine pixels, ties
    to the lower class) and the (6, h, w) fine-pixel count of every class."""
    counts = np.stack([(cls_fine == c).reshape(h, factor, w, factor).sum(axis=(1, 3)) for c in range(1, 7)])
    return (np.argmax(counts, axis=0) + 1).astype(np.uint8), counts


def nodata_strip(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A ragged strip along the left or right edge, like the end of a flight line."""
    base = rng.uniform(2.0, 5.0)
    wob = np.cumsum(rng.normal(0, 0.6, h))
    wob = ndimage.uniform_filter1d(wob - wob.mean(), size=9, mode="nearest")
    widths = np.clip(np.round(base + 0.5 * wob), 1, max(1, w // 8)).astype(int)
    cols = np.arange(w)[None, :]
    if rng.random() < 0.5:
        return cols < widths[:, None]
    return cols >= (w - widths)[:, None]


def render(lay: Layout, rng_spec: np.random.Generator, rng_field: np.random.Generator,
           rng_noise: np.random.Generator, centres: np.ndarray, fwhm: np.ndarray, h: int, w: int, sun_az: float,
           sun_el: float, endmembers: Optional[Callable] = None,
           bad: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (h, w, bands) reflectance of a layout seen by a sensor: (noisy, clean, direct illumination
    per fine pixel). `endmembers(objects, rng, wl)` → two (K, len(wl)) spectra per object (default: parametric);
    `bad` (n_bands,) bool: bands replaced by junk (default: the deep water-vapour windows)."""
    f = lay.factor
    fh, fw = lay.cls.shape
    wl = spectra.fine_grid(centres.min() - 3 * fwhm.max(), centres.max() + 3 * fwhm.max())
    srf = spectra.band_response_matrix(wl, centres, fwhm)
    a_fine, b_fine = (endmembers or _object_endmembers)(lay.objects, rng_spec, wl)
    ends = np.vstack([a_fine @ srf.T, b_fine @ srf.T]).astype(np.float32)   # (2K, n_bands)
    k = len(lay.objects)

    # illumination per fine pixel
    surface = lay.ground + lay.height
    sunlit = ~_cast_shadow(surface, lay.fine_px, sun_az, sun_el)
    slope = _slope_illumination(lay.ground, lay.fine_px, sun_az, sun_el)
    tree = lay.cls == TREE
    crown = _slope_illumination(surface, lay.fine_px, sun_az, sun_el)
    slope[tree] = (0.55 + 0.45 * crown[tree])       # crowns: lit and self-shaded flanks, gaps
    direct = sunlit * slope

    # within-object variation: drift to the second endmember + fine texture
    blend = np.array([o.blend for o in lay.objects], dtype=np.float32)
    drift = 0.5 + 0.5 * np.tanh(1.2 * smooth_field(rng_field, (fh, fw), max(3, int(12.0 / lay.fine_px))))
    t = np.clip(drift * blend[lay.obj], 0.0, 1.0)
    tex = 1.0 + 0.03 * smooth_field(rng_field, (fh, fw), 2) + 0.03 * smooth_field(rng_field, (fh, fw), 8)
    tex[tree] *= 1.0 + 0.08 * smooth_field(rng_field, (fh, fw), 3)[tree]

    # average the fine pixels of each output pixel: sparse (pixels x endmembers) weights
    coarse = ((np.arange(fh) // f)[:, None] * w + (np.arange(fw) // f)[None, :]).ravel()
    rows = np.concatenate([coarse, coarse])
    cols = np.concatenate([lay.obj.ravel(), lay.obj.ravel() + k])
    wa = (tex * (1.0 - t)).ravel() / (f * f)
    wb = (tex * t).ravel() / (f * f)
    plain = sparse.csr_matrix((np.concatenate([wa, wb]), (rows, cols)), shape=(h * w, 2 * k))
    d = direct.ravel()
    lit = sparse.csr_matrix((np.concatenate([wa * d, wb * d]), (rows, cols)), shape=(h * w, 2 * k))
    r_plain = np.asarray(plain @ ends)
    r_lit = np.asarray(lit @ ends)

    # direct + diffuse: shade keeps the (bluer) sky light and light scattered by the surroundings
    diffuse = rng_field.uniform(0.15, 0.25)
    ambient = rng_field.uniform(0.06, 0.12)
    sky = diffuse * (centres / 550.0) ** -1.2 + ambient
    den = (1.0 - diffuse) + sky
    refl = ((1.0 - diffuse) * r_lit + sky * r_plain) / den
    gain = rng_field.uniform(0.93, 1.07) * (1.0 + rng_field.uniform(-0.04, 0.04) * np.linspace(-1, 1, w))
    refl = refl.reshape(h, w, -1) * gain[None, :, None].astype(np.float32)
    clean = refl.astype(np.float32)

    # sensor noise, signal dependent
    snr = _snr(centres).astype(np.float32)
    sigma = (0.25 / snr) * np.sqrt(0.3 + 0.7 * np.clip(clean, 0.0, None) / 0.25)
    noisy = clean + sigma * rng_noise.standard_normal(clean.shape, dtype=np.float32)
    bad = bad_band_mask(centres) if bad is None else bad
    if bad.any():
        junk = 0.002 + 0.01 * np.abs(rng_noise.standard_normal((h, w, int(bad.sum())), dtype=np.float32))
        noisy[:, :, bad] = junk
    return noisy, clean, direct


def _sar(lay, rng, h, w):
    """C-band-like backscatter (dB) with speckle: water dark, buildings bright with double bounce on
    the walls facing the sensor (looking east)."""
    f = lay.factor
    base_db = {ROOF: -4.0, PAVEMENT: -17.0, LOW_VEG: -13.0, TREE: -8.0, SOIL: -15.0, WATER: -23.0}
    per_obj = np.array([base_db[o.cls] + rng.normal(0, 1.5) for o in lay.objects])
    sig = 10.0 ** (per_obj[lay.obj] / 10.0)
    b = lay.building
    dbl = np.zeros_like(b)
    for s in range(1, f + 1):
        dbl[:, :-s] |= b[:, s:]
    dbl &= ~b
    sig = np.where(dbl, 10.0 ** (rng.uniform(3.0, 8.0) / 10.0), sig)
    mean = sig.reshape(h, f, w, f).mean(axis=(1, 3))
    looks = 4.0
    speckle = rng.gamma(looks, 1.0 / looks, size=(h, w))
    return (10.0 * np.log10(np.maximum(mean * speckle, 1e-6))).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# writing


def _hex_rgb(color):
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5)) + (255,)


def generate_scene(out_dir: str, seed: int = 0, height: int = 256, width: int = 256, n_bands: int = 64,
                   wl_min_nm: float = 420.0, wl_max_nm: float = 2450.0, pixel_size: float = 2.0, epsg: int = 32633,
                   origin: Tuple[float, float] = (389000.0, 5819000.0), with_sar: bool = False,
                   reflectance_scale: float = 10000, supersample: int = 4, with_fractions: bool = False) -> dict:
    """Generate a co-registered synthetic scene and write it to `out_dir`.

    Returns {"hsi", "dsm", "sar" (or None), "labels", "classes", "wavelengths_nm"} plus
    "fwhm_nm", "bad_bands" (0-based indices), "reflectance_scale", "meta" (path of scene.json) and,
    with `with_fractions`, "fractions": a float32 raster of the sub-pixel cover of each class (band k =
    class k+1; soft labels for unmixing checks or training).
    HSI: uint16 reflectance x reflectance_scale, nodata 0 (reflectance_scale == 1: float32 0..1,
    nodata NaN). DSM: float32 metres. SAR: float32 dB. Labels: uint8, 0 = nodata/unlabelled.
    """
    if height < 8 or width < 8:
        raise ValueError("scene must be at least 8 x 8 pixels")
    if n_bands < 1 or not wl_max_nm > wl_min_nm > 0:
        raise ValueError("need n_bands >= 1 and 0 < wl_min_nm < wl_max_nm")
    if reflectance_scale <= 0:
        raise ValueError("reflectance_scale must be positive")
    os.makedirs(out_dir, exist_ok=True)
    ss = np.random.SeedSequence(int(seed))
    rng_layout, rng_spec, rng_field, rng_noise, rng_sar, rng_misc = [np.random.default_rng(s) for s in ss.spawn(6)]

    centres = band_centres(n_bands, wl_min_nm, wl_max_nm)
    fwhm = spectra.band_fwhm(centres)
    bad = bad_band_mask(centres)
    sun_az = np.radians(rng_misc.uniform(120.0, 240.0))
    sun_el = np.radians(rng_misc.uniform(45.0, 65.0))   # campaigns fly near noon in summer

    lay = make_layout(rng_layout, height, width, pixel_size, factor=supersample)
    labels, counts = dominant_class(lay.cls, supersample, height, width)
    hsi, _, _ = render(lay, rng_spec, rng_field, rng_noise, centres, fwhm, height, width, sun_az, sun_el)
    strip = nodata_strip(rng_misc, height, width)
    labels[strip] = 0
    surface = (lay.ground + lay.height).reshape(height, supersample, width, supersample).mean(axis=(1, 3))
    dsm = (surface + rng_misc.normal(0.0, 0.15, surface.shape)).astype(np.float32)

    result = write_scene(out_dir, hsi, strip, dsm, labels, centres, fwhm, bad, seed=seed, pixel_size=pixel_size,
                         epsg=epsg, origin=origin, reflectance_scale=reflectance_scale,
                         sar=_sar(lay, rng_sar, height, width) if with_sar else None,
                         fractions=counts / float(supersample * supersample) if with_fractions else None,
                         meta={"supersample": supersample, "sun_azimuth_deg": round(float(np.degrees(sun_az)), 2),
                               "sun_elevation_deg": round(float(np.degrees(sun_el)), 2)})
    return result


def _spectral_metadata(centres, fwhm, bad):
    """Wavelengths, FWHM and the bad-band list of an HSI raster in every form readers look for: GDAL
    band tags, the IMAGERY domain (µm), band descriptions and an ENVI-style header domain."""
    band_tags = [{"wavelength": f"{c:.1f}", "wavelength_units": "Nanometers", "fwhm": f"{fw:.1f}",
                  "bbl": "0" if b else "1"} for c, fw, b in zip(centres, fwhm, bad)]
    band_ns = [{"IMAGERY": {"CENTRAL_WAVELENGTH_UM": f"{c / 1000:.4f}", "FWHM_UM": f"{fw / 1000:.4f}"}}
               for c, fw in zip(centres, fwhm)]
    descriptions = [f"band {i + 1} ({c:.1f} Nanometers)" for i, c in enumerate(centres)]
    envi = {"wavelength": "{" + ", ".join(f"{c:.1f}" for c in centres) + "}",
            "fwhm": "{" + ", ".join(f"{x:.1f}" for x in fwhm) + "}",
            "bbl": "{" + ", ".join("0" if b else "1" for b in bad) + "}",
            "wavelength_units": "Nanometers"}
    return {"band_tags": band_tags, "band_ns_tags": band_ns, "descriptions": descriptions, "ns_tags": {"ENVI": envi}}


def write_scene(out_dir: str, hsi: np.ndarray, strip: np.ndarray, dsm: np.ndarray, labels: np.ndarray,
                centres: np.ndarray, fwhm: np.ndarray, bad: np.ndarray, seed: int = 0, pixel_size: float = 2.0,
                epsg: int = 32633, origin: Tuple[float, float] = (389000.0, 5819000.0),
                reflectance_scale: float = 10000, sar: Optional[np.ndarray] = None,
                fractions: Optional[np.ndarray] = None, meta: Optional[dict] = None,
                classes: List[dict] = DEMO_CLASSES) -> dict:
    """Write a rendered scene: HSI (h, w, bands) reflectance with full spectral metadata, DSM, labels
    (the nodata `strip` masked everywhere), optional SAR and class fractions (classes, h, w), scene.json."""
    os.makedirs(out_dir, exist_ok=True)
    height, width, n_bands = hsi.shape
    crs = CRS.from_epsg(int(epsg))
    transform = Affine(float(pixel_size), 0.0, float(origin[0]), 0.0, -float(pixel_size), float(origin[1]))
    paths = {k: os.path.join(out_dir, n) for k, n in
             (("hsi", HSI_NAME), ("dsm", DSM_NAME), ("sar", SAR_NAME), ("labels", LABELS_NAME), ("meta", META_NAME))}

    def profile(count, dtype, nodata, predictor):
        return geotiff_profile(height, width, count, dtype, nodata, crs, transform, predictor)

    # HSI
    if reflectance_scale == 1:
        cube = np.clip(hsi, 0.0, None).astype(np.float32)
        cube[strip] = np.nan
        dtype, nodata, predictor, scales = "float32", float("nan"), 3, None
    else:
        cube = np.clip(np.round(hsi * reflectance_scale), 1, 65535).astype(np.uint16)
        cube[strip] = 0
        dtype, nodata, predictor, scales = "uint16", 0, 2, [1.0 / reflectance_scale] * n_bands
    cube = np.ascontiguousarray(cube.transpose(2, 0, 1))
    write_geotiff(paths["hsi"], cube, profile(n_bands, dtype, nodata, predictor), scales=scales,
                  dataset_tags={"wavelength_units": "Nanometers", "reflectance_scale": str(reflectance_scale),
                                "generator": "landfuse.synth", "seed": str(int(seed))},
                  **_spectral_metadata(centres, fwhm, bad))
    del cube

    # DSM
    write_geotiff(paths["dsm"], dsm[None], profile(1, "float32", float("nan"), 3),
                  descriptions=["surface height (m)"], dataset_tags={"units": "metre", "generator": "landfuse.synth"})

    # SAR
    sar_path = None
    if sar is not None:
        write_geotiff(paths["sar"], sar[None], profile(1, "float32", float("nan"), 3),
                      descriptions=["backscatter (dB)"], dataset_tags={"units": "dB", "generator": "landfuse.synth"})
        sar_path = paths["sar"]

    # labels
    cmap = {0: (0, 0, 0, 0)}
    cmap.update({c["value"]: _hex_rgb(c["color"]) for c in classes})
    write_geotiff(paths["labels"], labels[None], profile(1, "uint8", 0, 2),
                  descriptions=["land cover class"], colormap=cmap,
                  dataset_tags={"LANDFUSE_CLASSES": json.dumps(classes), "generator": "landfuse.synth"})

    fractions_path = None
    if fractions is not None:
        frac = np.asarray(fractions, np.float32).copy()
        frac[:, strip] = np.nan
        fractions_path = os.path.join(out_dir, FRACTIONS_NAME)
        write_geotiff(fractions_path, frac, profile(6, "float32", float("nan"), 3),
                      descriptions=[f"fraction of {c['name']}" for c in classes],
                      dataset_tags={"LANDFUSE_CLASSES": json.dumps(classes), "generator": "landfuse.synth"})

    result = {
        "hsi": paths["hsi"], "dsm": paths["dsm"], "sar": sar_path, "labels": paths["labels"],
        "classes": [dict(c) for c in classes],
        "wavelengths_nm": [float(c) for c in centres],
        "fwhm_nm": [float(x) for x in fwhm],
        "bad_bands": [int(i) for i in np.flatnonzero(bad)],
        "reflectance_scale": reflectance_scale,
        "meta": paths["meta"],
    }
    if fractions is not None:
        result["fractions"] = fractions_path
    meta = dict(result, seed=int(seed), height=height, width=width, pixel_size=pixel_size, epsg=int(epsg),
                origin=[float(origin[0]), float(origin[1])], **(meta or {}))
    write_json_atomic(paths["meta"], meta, indent=1)
    return result
