"""The model's inputs: which bands of which raster feed which input channel, and how they are scaled.

One `ModalityReader` per modality (HSI first, then each aux in order). It knows the bands to read,
the bands that are bad in this particular raster (filled with the training mean, i.e. 0 after
normalisation, so a few broken bands never blank the map), and the normalisation stats.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np

from backend.engine import canonical
from backend.io import rasters
from backend.protocol import ErrorCode, LandFuseError

if TYPE_CHECKING:
    from rasterio.io import DatasetReader
    from rasterio.windows import Window

# A value-scale ratio beyond this factor between the input and the training data means the raster
# stores reflectance with another scale (×1 vs ×100 vs ×10000): rescale by the nearest power of ten.
SCALE_MISMATCH = 30.0
# Aux rasters are read relative to their scene's 2nd percentile: a DSM then measures height above
# the scene's ground instead of elevation above sea level, which differs from scene to scene and
# would otherwise be learned as if it meant something (SAR in dB keeps its contrasts the same way).
SCENE_OFFSET = "p2"
# More than this share of a scene model's bands bad or empty in a raster: refused (band_mismatch), since
# filling most inputs with the training mean would give a map that only looks like one.
MAX_MISSING_SHARE = 0.5


@dataclass
class ModalityReader:
    name: str
    kind: str
    path: str
    ds: object
    source_count: int
    read_bands: list          # 1-based raster bands actually read
    slots: list               # input channel each read band fills
    n_inputs: int
    mean: np.ndarray = None
    std: np.ndarray = None
    scale: float = 1.0
    offset: np.ndarray = None  # per read band, subtracted after scaling (scene_offset, see below)
    used_bands: list = field(default_factory=list)  # 1-based raster bands the model's inputs map to
    presence: bool = False     # optional modality: one more input channel, 1 where the raster is there

    def read(self, window: Window) -> Tuple[np.ndarray, np.ndarray]:
        """Normalised input block (n_inputs, h, w) and pixel validity (h, w) for a window."""
        if self.presence:
            # An optional modality the network was trained to do without: where the raster does not
            # reach (or holds nodata), the presence channel says "not there" and the pixel stays valid.
            block, pixel_valid = self._read_bands(window)
            block[:, ~pixel_valid] = 0.0
            return np.concatenate([block, pixel_valid[None].astype(np.float32)]), np.ones_like(pixel_valid)
        return self._read_bands(window)

    def _read_bands(self, window):
        data, valid = rasters.read_window(self.ds, self.read_bands, window)
        # In place: `data` is this call's own array, and a window of a 144-band HSI is large enough
        # that every temporary copy shows in peak memory.
        slots = np.asarray(self.slots)
        if np.any(self.scale != 1.0):
            data *= self.scale
        if self.offset is not None:
            data -= self.offset[:, None, None]
        data -= self.mean[slots, None, None]
        data /= self.std[slots, None, None]
        data[~valid] = 0.0
        # A pixel missing any band the model reads is nodata: a zero-filled band is a made-up value
        # (NIR missing in a patch would be read as the training mean and classified regardless).
        pixel_valid = valid.all(axis=0)
        n_bands = self.n_inputs - int(self.presence)
        if len(slots) == n_bands and np.array_equal(slots, np.arange(n_bands)):
            return data, pixel_valid
        block = np.zeros((n_bands,) + data.shape[1:], dtype=np.float32)
        block[slots] = data
        return block, pixel_valid


@dataclass
class AbsentReader:
    """An optional modality the user did not supply: zeros, presence channel 0 (as in training's
    modality dropout), never invalidates a pixel."""
    name: str
    n_inputs: int
    kind: str = "aux"
    path: str = ""
    read_bands: list = field(default_factory=list)
    used_bands: list = field(default_factory=list)

    def read(self, window: Window) -> Tuple[np.ndarray, np.ndarray]:
        shape = (int(window.height), int(window.width))
        return np.zeros((self.n_inputs,) + shape, np.float32), np.ones(shape, bool)


@dataclass
class SpectralReader:
    """A generic model's HSI input: whatever bands the raster has, resampled onto the canonical grid
    (backend.engine.canonical) from their wavelengths, then normalised with the pretraining stats."""
    name: str
    path: str
    ds: object
    source_count: int
    read_bands: list
    weights: np.ndarray       # (bins, len(read_bands))
    covered: np.ndarray       # (bins,) bool
    mean: np.ndarray
    std: np.ndarray
    scale: float = 1.0
    kind: str = "hsi"
    used_bands: list = field(default_factory=list)

    @property
    def n_inputs(self) -> int:
        return canonical.N_FEATURES

    def read(self, window: Window) -> Tuple[np.ndarray, np.ndarray]:
        data, valid = rasters.read_window(self.ds, self.read_bands, window)
        if np.any(self.scale != 1.0):
            data *= self.scale
        data[~valid] = 0.0
        # Each canonical bin is rebuilt from the bands valid at the pixel; a pixel where a covered bin
        # lost more than half of its weight (NIR missing in a patch) is nodata, never a zero-filled guess.
        feats, pixel_valid = canonical.band_features_masked(data, valid, self.weights, self.covered)
        feats -= self.mean[:, None, None]
        feats /= self.std[:, None, None]
        feats[:, ~pixel_valid] = 0.0
        return feats, pixel_valid


# Reflectance is stored ×1, ×100 (percent) or ×10000 (most sensors' integer products). The storage
# convention is told from the value range, not from the brightness: a scene's 99th percentile lies
# below these limits for the conventions in order (a bright ×1 scene stays under 2.5, a dark ×10000 one
# is still far above 250), and a training scene's median below MEDIAN_LIMITS.
REFLECTANCE_CONVENTIONS = (1.0, 100.0, 10000.0)
P99_LIMITS = (2.5, 250.0, 40000.0)
MEDIAN_LIMITS = (1.5, 150.0, 25000.0)
SAME_SCALE = 10.0


def _convention(value: float, limits: Sequence[float]) -> Optional[float]:
    for convention, limit in zip(REFLECTANCE_CONVENTIONS, limits):
        if value <= limit:
            return convention
    return None


def declared_scale(src: DatasetReader, read_bands: Sequence[int]) -> Optional[Tuple[np.ndarray, np.ndarray, str]]:
    """(gain, offset, where) per read band, when the file says how its values map to reflectance
    (physical = value × gain + offset): GDAL's band scale/offset (GeoTIFF, ENVI `data gain values` /
    `data offset values`), else the ENVI header's `reflectance scale factor` (value = reflectance × f)."""
    idx = [b - 1 for b in read_bands]
    gains = np.array([src.scales[i] if src.scales[i] is not None else 1.0 for i in idx], np.float64)
    offsets = np.array([src.offsets[i] if src.offsets[i] is not None else 0.0 for i in idx], np.float64)
    if np.all(np.isfinite(gains)) and np.all(np.isfinite(offsets)) and np.all(gains > 0) and (
            np.any(gains != 1.0) or np.any(offsets != 0.0)):
        return gains, offsets, "the raster's scale/offset metadata"
    factor = src.tags(ns="ENVI").get("reflectance_scale_factor")
    try:
        factor = float(factor) if factor is not None else None
    except ValueError:
        factor = None
    if factor is not None and math.isfinite(factor) and factor > 0 and factor != 1.0:
        return np.full(len(idx), 1.0 / factor), np.zeros(len(idx)), "the ENVI header's reflectance scale factor"
    return None


