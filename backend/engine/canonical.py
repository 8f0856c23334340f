"""Sensor-agnostic spectral input: any band set → one fixed canonical grid + a coverage mask.

Why a canonical grid (and not a wavelength-conditioned input layer): it is a fixed, inspectable linear
map per sensor, computed once per raster from its band centres; the network after it is an ordinary
fixed-width network, so train, fine-tune, tiling and export stay the same code as for scene models.
A conditioned layer would have to learn the same resampling from the few sensors we can simulate.

Each canonical bin is a Gaussian band (20 nm FWHM, every 20 nm, 400–2500 nm) filled with the
Gaussian-weighted mean of the sensor's good bands near it. A bin is *covered* only when a good band lies
close to it; bins in a sensor's absorption gaps or outside its range are uncovered: their value is 0 and
their mask channel says so (never a silent zero the network could take for dark reflectance).

Features per pixel (n_features = 2 × bins + 1):
  shape   bins / brightness        brightness = mean of the covered bins in 450–900 nm (all covered bins
                                   when none lies there): illumination, shade and an unknown radiometric
                                   scale change the brightness, not the shape
  log10 brightness                 what absolute brightness there is (water and asphalt are dark)
  coverage mask                    1 where the sensor measures the bin
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

GRID_START_NM, GRID_STOP_NM, GRID_STEP_NM = 400.0, 2500.0, 20.0
GRID_NM = np.arange(GRID_START_NM, GRID_STOP_NM + 1e-6, GRID_STEP_NM)
N_BINS = GRID_NM.size
N_FEATURES = 2 * N_BINS + 1
GRID_ID = f"gauss{GRID_STEP_NM:g}nm-{GRID_START_NM:g}-{GRID_STOP_NM:g}-shape-logb-mask"
BIN_SIGMA_NM = GRID_STEP_NM / 2.354820045
# A bin counts as measured when the nearest good band is this close (or within 60 % of the sensor's
# typical band spacing, for coarse sensors): farther, and the value would be an extrapolation.
COVER_NM = 15.0
BRIGHTNESS_NM = (450.0, 900.0)
MIN_BRIGHTNESS = 1e-3


def resampling(centres_nm: ArrayLike, good: Optional[ArrayLike] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(weights (N_BINS, n_bands) float32, covered (N_BINS,) bool) for a sensor's band centres.

    `good` (n_bands,) bool marks usable bands; bad bands get zero weight everywhere.
    """
    c = np.asarray(centres_nm, dtype=np.float64)
    ok = np.ones(c.shape, bool) if good is None else np.asarray(good, bool)
    weights = np.zeros((N_BINS, c.size), np.float32)
    covered = np.zeros(N_BINS, bool)
    usable = c[ok]
    if usable.size == 0:
        return weights, covered
    spacing = float(np.median(np.diff(np.sort(usable)))) if usable.size > 1 else 10.0
    reach = max(COVER_NM, 0.6 * spacing)
    sigma = max(BIN_SIGMA_NM, 0.5 * spacing)
    for i, centre in enumerate(GRID_NM):
        distance = np.abs(c - centre)
        if not (ok & (distance <= reach)).any():
            continue
        w = np.where(ok, np.exp(-0.5 * (distance / sigma) ** 2), 0.0)
        w[distance > 3 * sigma + reach] = 0.0
        weights[i] = w / w.sum()
        covered[i] = True
    return weights, covered


# A bin covered in fewer pretraining pixels than this is treated as uncovered at inference: the model
# never learned what its value means (e.g. 2460 nm, which every pretraining sensor flags bad).
MIN_TRAINED_COVERAGE = 0.01


