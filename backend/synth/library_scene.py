"""Synthetic scenes from real ingredients, for pretraining and testing the generic model.

One scene = a layout (a real label map's shapes, or a generated town) + real library spectra per object
(a parametric material for the odd class the library lacks over the sensor's range) + heights drawn from
real LiDAR + the physics of scene.py (sub-pixel mixing, sun and shade, within-object drift, sensor band
responses, signal-dependent noise) + a sensor (named or random), bad bands and a nodata strip.

`split` keeps pretraining and testing apart on every ingredient at once: "train" draws the training
partition of the spectra, the training part of the real maps and the pretraining sensors;
"held_out" draws the held-out spectra, the held-out parts of the maps and sensors never simulated.
"""

import numpy as np

from . import library, sensors, spectra
from .heights import measured_height_table
from .layout import make_layout
from .real_layout import sample_real_layout
from .scene import dominant_class, nodata_strip, render

SUPERSAMPLE = 4
PIXEL_SIZES_M = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0)
LIBRARY_SHARE = 0.8       # objects drawing a real library spectrum (the rest: parametric materials)
REAL_LAYOUT_SHARE = 0.5   # scenes on a real map's shapes (the rest: generated towns)
_SPLIT_CODE = {"train": 1, "held_out": 2}
# Spectra must be measured over the sensor's range, except: the first 60 nm of the blue and the last
# 50 nm of the SWIR (where the Berlin library starts and most libraries end) and the deep water
# absorptions (library.LIBRARY_GAPS_NM), which no field spectrum measures and sensors flag bad anyway;
# there the spectrum is bridged linearly or held at its end value.
REQUIRED_NM = (460.0, 2400.0)


def required_range(centres):
    """(lo, hi) nm a library spectrum must cover to stand in for a material under this sensor."""
    lo = min(max(float(np.min(centres)), REQUIRED_NM[0]), REQUIRED_NM[1] - 50.0)
    hi = max(min(float(np.max(centres)), REQUIRED_NM[1]), lo + 50.0)
    return lo, hi


def split_library(split, data_dir=None):
    train, held = library.split_library(library.load_library(data_dir))
    return train if split == "train" else held


def _fill_gaps(values, grid, wl):
    """A library spectrum (NaN where unmeasured) on the renderer's fine grid: linear across gaps,
    constant beyond its ends (only bands near the sensor's edges ever see those parts)."""
    ok = ~np.isnan(values)
    return np.interp(wl, grid[ok], values[ok])


def library_endmembers(lib, centres, share=LIBRARY_SHARE):
    """An `endmembers(objects, rng, wl)` for scene.render drawing real spectra of each object's class
    that were measured over the sensor's range; two per object (a second of the same class: the object
    drifts towards it in places), each with its own brightness."""
    grid = lib.wavelengths_nm
    lo_nm, hi_nm = required_range(centres)
    covering = lib.classes[lib.covering(lo_nm, hi_nm, skip_nm=library.LIBRARY_GAPS_NM)]
    # a class with only a handful of real spectra over this range (water and trees in the SWIR) leans
    # on the parametric materials for half its objects, so a few spectra are not learned by heart
    shares = {c: share if (covering == c).sum() >= 10 else 0.5 for c in range(1, 7)}

    def draw(objects, rng, wl):
        a = np.empty((len(objects), wl.size))
        b = np.empty((len(objects), wl.size))
        for i, obj in enumerate(objects):
            try:
                if rng.random() >= shares[obj.cls]:
                    raise ValueError("parametric draw")
                pair = library.sample_class_spectra(lib, obj.cls, 2, rng, lo_nm, hi_nm,
                                                    skip_nm=library.LIBRARY_GAPS_NM)
                a[i], b[i] = (_fill_gaps(p, grid, wl) * rng.uniform(0.85, 1.15) for p in pair)
            except ValueError:   # parametric by choice, or no library spectrum covers this range
                a[i] = spectra.sample_spectrum(obj.cls, rng, wl)[1]
                b[i] = spectra.sample_spectrum(obj.cls, rng, wl)[1]
        return np.clip(a, 0.001, 1.0), np.clip(b, 0.001, 1.0)

    return draw