def _upper_magnitude(src, read_bands):
    data, valid = rasters.overview(src, read_bands)
    values = np.abs(data[valid])
    return float(np.percentile(values, 99)) if values.size else 0.0


def detect_scale(spec: Mapping[str, Any], src: DatasetReader, read_bands: Sequence[int], name: str,
                 log: Callable[..., None], spectral: bool = True) -> Union[float, np.ndarray]:
    """The factor (a number, or one per read band shaped (bands, 1, 1)) that brings this raster's values
    to the scale the model was trained on; the log says where it came from.

    Spectral inputs: a scale the file declares comes first; else the storage convention (×1, ×100,
    ×10000) is told from the value range, which a dark or a bright scene cannot fool. Other inputs (and
    values no convention explains) fall back to the nearest power of ten of the magnitude ratio."""
    trained = spec.get("typical_magnitude")
    if not trained:
        return 1.0
    trained_convention = _convention(float(trained), MEDIAN_LIMITS) if spectral else None
    if trained_convention is not None:
        declared = declared_scale(src, read_bands)
        if declared is not None:
            gains, offsets, where = declared
            factor = gains * trained_convention
            log(f"{name}: values scaled by {', '.join(f'{g:g}' for g in sorted(set(factor.round(12))))} as "
                f"{where} declares (to the ×{trained_convention:g} reflectance the model was trained on)")
            if np.any(offsets != 0):
                log(f"{name}: the declared offsets are not applied (the model was trained on values without "
                    "them)", "warning")
            return float(factor[0]) if np.all(factor == factor[0]) else factor.astype(np.float32)[:, None, None]
        # Values within SAME_SCALE of the training scene's median are stored as it was (the conventions are
        # 100× apart): without this, a raster whose median and 99th percentile fall on either side of the
        # limits (raw Samson DN: median ~120, p99 ~1000) was rescaled when classifying its own training scene.
        current = rasters.typical_magnitude(src, read_bands)
        if current > 0 and SAME_SCALE >= current / float(trained) >= 1 / SAME_SCALE:
            return 1.0
        upper = _upper_magnitude(src, read_bands)
        stored = _convention(upper, P99_LIMITS) if upper > 0 else None
        if stored is not None:
            scale = trained_convention / stored
            if scale != 1.0:
                log(f"{name}: the values (99th percentile {upper:.4g}) look like reflectance ×{stored:g}; the model "
                    f"was trained on ×{trained_convention:g}: scaling them by {scale:g} (a guess from the value "
                    "range; declare the scale in the file's metadata to be sure)", "warning")
            else:
                log(f"{name}: values used as stored (reflectance ×{stored:g}, as in training; guessed from the "
                    "value range)")
            return scale
    current = rasters.typical_magnitude(src, read_bands)
    if current <= 0:
        return 1.0
    ratio = current / trained
    if SCALE_MISMATCH >= ratio >= 1 / SCALE_MISMATCH:
        return 1.0
    scale = 10.0 ** -round(math.log10(ratio))
    log(f"{name}: values are about {ratio:.3g}× those the model was trained on; "
        f"scaling them by {scale:g} (reflectance stored with another scale factor)", "warning")
    return scale