def restrict_to_trained(covered: np.ndarray, trained_coverage: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """`covered` minus the bins the model (almost) never saw measured; returns (covered, dropped bins nm)."""
    trained = np.asarray(trained_coverage, np.float64) >= MIN_TRAINED_COVERAGE
    return covered & trained, GRID_NM[covered & ~trained]


def features(bins: np.ndarray, covered: ArrayLike) -> np.ndarray:
    """Canonical bins (N_BINS, ...) → features (N_FEATURES, ...) float32 (see the module docstring)."""
    covered = np.asarray(covered, bool)
    core = covered & (GRID_NM >= BRIGHTNESS_NM[0]) & (GRID_NM <= BRIGHTNESS_NM[1])
    if not core.any():
        core = covered
    out = np.zeros((N_FEATURES,) + bins.shape[1:], np.float32)
    if not core.any():
        return out
    brightness = np.maximum(bins[core].mean(axis=0), MIN_BRIGHTNESS)
    out[:N_BINS][covered] = bins[covered] / brightness
    out[N_BINS] = np.log10(brightness)
    out[N_BINS + 1:][covered] = 1.0
    return out


# What a land-cover map needs measured at least: the visible shape and the near-infrared (vegetation's
# red edge, water's darkness). A 1-band raster, every band at one wavelength, or an image whose NIR
# bands are all empty cannot tell roofs from trees from water, whatever the network answers.
MIN_VISIBLE_BINS = 3      # covered bins in 400–700 nm
MIN_NIR_BINS = 2          # covered bins in 720–1000 nm
VISIBLE_NM, NIR_NM = (400.0, 700.0), (720.0, 1000.0)
MIN_BIN_WEIGHT = 0.5      # a pixel's bin is measured when bands holding at least this share of its weight are valid


def coverage_problem(covered: ArrayLike) -> Optional[str]:
    """Why a band set's canonical coverage is too poor for a land-cover map, or None when it suffices."""
    covered = np.asarray(covered, bool)
    visible = int((covered & (GRID_NM >= VISIBLE_NM[0]) & (GRID_NM <= VISIBLE_NM[1])).sum())
    nir = int((covered & (GRID_NM >= NIR_NM[0]) & (GRID_NM <= NIR_NM[1])).sum())
    problems = []
    if visible < MIN_VISIBLE_BINS:
        problems.append(f"{visible} bin(s) in the visible ({VISIBLE_NM[0]:g}–{VISIBLE_NM[1]:g} nm; at least "
                        f"{MIN_VISIBLE_BINS} needed)")
    if nir < MIN_NIR_BINS:
        problems.append(f"{nir} bin(s) in the near infrared ({NIR_NM[0]:g}–{NIR_NM[1]:g} nm; at least "
                        f"{MIN_NIR_BINS} needed)")
    return " and ".join(problems) or None


def band_features_masked(data: np.ndarray, valid: np.ndarray, weights: np.ndarray,
                         covered: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """`band_features` from the bands valid at each pixel: (features, pixel validity).

    `data` (n_bands, h, w) with invalid values already 0, `valid` (n_bands, h, w) bool. Each covered
    bin is renormalised over the weight of its valid bands; a pixel where a covered bin keeps less
    than MIN_BIN_WEIGHT of its weight is invalid (its features are 0)."""
    n = data.shape[0]
    covered = np.asarray(covered, bool)
    bins = (weights @ data.reshape(n, -1)).reshape((N_BINS,) + data.shape[1:])
    share = (weights @ valid.reshape(n, -1).astype(np.float32)).reshape(bins.shape)
    pixel_valid = (share[covered] >= MIN_BIN_WEIGHT).all(axis=0) if covered.any() else np.zeros(data.shape[1:], bool)
    bins[covered] /= np.maximum(share[covered], MIN_BIN_WEIGHT)
    feats = features(bins, covered)
    feats[:, ~pixel_valid] = 0.0
    return feats, pixel_valid


def band_features(data: np.ndarray, weights: np.ndarray, covered: ArrayLike) -> np.ndarray:
    """Sensor bands (n_bands, h, w) reflectance → features (N_FEATURES, h, w) float32."""
    n = data.shape[0]
    bins = (weights @ data.reshape(n, -1)).reshape((N_BINS,) + data.shape[1:])
    return features(bins, covered)


# Atmospheric absorptions a surface-reflectance product has corrected (or flagged) and at-sensor radiance
# keeps: (name, centre, left shoulder, right shoulder, nm). Measured on the scene-mean spectrum as
# 1 − value / (the straight line between the shoulders). At-sensor radiance in ../shared/data (AVIRIS
# Indian Pines and Salinas A): O2-A 0.31 / 0.39, 940 nm 0.54 / 0.59, 1140 nm 0.51 / 0.67. A reflectance
# product (the DFC2018 CASI tile): O2-A 0.08 and 940 nm 0.34 — water vapour is often left over, oxygen not.
ABSORPTIONS = (("oxygen 760 nm", 762.0, 745.0, 780.0), ("water vapour 940 nm", 940.0, 870.0, 1040.0),
               ("water vapour 1140 nm", 1135.0, 1050.0, 1250.0))
ABSORPTION_TOLERANCE_NM = (8.0, 20.0, 20.0)   # a band must lie this close to each point (O2-A is narrow)
RADIANCE_DEPTH = {"oxygen 760 nm": 0.2, "water vapour 940 nm": 0.3, "water vapour 1140 nm": 0.3}


def absorption_depths(centres_nm: ArrayLike, spectrum: ArrayLike) -> dict:
    """{absorption name: depth} for the ABSORPTIONS the band set can measure (bands near the centre and
    both shoulders); a depth is 1 − value / continuum at the centre."""
    c = np.asarray(centres_nm, np.float64)
    s = np.asarray(spectrum, np.float64)
    out = {}
    for (name, centre, left, right), tol in zip(ABSORPTIONS, ABSORPTION_TOLERANCE_NM):
        at = []
        for x in (centre, left, right):
            i = int(np.argmin(np.abs(c - x)))
            at.append(s[i] if abs(c[i] - x) <= tol else None)
        if None in at:
            continue
        value, lo, hi = at
        continuum = lo + (hi - lo) * (centre - left) / (right - left)
        if continuum > 0:
            out[name] = float(1.0 - value / continuum)
    return out


def radiance_evidence(depths: dict) -> Optional[str]:
    """Why a scene-mean spectrum looks like at-sensor radiance rather than surface reflectance (None when it
    does not): a deep oxygen A band alone, or both water-vapour bands deep together."""
    deep = {k: v for k, v in depths.items() if v >= RADIANCE_DEPTH[k]}
    water = [k for k in deep if k.startswith("water")]
    if "oxygen 760 nm" in deep or len(water) == 2:
        return ", ".join(f"{k} {v:.2f}" for k, v in deep.items())
    return None
