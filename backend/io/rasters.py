"""Reading input rasters: validation, band metadata (bad bands), aux alignment onto the HSI grid.

The HSI grid is the reference. Each aux raster is warped onto it on the fly (rasterio WarpedVRT,
bilinear), so a window of any modality is read at the same pixel positions without ever holding a
whole warped raster in memory.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import TYPE_CHECKING, ContextManager, Literal, Optional, Sequence, Set, Tuple, Union

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from backend.protocol import ErrorCode, LandFuseError

if TYPE_CHECKING:
    from rasterio.crs import CRS
    from rasterio.io import DatasetReader

    # What the functions below read from: a raster as opened, or an aux raster warped onto the HSI grid.
    Dataset = Union[DatasetReader, WarpedVRT]

# A decimated read of at most this many pixels per side is enough to tell bands that are empty
# everywhere and to estimate value scale, without reading a whole large raster.
OVERVIEW_SIDE = 512
OVERVIEW_CHUNK_BYTES = 64 << 20  # one overview read: whole blocks, every band, at most about this much
MEDIAN_SAMPLE = 1 << 20


def gdal_env() -> rasterio.Env:
    """The GDAL settings every backend command runs under (a rasterio.Env context).

    GDAL's block cache defaults to 5 % of RAM and fills up as windows stream through, so peak memory
    would grow with the raster; a fixed cache keeps windowed work flat. GDAL_NUM_THREADS lets GDAL
    decode the compressed blocks of one window on every core (a deflate-compressed 512 px window of
    144 bands: ~0.4 s on one core of this CPU, ~0.2 s on two)."""
    return rasterio.Env(GDAL_CACHEMAX=int(os.environ.get("LANDFUSE_GDAL_CACHE_MB", "256")) * 1024 * 1024,
                        GDAL_NUM_THREADS=os.environ.get("LANDFUSE_GDAL_THREADS", "ALL_CPUS"))


def require_regular_file(path: str, role: str = "input") -> None:
    """Refuse a FIFO, device or socket as an input: reading one blocks forever or never ends."""
    import stat
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise LandFuseError(ErrorCode.INPUT_UNREADABLE,
                            f"The {role} path is not a regular file (a pipe, device or socket): {path}",
                            "Give the path of a file on disk.")


def open_raster(path: Optional[str], role: str = "input") -> DatasetReader:
    """Open a raster for reading, turning every failure into a typed, readable error."""
    if not path or not os.path.exists(path):
        raise LandFuseError(ErrorCode.INPUT_NOT_FOUND, f"The {role} raster does not exist: {path}",
                            "Check the path; the file may have been moved or deleted.")
    if os.path.isdir(path):
        raise LandFuseError(ErrorCode.INPUT_UNREADABLE, f"The {role} path is a folder, not a raster: {path}")
    require_regular_file(path, role)
    if not os.access(path, os.R_OK):
        raise LandFuseError(ErrorCode.INPUT_UNREADABLE, f"The {role} raster cannot be read (permission denied): {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NotGeoreferencedWarning is handled by the caller
            ds = rasterio.open(path)
    except RasterioIOError as exc:
        raise LandFuseError(ErrorCode.INPUT_UNREADABLE,
                            f"The {role} raster could not be opened as an image ({path}): {exc}",
                            "The file may be truncated or not a raster format GDAL reads (GeoTIFF, ENVI, …).") from exc
    if ds.count < 1 or ds.width < 1 or ds.height < 1:
        ds.close()
        raise LandFuseError(ErrorCode.INPUT_UNREADABLE, f"The {role} raster holds no pixels: {path}")
    return ds


def dataset_crs(ds: Dataset) -> Optional[CRS]:
    """The dataset's CRS, or None when it has none or GDAL cannot make sense of it."""
    try:
        crs = ds.crs
        if crs is None or not crs.to_wkt():
            return None
        return crs
    except Exception:  # malformed CRS strings in ENVI headers raise from deep inside GDAL
        return None


def is_georeferenced(ds: Dataset) -> bool:
    return dataset_crs(ds) is not None and not ds.transform.is_identity