def _spectral_reader(spec, path, src, ds, wavelengths, log):
    from backend.io.spectral import require_wavelengths
    if spec["spectral_grid"] != canonical.GRID_ID:
        raise LandFuseError(ErrorCode.BAD_MODEL,
                            f"The model reads spectra on the grid {spec['spectral_grid']!r}; this backend knows "
                            f"{canonical.GRID_ID!r}.", "Update LandFuse, or use a model made by this version.")
    centres, _, source = require_wavelengths(src, wavelengths)
    good, bad = good_bands(src, spec["name"], log)
    weights, covered = canonical.resampling([centres[b - 1] for b in good])
    trained = spec.get("trained_coverage")
    if not isinstance(trained, list) or len(trained) != canonical.N_BINS:
        raise LandFuseError(ErrorCode.BAD_MODEL, "The generic model's manifest lacks a valid 'trained_coverage' list.")
    covered, dropped = canonical.restrict_to_trained(covered, trained)
    if len(dropped):
        log(f"{spec['name']}: {len(dropped)} canonical bin(s) the model never saw measured are ignored: "
            f"{', '.join(f'{w:g}' for w in dropped)} nm")
    problem = canonical.coverage_problem(covered)
    if problem:
        in_range = [c for c in centres if canonical.GRID_START_NM - canonical.COVER_NM <= c
                    <= canonical.GRID_STOP_NM + canonical.COVER_NM]
        if not in_range:
            what = (f"no band of {os.path.basename(path)} lies in {canonical.GRID_START_NM:g}–"
                    f"{canonical.GRID_STOP_NM:g} nm, the range this model reads")
        else:
            what = (f"of its {len(centres)} band(s), {len(good)} hold data (not flagged bad, not empty) and they "
                    f"cover {int(covered.sum())} of the model's {canonical.N_BINS} spectral bins: {problem}")
        raise LandFuseError(ErrorCode.BAND_MISMATCH,
                            f"The spectral coverage of {os.path.basename(path)} is too poor to classify: {what} "
                            f"(band centres {min(centres):g}–{max(centres):g} nm, from the {source}).",
                            "Check the wavelength units (nm or µm) and values, or pass --wavelengths; a map made "
                            "from so few bands would be wrong.")
    log(f"{spec['name']}: {len(good)} bands at {min(centres):.0f}–{max(centres):.0f} nm (from the {source}) "
        f"resampled onto {int(covered.sum())} of {canonical.N_BINS} canonical bins")
    reader = SpectralReader(name=spec["name"], path=path, ds=ds, source_count=src.count, read_bands=good,
                            weights=weights, covered=covered, mean=np.asarray(spec["mean"], np.float32),
                            std=np.asarray(spec["std"], np.float32), used_bands=good)
    reader.scale = detect_scale(spec, src, good, spec["name"], log)
    _warn_if_radiance(src, good, [centres[b - 1] for b in good], spec["name"], log)
    return reader