def pick_sensor(rng, split):
    if split == "train" and rng.random() < 0.3:
        return sensors.random_sensor(rng)
    names = sensors.sensor_names(split)
    name = names[int(rng.integers(len(names)))]
    return (name,) + sensors.sensor_bands(name)


def render_library_scene(seed, split="train", size=96, sensor=None, data_dir=None, pixel_size=None):
    """Render one scene in memory. `sensor` = (name, centres_nm, fwhm_nm) or None (drawn).

    Returns {"hsi" (h, w, bands) float32 reflectance, "valid" (h, w) bool (False on the nodata strip),
    "dsm" (h, w) float32 m, "labels" (h, w) uint8 (0 on the strip), "centres", "fwhm", "bad" (bands,)
    bool, "sensor", "layout", "pixel_size"}.
    """
    if split not in _SPLIT_CODE:
        raise ValueError(f"split must be one of {sorted(_SPLIT_CODE)}")
    streams = np.random.SeedSequence([int(seed), _SPLIT_CODE[split]]).spawn(6)
    rng_pick, rng_layout, rng_spec, rng_field, rng_noise, rng_misc = (np.random.default_rng(s) for s in streams)
    name, centres, fwhm = sensor or pick_sensor(rng_pick, split)
    centres, fwhm = np.asarray(centres, np.float64), np.asarray(fwhm, np.float64)
    bad = sensors.bad_bands(centres)
    if rng_pick.random() < 0.3:   # a few more broken bands, as bad-band lists in real products have
        bad[rng_pick.choice(centres.size, size=int(rng_pick.integers(1, 6)), replace=False)] = True
    pixel_size = float(pixel_size or PIXEL_SIZES_M[int(rng_pick.integers(len(PIXEL_SIZES_M)))])
    heights = measured_height_table(data_dir)
    if rng_pick.random() < REAL_LAYOUT_SHARE:
        lay = sample_real_layout(rng_layout, size, size, pixel_size, SUPERSAMPLE, split=split,
                                 data_dir=data_dir, heights=heights)
        layout = "real"
    else:
        lay = make_layout(rng_layout, size, size, pixel_size, factor=SUPERSAMPLE)
        layout = "generated"
    lib = split_library(split, data_dir)
    draw = library_endmembers(lib, centres)
    sun_az = np.radians(rng_misc.uniform(100.0, 260.0))
    sun_el = np.radians(rng_misc.uniform(30.0, 65.0))
    hsi, _, _ = render(lay, rng_spec, rng_field, rng_noise, centres, fwhm, size, size, sun_az, sun_el,
                        endmembers=draw, bad=bad)
    labels, _ = dominant_class(lay.cls, SUPERSAMPLE, size, size)
    strip = nodata_strip(rng_misc, size, size) if rng_misc.random() < 0.5 else np.zeros((size, size), bool)
    labels[strip] = 0
    surface = (lay.ground + lay.height).reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    dsm = (surface + rng_misc.normal(0.0, 0.15, surface.shape)).astype(np.float32)
    return {"hsi": hsi.astype(np.float32), "valid": ~strip, "dsm": dsm, "labels": labels, "centres": centres,
            "fwhm": fwhm, "bad": bad, "sensor": name, "layout": layout, "pixel_size": pixel_size}


def write_library_scene(out_dir, seed, split, sensor_name, size=128, data_dir=None):
    """Render a scene of a named sensor and write it as users have scenes (uint16 reflectance ×10000
    GeoTIFF with wavelengths, FWHM and a bad-band list; DSM; labels). Returns (paths, in-memory scene)."""
    from .scene import write_scene
    centres, fwhm = sensors.sensor_bands(sensor_name)
    scene = render_library_scene(seed, split, size=size, sensor=(sensor_name, centres, fwhm), data_dir=data_dir)
    paths = write_scene(out_dir, scene["hsi"], ~scene["valid"], scene["dsm"], scene["labels"], scene["centres"],
                        scene["fwhm"], scene["bad"], seed=seed, pixel_size=scene["pixel_size"],
                        classes=library.GENERIC_CLASSES,
                        meta={"split": split, "sensor": sensor_name, "layout": scene["layout"]})
    return paths, scene