def _parse_envi_list(text):
    return [t.strip() for t in text.strip().strip("{}").split(",") if t.strip()]


def bad_band_flags(ds: Dataset) -> Set[int]:
    """Bands flagged bad in metadata (`bbl` = 0), as a set of 1-based band numbers.

    Read from per-band `bbl` items (GeoTIFFs written by EnMAP-Box and others) and from the ENVI
    header's `bbl` list (GDAL exposes it in the ENVI metadata domain).
    """
    bad = set()
    for b in range(1, ds.count + 1):
        value = ds.tags(b).get("bbl")
        if value is not None and value.strip() in ("0", "0.0", "false", "False"):
            bad.add(b)
    envi_bbl = ds.tags(ns="ENVI").get("bbl")
    if envi_bbl:
        flags = _parse_envi_list(envi_bbl)
        if len(flags) == ds.count:
            bad.update(i + 1 for i, f in enumerate(flags) if _flag_is_zero(f))
    return bad


def _flag_is_zero(text: str) -> bool:
    """An ENVI `bbl` entry: 0 marks a bad band; junk is taken as no flag (empty bands are found anyway)."""
    try:
        return float(text) == 0
    except ValueError:
        return text.strip().lower() in ("false", "no", "bad")


def valid_mask(ds: Dataset, data: np.ndarray, indexes: Sequence[int], window: Optional[Window] = None) -> np.ndarray:
    """Per-band validity of `data` (bands, rows, cols): GDAL's mask, the nodata value and NaN."""
    valid = values_valid(ds, data)
    if needs_mask_band(ds, indexes):
        valid &= ds.read_masks(indexes, window=window) > 0
    return valid


def values_valid(ds: Dataset, data: np.ndarray) -> np.ndarray:
    """Where `data` is neither NaN/inf nor the raster's nodata value (GDAL's mask aside)."""
    valid = np.isfinite(data)
    if ds.nodata is not None and not np.isnan(ds.nodata):
        valid &= data != ds.nodata
    return valid


def needs_mask_band(ds: Dataset, indexes: Sequence[int]) -> bool:
    """Whether GDAL's mask says more than the nodata comparison above: an internal mask or an alpha
    band, or per-band nodata values that differ. A mask derived from nodata is computed by decoding
    every block a second time (half of a compressed window's read time), so it is skipped when the
    comparison with the one nodata value gives the same answer."""
    from rasterio.enums import MaskFlags
    simple = {MaskFlags.all_valid, MaskFlags.nodata}
    flags, nodatavals = ds.mask_flag_enums, ds.nodatavals  # properties that query every band: read once
    if any(not set(flags[i - 1]) <= simple for i in indexes):
        return True
    nodatas = {("nan" if v is not None and np.isnan(v) else v) for v in (nodatavals[i - 1] for i in indexes)}
    return len(nodatas) > 1


@contextlib.contextmanager
def _reading(ds):
    """Turn a read failure deep inside a file (truncated, corrupt blocks) into a typed error."""
    try:
        yield
    except RasterioIOError as exc:
        raise LandFuseError(ErrorCode.INPUT_UNREADABLE,
                            f"Reading {os.path.basename(ds.name)} failed: the file is damaged or truncated ({exc}).",
                            "Re-export or re-download the raster.") from exc


_OVERVIEWS = {}