def _warn_if_radiance(src: DatasetReader, bands: Sequence[int], centres: Sequence[float], name: str,
                      log: Callable[..., None]) -> None:
    """A generic model reads surface reflectance; at-sensor radiance gives it a confident, wrong map (on
    AVIRIS Indian Pines radiance it calls most field pixels roof). Say so when the scene-mean spectrum
    keeps the atmosphere's absorptions (canonical.radiance_evidence); the map is still made."""
    spectrum = rasters.low_level(src, bands, percentile=50.0)   # the per-band median of the overview
    evidence = canonical.radiance_evidence(canonical.absorption_depths(centres, spectrum))
    if evidence:
        log(f"{name}: the scene's mean spectrum keeps the atmosphere's absorption bands ({evidence}: depth below "
            "the line between the neighbouring bands), as at-sensor radiance does: the generic model reads "
            "surface reflectance and its map of radiance will be wrong. Correct the image atmospherically "
            "first, or train a model on your own labels (train reads any values).", "warning")


def good_bands(ds: DatasetReader, name: str, log: Callable[..., None]) -> Tuple[List[int], Set[int]]:
    flagged = rasters.bad_band_flags(ds)
    empty = rasters.empty_bands(ds) - flagged
    if flagged:
        log(f"{name}: {len(flagged)} band(s) flagged bad in the metadata are dropped: {sorted(flagged)}")
    if empty:
        log(f"{name}: {len(empty)} band(s) without any valid pixel are dropped: {sorted(empty)}")
    return [b for b in range(1, ds.count + 1) if b not in flagged and b not in empty], flagged | empty


def _reader_for_training(name, kind, path, src, ds, log):
    good, _ = good_bands(src, name, log)
    if not good:
        raise LandFuseError(ErrorCode.INPUT_UNREADABLE, f"The {name} raster has no valid band: {path}")
    return ModalityReader(name=name, kind=kind, path=path, ds=ds, source_count=src.count, read_bands=good,
                          slots=list(range(len(good))), n_inputs=len(good), used_bands=good)


def _reader_for_model(spec, kind, path, src, ds, log):
    name = spec["name"]
    n_inputs = spec["bands"]
    source = spec.get("source_bands", n_inputs)
    used = spec.get("used_bands") or list(range(1, n_inputs + 1))
    good, bad = good_bands(src, name, log)
    if src.count == source:
        pairs = [(b, slot) for slot, b in enumerate(used) if b not in bad]
        missing = [b for b in used if b in bad]
        if len(missing) > MAX_MISSING_SHARE * len(used):
            raise LandFuseError(
                ErrorCode.BAND_MISMATCH,
                f"{len(missing)} of the {len(used)} bands the model reads are flagged bad or hold no valid pixel in "
                f"the {name} raster {os.path.basename(path)}: too few measured bands for a trustworthy map.",
                "Check the raster's bad-band list and nodata value, or train a model on the bands it has.")
        if missing:
            log(f"{name}: {len(missing)} band(s) the model uses are bad in this raster and are filled "
                f"with the training mean: {missing}", "warning")
    elif len(good) == n_inputs:
        pairs = [(b, slot) for slot, b in enumerate(good)]
    else:
        raise LandFuseError(
            ErrorCode.BAND_MISMATCH,
            f"The {name} raster {os.path.basename(path)} has {src.count} bands ({len(bad)} bad); "
            f"the model expects {source} bands, of which it uses {n_inputs}.",
            "Pick the raster the model was trained for, or train/fine-tune a model on this sensor.")
    if not pairs:
        raise LandFuseError(ErrorCode.BAND_MISMATCH,
                            f"Every band the model uses is bad or empty in the {name} raster {path}.")
    reader = ModalityReader(name=name, kind=kind, path=path, ds=ds, source_count=src.count,
                            read_bands=[b for b, _ in pairs], slots=[s for _, s in pairs], n_inputs=n_inputs,
                            mean=np.asarray(spec["mean"], np.float32), std=np.asarray(spec["std"], np.float32),
                            used_bands=used)
    if spec.get("scene_offset") == SCENE_OFFSET:
        reader.offset = rasters.low_level(ds, reader.read_bands)  # over the HSI extent, as in training
        log(f"{name}: values taken relative to the scene's low level ({SCENE_OFFSET}: {reader.offset.round(2).tolist()})")
    reader.scale = detect_scale(spec, src, reader.read_bands, name, log, spectral=kind == "hsi")
    if reader.offset is not None:   # the scene's low level was measured on the values as stored
        reader.offset = (reader.offset * np.ravel(reader.scale)).astype(np.float32)
    if spec.get("optional"):
        reader.presence = True
        reader.n_inputs += 1
    return reader


