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
            block, pixel_valid = self._read_bands(window)
            return np.concatenate([block, pixel_valid[None].astype(np.float32)]), pixel_valid
        return self._read_bands(window)

    def _read_bands(self, window):
        data, valid = rasters.read_window(self.ds, self.read_bands, window)
        # In place: `data` is this call's own array, and a window of a 144-band HSI is large enough
        # that every temporary copy shows in peak memory.
        slots = np.asarray(self.slots)
        if self.scale != 1.0:
            data *= self.scale
        if self.offset is not None:
            data -= self.offset[:, None, None]
        data -= self.mean[slots, None, None]
        data /= self.std[slots, None, None]
        data[~valid] = 0.0
        pixel_valid = valid.any(axis=0)
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
        if self.scale != 1.0:
            data *= self.scale
        # A pixel is valid when most of its good bands are; the odd missing value counts as 0.
        pixel_valid = valid.mean(axis=0) > 0.5
        data[~valid] = 0.0
        feats = canonical.band_features(data, self.weights, self.covered)
        feats -= self.mean[:, None, None]
        feats /= self.std[:, None, None]
        feats[:, ~pixel_valid] = 0.0
        return feats, pixel_valid


def detect_scale(spec: Mapping[str, Any], src: DatasetReader, read_bands: Sequence[int], name: str,
                 log: Callable[..., None]) -> float:
    """The factor that brings this raster's values to the scale the model was trained on."""
    trained = spec.get("typical_magnitude")
    if not trained:
        return 1.0
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
    if not covered.any():
        raise LandFuseError(ErrorCode.BAND_MISMATCH,
                            f"No band of {os.path.basename(path)} lies in {canonical.GRID_START_NM:g}–"
                            f"{canonical.GRID_STOP_NM:g} nm, the range this model reads "
                            f"(band centres {min(centres):g}–{max(centres):g} nm, from the {source}).",
                            "Check the wavelength units (nm or µm) or pass --wavelengths.")
    log(f"{spec['name']}: {len(good)} bands at {min(centres):.0f}–{max(centres):.0f} nm (from the {source}) "
        f"resampled onto {int(covered.sum())} of {canonical.N_BINS} canonical bins")
    reader = SpectralReader(name=spec["name"], path=path, ds=ds, source_count=src.count, read_bands=good,
                            weights=weights, covered=covered, mean=np.asarray(spec["mean"], np.float32),
                            std=np.asarray(spec["std"], np.float32), used_bands=good)
    reader.scale = detect_scale(spec, src, good, spec["name"], log)
    return reader


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
    reader.scale = detect_scale(spec, src, reader.read_bands, name, log)
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
            log("The hyperspectral raster has no usable CRS: the output will not be georeferenced.", "warning")
        # (kind, path, the raster as stored: band metadata, the raster on the HSI grid: pixels)
        datasets = [("hsi", hsi_path, hsi, hsi)]
        for path in aux_paths:
            aux = stack.enter_context(rasters.open_raster(path, "auxiliary"))
            mode = rasters.check_overlap(hsi, aux, path)
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