def overview(ds: Dataset, indexes: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """A decimated read of the given bands and their validity (computed once per raster and bands)."""
    key = (ds.name, ds.width, ds.height, tuple(indexes))
    if key not in _OVERVIEWS:
        if len(_OVERVIEWS) > 8:
            _OVERVIEWS.clear()
        with _reading(ds):
            _OVERVIEWS[key] = _overview_unchecked(ds, indexes)
    return _OVERVIEWS[key]


def _overview_unchecked(ds, indexes):
    # Every band at once, one block row at a time, in chunks of whole blocks: each compressed block is
    # decoded once whatever GDAL's cache holds. Reading a band at a time re-decodes a pixel-interleaved
    # block once per band (20+ minutes for a 4096² × 64-band GeoTIFF); reading each sampled row across
    # the full width re-decodes the block row for every sampled row once a block row of all bands
    # outgrows the cache (1024² × 260 bands, 256 px tiles, 64 MiB cache: 141 s).
    step = max(1, int(np.ceil(max(ds.width, ds.height) / OVERVIEW_SIDE)))
    rows, cols = np.arange(0, ds.height, step), np.arange(0, ds.width, step)
    data = np.empty((len(indexes), len(rows), len(cols)), np.float32)
    valid = np.ones(data.shape, bool)
    masked = needs_mask_band(ds, indexes)
    block_h, block_w = ds.block_shapes[indexes[0] - 1]
    bytes_per_block = len(indexes) * block_h * block_w * np.dtype(ds.dtypes[indexes[0] - 1]).itemsize
    chunk_w = block_w * max(1, OVERVIEW_CHUNK_BYTES // bytes_per_block)
    for r0 in range(0, ds.height, block_h):
        rs = np.flatnonzero((rows >= r0) & (rows < r0 + block_h))
        if not rs.size:
            continue
        for c0 in range(0, ds.width, chunk_w):
            cs = np.flatnonzero((cols >= c0) & (cols < c0 + chunk_w))
            if not cs.size:
                continue
            # The window starts on sampled pixels, so [::step] picks exactly the sampled ones.
            window = Window(int(cols[cs[0]]), int(rows[rs[0]]), int(cols[cs[-1]] - cols[cs[0]] + 1),
                            int(rows[rs[-1]] - rows[rs[0]] + 1))
            where = (slice(None), slice(rs[0], rs[-1] + 1), slice(cs[0], cs[-1] + 1))
            data[where] = ds.read(indexes, window=window)[:, ::step, ::step]
            if masked:
                valid[where] = ds.read_masks(indexes, window=window)[:, ::step, ::step] > 0
    valid &= values_valid(ds, data)
    return data, valid


def empty_bands(ds: Dataset) -> Set[int]:
    """1-based bands with no valid pixel in a decimated read (nodata everywhere)."""
    indexes = list(range(1, ds.count + 1))
    _, valid = overview(ds, indexes)
    return {b for b, v in zip(indexes, valid) if not v.any()}


def typical_magnitude(ds: Dataset, indexes: Sequence[int]) -> float:
    """Median absolute valid value of the given bands (decimated): tells reflectance ×1 from ×10000."""
    data, valid = overview(ds, indexes)
    # A regular subsample of ~MEDIAN_SAMPLE values: the answer only has to be right within a factor of
    # SCALE_MISMATCH (30), and the median of a 144-band overview (38M values) took 0.2 s per run.
    step = max(1, int(np.sqrt(data.size / MEDIAN_SAMPLE)))
    values = np.abs(data[:, ::step, ::step][valid[:, ::step, ::step]])
    return float(np.median(values)) if values.size else 0.0


def low_level(ds: Dataset, indexes: Sequence[int], percentile: float = 2.0) -> np.ndarray:
    """Per-band low percentile of valid values (decimated): the ground level of a DSM."""
    data, valid = overview(ds, indexes)
    return np.array([np.percentile(d[v], percentile) if v.any() else 0.0 for d, v in zip(data, valid)],
                    dtype=np.float32)


def _short(text: object, limit: int = 300) -> str:
    """An error text cut to `limit` characters (a PROJJSON CRS runs to kilobytes)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"


def check_overlap(hsi: DatasetReader, aux: DatasetReader, path: str,
                  role: str = "auxiliary raster") -> Literal["pixel", "warp"]:
    """Aux (or labels: `role`) must carry a CRS (or both carry none and share the pixel grid) and overlap the HSI."""
    hsi_crs, aux_crs = dataset_crs(hsi), dataset_crs(aux)
    if hsi_crs is None or aux_crs is None:
        same_size = (aux.width, aux.height) == (hsi.width, hsi.height)
        if hsi_crs is None and aux_crs is None and same_size:
            return "pixel"  # neither is georeferenced; co-registered by array position
        which = "the HSI" if hsi_crs is None else f"the {role} {os.path.basename(path)}"
        lacking, other = ("the HSI", f"the {role}") if hsi_crs is None else (f"the {role}", "the HSI")
        if same_size:
            hint = (f"Both have the same size: if they are co-registered pixel by pixel, give {lacking} the CRS "
                    f"of {other} (QGIS: Layer Properties → Source; or gdal_edit.py -a_srs), so both carry one.")
        else:
            hint = "Assign the CRS in QGIS (Layer Properties → Source) or with gdal_edit.py -a_srs."
        raise LandFuseError(ErrorCode.NO_CRS,
                            f"Cannot line up the rasters: {which} has no usable coordinate reference system.", hint)
    from rasterio.warp import transform_bounds
    try:
        left, bottom, right, top = transform_bounds(aux_crs, hsi_crs, *aux.bounds, densify_pts=21)
    except Exception as exc:
        raise LandFuseError(ErrorCode.CRS_NO_OVERLAP,
                            f"The {role} {os.path.basename(path)} cannot be transformed into the HSI's CRS: "
                            f"{_short(exc)}") from exc
    h = hsi.bounds
    if not (left < h.right and right > h.left and bottom < h.top and top > h.bottom) or not np.all(
            np.isfinite([left, bottom, right, top])):
        raise LandFuseError(ErrorCode.CRS_NO_OVERLAP,
                            f"The {role} {os.path.basename(path)} does not overlap the hyperspectral image.",
                            "Check that both layers cover the same area and carry the right CRS.")
    return "warp"


def aligned_aux(hsi: DatasetReader, aux: DatasetReader, mode: str) -> ContextManager[Dataset]:
    """A dataset that reads `aux` on the HSI grid (a WarpedVRT unless both share a bare pixel grid)."""
    if mode == "pixel":
        return contextlib.nullcontext(aux)
    kwargs = dict(crs=dataset_crs(hsi), transform=hsi.transform, width=hsi.width, height=hsi.height,
                  resampling=Resampling.bilinear)
    if aux.nodata is None or np.isnan(aux.nodata):
        # Without a nodata value the warper would fill outside the aux extent with 0, a valid height
        # that then drags the scene's ground level to 0. (An alpha band is no cure: the bands' own masks
        # still say "all valid", so nothing reads it.) Warped to float32 with NaN as nodata instead,
        # every pixel the aux does not cover reads as invalid; zero-filled corners that an earlier
        # gdalwarp left in the file (`zero_fill_suspected`) are taken as nodata too.
        kwargs.update(nodata=np.nan, dtype="float32")
        if aux.nodata is None and zero_fill_suspected(aux):
            kwargs["src_nodata"] = 0
    return WarpedVRT(aux, **kwargs)


def zero_fill_suspected(ds: Dataset) -> bool:
    """Whether exact zeros in a raster without a nodata value are fill rather than data: they make up at
    least 0.5 % of the pixels, and every other value lies far from 0 (its minimum above half its
    median, as for elevations above sea level with gdalwarp's zero-filled corners). A height model
    relative to the ground (0–20 m) or a SAR image has values near 0 and is left alone."""
    if ds.nodata is not None or ds.count < 1:
        return False
    data, valid = overview(ds, list(range(1, ds.count + 1)))
    values = data[valid]
    if values.size == 0:
        return False
    zeros = values == 0
    rest = values[~zeros]
    if zeros.mean() < 0.005 or rest.size < 0.1 * values.size:
        return False
    return bool(rest.min() > 0.5 * np.median(rest) > 0)


def read_window(ds: Dataset, indexes: Sequence[int], window: Window) -> Tuple[np.ndarray, np.ndarray]:
    """Read bands as float32 plus their per-band validity for a window."""
    with _reading(ds):
        data = ds.read(indexes, window=window).astype(np.float32, copy=False)
        return data, valid_mask(ds, data, indexes, window=window)


def full_window(ds: Dataset) -> Window:
    return Window(0, 0, ds.width, ds.height)