@contextlib.contextmanager
def open_modalities(hsi_path: str, aux_paths: Optional[Sequence[str]], specs: Optional[Sequence[Mapping[str, Any]]] = None,
                    log: Callable[..., None] = lambda message, level="info": None,
                    wavelengths: Optional[Sequence[float]] = None,
                    ) -> Iterator[Tuple[DatasetReader, List[Union[ModalityReader, AbsentReader, SpectralReader]]]]:
    """Open the HSI and each aux (aligned on the HSI grid); yield (hsi dataset, [reader per modality]).

    With `specs` (the manifest's modalities) the band layout is checked against the model; without
    them (training) every good band is used. Optional modalities the user leaves out (the last ones)
    read as absent. `wavelengths` (nm) overrides the HSI's band metadata for generic models.
    """
    aux_paths = list(aux_paths or [])
    with contextlib.ExitStack() as stack:
        hsi = stack.enter_context(rasters.open_raster(hsi_path, "hyperspectral"))
        n_required = 1 + sum(1 for s in (specs or [])[1:] if not s.get("optional"))
        if specs is not None and not n_required <= 1 + len(aux_paths) <= len(specs):
            names = ", ".join(s["name"] + (" (optional)" if s.get("optional") else "") for s in specs[1:]) or "none"
            raise LandFuseError(ErrorCode.BAND_MISMATCH,
                                f"The model takes the HSI plus {len(specs) - 1} auxiliary raster(s) ({names}); "
                                f"{len(aux_paths)} were given.",
                                "Add or remove auxiliary layers to match the model.")
        if rasters.dataset_crs(hsi) is None:
            if hsi.gcps[0]:
                log("The hyperspectral raster is georeferenced by ground control points only: the outputs carry "
                    "the same GCPs (auxiliary rasters must then share its pixel grid).", "warning")
            else:
                log("The hyperspectral raster has no usable CRS: the output will not be georeferenced.", "warning")
        # (kind, path, the raster as stored: band metadata, the raster on the HSI grid: pixels)
        datasets = [("hsi", hsi_path, hsi, hsi)]
        for path in aux_paths:
            aux = stack.enter_context(rasters.open_raster(path, "auxiliary"))
            mode = rasters.check_overlap(hsi, aux, path)
            if mode == "warp" and rasters.zero_fill_suspected(aux):
                log(f"{os.path.basename(path)} has no nodata value and exact zeros far below all its other values "
                    "(a warp's zero-filled corners): those zeros are read as nodata, not as height 0", "warning")
            datasets.append(("aux", path, aux, stack.enter_context(rasters.aligned_aux(hsi, aux, mode))))
        readers = []
        for i, (kind, path, src, ds) in enumerate(datasets):
            if specs is None:
                name = "hsi" if i == 0 else f"aux{i}"
                readers.append(_reader_for_training(name, kind, path, src, ds, log))
            elif i == 0 and specs[0].get("spectral_grid"):
                readers.append(_spectral_reader(specs[0], path, src, ds, wavelengths, log))
            else:
                readers.append(_reader_for_model(specs[i], kind, path, src, ds, log))
        for spec in (specs or [])[len(datasets):]:
            log(f"{spec['name']}: not given; the model runs without it (it was trained to)")
            readers.append(AbsentReader(name=spec["name"], n_inputs=spec["bands"] + 1))
        yield hsi, readers
