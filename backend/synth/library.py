"""Real reflectance spectra in the generic 6-class scheme, on one common wavelength grid.

Three sources are read with numpy/scipy only:

* berlin   - the EnMAP-Box Berlin urban library (75 spectra, EnMAP-resampled, 460-2409 nm), from
             ../shared/data/enmap_berlin/library_berlin.{sli,hdr,csv};
* houston  - the GRSS DFC2013 Houston training pixels (CASI, 144 bands, 380-1050 nm), from
             ../shared/data/benchmarks/houston2013/{HSI_TrSet,TrLabel_vec}.mat;
* earthlib - the spectral library shipped inside the `earthlib` pip package (MIT; 400-2450 nm every
             10 nm with the 1350-1460 and 1790-1960 nm water-absorption regions cut out). Its data files
             are read directly: importing earthlib would pull in loguru and pandas for nothing.

Every spectrum is put on GRID_NM by linear interpolation between its own measured bands. Grid points
outside the measured range, or inside a gap wider than MAX_GAP_NM between two adjacent measured bands,
are NaN, so a caller can tell "not measured" from "dark" and ask only for spectra covering its sensor.
"""

import csv
import importlib.util
import os
import re
import zlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .scene import DEMO_CLASSES

GENERIC_CLASSES = DEMO_CLASSES   # one class table for the demo scenes and the generic model

# 350..2500 nm every 5 nm: spans every source (380-2450 nm) and is finer than all of their band spacings,
# so resampling onto it loses next to nothing.
GRID_NM = np.arange(350.0, 2500.0 + 1.0, 5.0, dtype=np.float64)

# Interpolating across a wider hole between two measured bands would invent the water-absorption regions
# (Berlin and earthlib cut 110-260 nm out there); the Berlin VNIR/SWIR detector joint (19 nm) stays filled.
MAX_GAP_NM = 25.0

# Grid windows (inclusive, nm) where Berlin (1325-1520, 1785-2040) or earthlib (1355-1455, 1795-1955) has no
# data: the deep water-vapour absorptions. Pass them as skip_nm to covering/sample_class_spectra for a
# sensor spanning the SWIR, otherwise no spectrum covers it; the draws are then NaN there, to be bridged.
LIBRARY_GAPS_NM = ((1325.0, 1520.0), (1785.0, 2040.0))

# Files read under the data folder (earthlib's come from its installed package); for provenance hashes.
SOURCE_FILES = ("enmap_berlin/library_berlin.sli", "enmap_berlin/library_berlin.hdr",
                "enmap_berlin/library_berlin.csv", "benchmarks/houston2013/HSI_TrSet.mat",
                "benchmarks/houston2013/TrLabel_vec.mat")

# Houston's files carry no wavelengths. The DFC2013 CASI data are documented as 144 bands over 380-1050 nm,
# so the band centres are ASSUMED evenly spaced over that range (about 4.7 nm apart).
HOUSTON_WAVELENGTHS_NM = np.linspace(380.0, 1050.0, 144)

# The whole source-class -> generic-class mapping. Rows: (source, source class, generic value or None =
# excluded, why). Source classes: berlin = the library's level_3 name; houston = "<DFC2013 label> <name>";
# earthlib = "LEVEL_2/LEVEL_3" of its spectra.csv. A source class missing here makes load_library fail,
# so new data can never be mapped silently.
CLASS_MAP = (
    ("berlin", "roof", 1, "level-3 class of the library"),
    ("berlin", "pavement", 2, "level-3 class; the library also files artificial turf, tartan, railtrack "
                              "and cinder courts here"),
    ("berlin", "low vegetation", 3, "level-3 class (grasses, crops)"),
    ("berlin", "tree", 4, "level-3 class (deciduous and coniferous crowns)"),
    ("berlin", "soil", 5, "level-3 class (bare soil, playground sand)"),
    ("berlin", "water", 6, "level-3 class"),
    ("houston", "1 healthy grass", 3, "lawn"),
    ("houston", "2 stressed grass", 3, "lawn"),
    ("houston", "3 synthetic grass", None, "plastic turf: not vegetation, unlike any Berlin pavement"),
    ("houston", "4 trees", 4, "tree crowns"),
    ("houston", "5 soil", 5, "bare soil"),
    ("houston", "6 water", 6, "water"),
    ("houston", "7 residential", None, "mixed roofs, lawns and trees within a 2.5 m pixel"),
    ("houston", "8 commercial", 1, "large flat commercial roofs"),
    ("houston", "9 road", 2, "road surface"),
    ("houston", "10 highway", 2, "road surface"),
    ("houston", "11 railway", None, "rails, sleepers and ballast mixed"),
    ("houston", "12 parking lot 1", 2, "empty parking surface"),
    ("houston", "13 parking lot 2", None, "parked cars, not a ground material"),
    ("houston", "14 tennis court", 2, "sealed sports surface"),
    ("houston", "15 running track", 2, "sealed sports surface"),
    ("earthlib", "built/comp_shingle", 1, "roofing material"),
    ("earthlib", "built/wood_shingle", 1, "roofing material"),
    ("earthlib", "built/concrete_tile", 1, "roofing material"),
    ("earthlib", "built/tile", 1, "roofing material"),
    ("earthlib", "built/metal", 1, "roofing material"),
    ("earthlib", "built/road", 2, "road surface"),
    ("earthlib", "built/asphalt", 2, "road surface"),
    ("earthlib", "built/parking_lot", 2, "paved surface"),
    ("earthlib", "built/sidewalk", 2, "paved surface"),
    ("earthlib", "built/driveway", 2, "paved surface"),
    ("earthlib", "built/bridge", 2, "road deck"),
    ("earthlib", "built/gravel", None, "loose gravel: neither sealed pavement nor soil"),
    ("earthlib", "built/paint", None, "road markings and paint samples, not an area-covering material"),
    ("earthlib", "built/other", None, "unspecified"),
    ("earthlib", "built/manhole", None, "tiny objects"),
    ("earthlib", "built/glass", None, "specular, 2 samples"),
    ("earthlib", "built/mixed", None, "mixed materials"),
    ("earthlib", "bare/soil", 5, "bare soil"),
    ("earthlib", "bare/sand", 5, "sand"),
    ("earthlib", "bare/dirt", 5, "dirt"),
    ("earthlib", "bare/gravel", 5, "natural gravel ground"),
    # Litter was low vegetation until issue 18: its spectra have no red edge and rise like soil's, so the
    # generic model learnt "soil-shaped spectrum -> low vegetation" and called bare soil low vegetation on
    # real scenes (Samson: 2,778 of 2,836 soil pixels). Green and dry grass stay low vegetation through
    # Berlin, Houston and the parametric dry grass (green canopy mixed with litter keeps its red edge).
    ("earthlib", "npv/litter", None, "dead leaves and grass alone look like soil (no red edge): not a land cover "
                                     "the six classes can name from the spectrum"),
    ("earthlib", "npv/bark", None, "woody parts, not a land cover seen from above"),
    ("earthlib", "npv/wood", None, "woody parts, not a land cover seen from above"),
    ("earthlib", "npv/npv", None, "unspecified non-photosynthetic material"),
    ("earthlib", "burned/char", None, "burnt ground and ash: no class for it"),
    # The 2000 canopies are PROSAIL simulations (NOTES = "modeled canopy reflectance" for all). Their only
    # other metadata is in the NAME (e.g. "v-LAI-3.9-LMA-0.011-CHL-11.5-N-2.0": leaf area index, dry
    # matter, chlorophyll, leaf structure). None of these encodes growth form: LAI 0.5-11 and LMA
    # 0.005-0.025 overlap for lawns, crops and tree crowns, and SAIL's turbid-medium canopy has no crowns,
    # shadows or wood. With no reliable tree/grass criterion, and since they are modelled rather than
    # measured, they are left out; Berlin and Houston supply measured grass and tree spectra.
    ("earthlib", "vegetation/canopy", None, "simulated PROSAIL canopies: tree vs grass not recoverable"),
)

SOURCES = ("berlin", "houston", "earthlib")

_CACHE = {}


@dataclass
class SpectrumSet:
    """k spectra on GRID_NM with their generic class, unique name and source."""

    wavelengths_nm: np.ndarray
    spectra: np.ndarray
    classes: np.ndarray
    names: np.ndarray
    sources: np.ndarray

    def __len__(self):
        return int(self.classes.shape[0])

    def subset(self, mask) -> "SpectrumSet":
        """The spectra selected by a boolean mask or an index array (copies)."""
        mask = np.asarray(mask)
        return SpectrumSet(self.wavelengths_nm, self.spectra[mask], self.classes[mask], self.names[mask],
                           self.sources[mask])

    def covering(self, lo_nm, hi_nm, skip_nm=()) -> np.ndarray:
        """Bool (k,): spectra measured (no NaN) at every grid point within [lo_nm, hi_nm], except inside
        the (lo, hi) windows of skip_nm. Without skip_nm no spectrum covers a range across 1350-1460 or
        1790-1960 nm, because Berlin and earthlib did not measure the water-absorption regions."""
        if lo_nm > hi_nm:
            raise ValueError(f"empty wavelength range [{lo_nm}, {hi_nm}] nm")
        wl = self.wavelengths_nm
        inside = (wl >= lo_nm) & (wl <= hi_nm)
        for a, b in skip_nm:
            inside &= ~((wl >= a) & (wl <= b))
        return ~np.isnan(self.spectra[:, inside]).any(axis=1)

    def counts(self) -> dict:
        """{(source, class): number of spectra}."""
        out = {}
        for s, c in zip(self.sources.tolist(), self.classes.tolist()):
            out[(s, int(c))] = out.get((s, int(c)), 0) + 1
        return out


def shared_data_dir():
    """The real-data folder: $LANDFUSE_SHARED_DATA if set, else <repo>/../shared/data if present, else None."""
    env = os.environ.get("LANDFUSE_SHARED_DATA")
    if env:
        return env
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(os.path.dirname(repo), "shared", "data")
    return path if os.path.isdir(path) else None


def require_data_dir(data_dir: Optional[str], what: str) -> str:
    """`data_dir` (default: shared_data_dir()) as an absolute path; FileNotFoundError naming `what`
    needs it when there is no such folder."""
    d = data_dir if data_dir is not None else shared_data_dir()
    if d is None or not os.path.isdir(d):
        raise FileNotFoundError(
            f"{what} need the shared data folder (../shared/data beside the checkout, or "
            f"LANDFUSE_SHARED_DATA); not found: {d!r}")
    return os.path.abspath(d)


# ---------------------------------------------------------------------------------------------------
# readers


def _read_envi_header(path):
    """key -> raw value string of an ENVI header ({...} lists kept whole, braces stripped)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    out = {}
    for m in re.finditer(r"^\s*([A-Za-z][\w ]*?)\s*=\s*(\{.*?\}|[^\n]*)", text, re.M | re.S):
        value = m.group(2).strip()
        if value.startswith("{"):
            value = value[1:-1]
        out[m.group(1).strip().lower()] = value
    return out


def _read_envi_sli(sli_path, hdr_path):
    """(spectra (lines, samples) float64, wavelengths in nm) of an ENVI spectral library."""
    hdr = _read_envi_header(hdr_path)
    dtypes = {"4": "f4", "5": "f8"}
    dtype = dtypes.get(hdr.get("data type", "").strip())
    if dtype is None:
        raise ValueError(f"{hdr_path}: unsupported ENVI data type {hdr.get('data type')!r}")
    order = "<" if hdr.get("byte order", "0").strip() == "0" else ">"
    lines, samples = int(hdr["lines"]), int(hdr["samples"])
    data = np.fromfile(sli_path, dtype=order + dtype, count=lines * samples,
                       offset=int(hdr.get("header offset", "0")))
    if data.size != lines * samples:
        raise ValueError(f"{sli_path}: {data.size} values, the header promises {lines} x {samples}")
    wl = np.array([float(v) for v in hdr["wavelength"].split(",")], dtype=np.float64)
    units = hdr.get("wavelength units", "").strip().lower()
    if units.startswith("micro") or (not units and wl.max() < 100):
        wl = wl * 1000.0
    # Micrometre values like 0.41 become 409.99999999999994 nm; rounding keeps exact matches with the grid.
    return data.reshape(lines, samples).astype(np.float64), np.round(wl, 6)


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _load_berlin(data_dir):
    folder = os.path.join(data_dir, "enmap_berlin")
    values, wl = _read_envi_sli(os.path.join(folder, "library_berlin.sli"),
                                os.path.join(folder, "library_berlin.hdr"))
    rows = _read_csv(os.path.join(folder, "library_berlin.csv"))
    if len(rows) != values.shape[0]:
        raise ValueError(f"Berlin library: {len(rows)} csv rows for {values.shape[0]} spectra")
    # Stored as reflectance x 10000 (the header's z plot title says "reflectance [*10000]"; values 30-6786).
    values = values / 10000.0
    names = [r["spectra names"].strip() for r in rows]
    return values, wl, [r["level_3"].strip() for r in rows], names


def _load_houston(data_dir):
    import scipy.io

    folder = os.path.join(data_dir, "benchmarks", "houston2013")
    values = scipy.io.loadmat(os.path.join(folder, "HSI_TrSet.mat"))["HSI_TrSet"].astype(np.float64)
    labels = scipy.io.loadmat(os.path.join(folder, "TrLabel_vec.mat"))["TrLabel"].ravel().astype(int)
    if labels.shape[0] != values.shape[0] or values.shape[1] != HOUSTON_WAVELENGTHS_NM.size:
        raise ValueError(f"Houston: spectra {values.shape} do not match labels {labels.shape}")
    # Already reflectance-like (0-0.65): no scaling.
    names = [str(i) for i in range(values.shape[0])]
    return values, HOUSTON_WAVELENGTHS_NM.copy(), [int(v) for v in labels], names


def _earthlib_data_dir():
    spec = importlib.util.find_spec("earthlib")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the earthlib package is not installed (pip install earthlib==1.1.0); "
                                  "only its data files are read")
    return os.path.join(list(spec.submodule_search_locations)[0], "data")


def _load_earthlib():
    folder = _earthlib_data_dir()
    values, wl = _read_envi_sli(os.path.join(folder, "spectra.sli"), os.path.join(folder, "spectra.sli.hdr"))
    rows = _read_csv(os.path.join(folder, "spectra.csv"))
    # Metadata come from the csv, row for row: its names agree with the .sli.hdr except one char spectrum
    # ("burnedcham" vs "burncham" in 1.1.0).
    if len(rows) != values.shape[0]:
        raise ValueError(f"earthlib: {len(rows)} csv rows for {values.shape[0]} spectra")
    # Eight names occur twice (char/litter samples, with different spectra except "difubr", stored once as
    # char and once as litter): later occurrences get "#2", "#3"... in file order so names stay unique.
    seen, names = {}, []
    for r in rows:
        name = r["NAME"].strip()
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    classes = [f"{r['LEVEL_2'].strip()}/{r['LEVEL_3'].strip()}" for r in rows]
    # Already reflectance 0-1 (max 1.018, one paint sample).
    return values, wl, classes, names


# ---------------------------------------------------------------------------------------------------
# resampling and cleaning


def _resample(wl_nm, values):
    """One spectrum on GRID_NM: linear between measured (finite) bands, NaN outside them and in wide gaps."""
    out = np.full(GRID_NM.shape, np.nan)
    ok = np.isfinite(values)
    m, v = wl_nm[ok], values[ok]
    order = np.argsort(m)
    m, v = m[order], v[order]
    if m.size < 2:
        return out
    inside = (GRID_NM >= m[0]) & (GRID_NM <= m[-1])
    # Bracketing measured bands of each grid point; a grid point sitting on a measured band is kept even
    # when a wide gap follows it.
    j = np.clip(np.searchsorted(m, GRID_NM, side="right"), 1, m.size - 1)
    left, right = m[j - 1], m[j]
    valid = inside & ((right - left <= MAX_GAP_NM) | (GRID_NM == left) | (GRID_NM == right))
    out[valid] = np.interp(GRID_NM[valid], m, v)
    return out


def _map_classes(source, source_classes):
    table = {}
    for src, key, value, _why in CLASS_MAP:
        if src == source:
            table[int(key.split(" ", 1)[0]) if source == "houston" else key] = value
    unknown = sorted({str(c) for c in source_classes if c not in table})
    if unknown:
        raise ValueError(f"{source}: classes {unknown} are not in library.CLASS_MAP")
    return np.array([0 if table[c] is None else table[c] for c in source_classes], dtype=np.int64)


def _build_source(source, values, wl_nm, source_classes, names):
    """Map, clean, de-duplicate and resample one source; returns a SpectrumSet (maybe empty)."""
    classes = _map_classes(source, source_classes)
    keep = classes > 0
    values = np.array(values, dtype=np.float64)
    # An exact 0.0 is a fill value, not a measurement: 3 earthlib litter spectra carry it ("Marsh" x2 at 7
    # bands, "P.australis" over all of 400-990 nm) and 4 Houston parking-lot-2 pixels at band 1.
    values[values == 0.0] = np.nan
    # Drop spectra with nothing measured or with negative or absurd (> 1.5) reflectance before clipping.
    # On the current data this drops none: Berlin 0.003-0.68, Houston 0-0.65, earthlib 0-1.02.
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        bad = ~finite.any(axis=1) | (np.where(finite, values, 0.0) < 0).any(axis=1) \
            | (np.where(finite, values, 0.0) > 1.5).any(axis=1)
    keep &= ~bad
    # Identical copies would end up on both sides of split_library and inflate the held-out score: Houston's
    # training set repeats 40 pixels (adjacent rows; 29 of them in mapped classes). The first copy stays.
    _, first = np.unique(np.where(finite, values, -1.0)[keep], axis=0, return_index=True)
    kept_idx = np.flatnonzero(keep)[np.sort(first)]
    grid = np.stack([_resample(wl_nm, values[i]) for i in kept_idx]) if kept_idx.size \
        else np.empty((0, GRID_NM.size))
    grid = np.clip(grid, 0.0, 1.0)  # NaN stays NaN
    return SpectrumSet(
        wavelengths_nm=GRID_NM.copy(),
        spectra=grid.astype(np.float32),
        classes=classes[kept_idx],
        names=np.array([f"{source}:{names[i]}" for i in kept_idx], dtype=str),
        sources=np.array([source] * kept_idx.size, dtype=str),
    )


def _concat(sets):
    return SpectrumSet(
        wavelengths_nm=GRID_NM.copy(),
        spectra=np.concatenate([s.spectra for s in sets]).astype(np.float32),
        classes=np.concatenate([s.classes for s in sets]).astype(np.int64),
        names=np.concatenate([s.names.astype(object) for s in sets]).astype(str),
        sources=np.concatenate([s.sources.astype(object) for s in sets]).astype(str),
    )


def load_library(data_dir=None) -> SpectrumSet:
    """All three sources on GRID_NM. data_dir defaults to shared_data_dir(). Cached per data_dir; the
    returned arrays are read-only because every caller shares them (subset() gives writable copies)."""
    if data_dir is None:
        data_dir = shared_data_dir()
    if data_dir is None:
        raise FileNotFoundError("no real-data folder: set LANDFUSE_SHARED_DATA or put shared/data beside the "
                                "repository (see its README.md)")
    key = os.path.abspath(data_dir)
    if key in _CACHE:
        return _CACHE[key]
    missing = [os.path.join(key, f) for f in SOURCE_FILES if not os.path.isfile(os.path.join(key, f))]
    if missing:
        raise FileNotFoundError(f"spectral library files missing under {key}: {', '.join(missing)}")
    loaders = {"berlin": lambda: _load_berlin(key), "houston": lambda: _load_houston(key),
               "earthlib": _load_earthlib}
    lib = _concat([_build_source(src, *loaders[src]()) for src in SOURCES])
    names, counts = np.unique(lib.names, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"duplicate spectrum names: {names[counts > 1][:5].tolist()}")
    for arr in (lib.wavelengths_nm, lib.spectra, lib.classes, lib.names, lib.sources):
        arr.flags.writeable = False
    _CACHE[key] = lib
    return lib


# ---------------------------------------------------------------------------------------------------
# splitting and sampling


def split_library(lib, held_out_fraction=0.2, seed=7):
    """(train, held_out), stratified per (source, class): each group with >= 2 spectra gives round(fraction
    x n) of them, at least 1 and at most n - 1, to held_out. Deterministic and independent of load order:
    each group is sorted by name and permuted by a generator seeded from (seed, group), so adding or
    removing one group leaves the other groups' split unchanged."""
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    held = np.zeros(len(lib), dtype=bool)
    for source, cls in sorted(lib.counts()):
        idx = np.flatnonzero((lib.sources == source) & (lib.classes == cls))
        n = idx.size
        if n < 2 or held_out_fraction == 0.0:
            continue
        n_held = min(max(int(np.floor(held_out_fraction * n + 0.5)), 1), n - 1)
        idx = idx[np.argsort(lib.names[idx], kind="stable")]
        group_seed = zlib.crc32(f"{source}:{cls}".encode())
        perm = np.random.default_rng([int(seed), group_seed]).permutation(n)
        held[idx[perm[:n_held]]] = True
    return lib.subset(~held), lib.subset(held)


def sample_class_spectra(lib, cls, n, rng, lo_nm, hi_nm, skip_nm=()) -> np.ndarray:
    """(n, len(GRID_NM)) float32 draws of class `cls` among spectra measured over all of [lo_nm, hi_nm]
    (outside the skip_nm windows, see SpectrumSet.covering).

    Each draw picks a source uniformly among those that have such spectra, then one of its spectra
    uniformly, so 4248 earthlib soils do not drown Berlin's four. Values outside [lo_nm, hi_nm] and inside
    skip_nm may be NaN.
    """
    rng = np.random.default_rng(rng)
    pool = np.flatnonzero((lib.classes == cls) & lib.covering(lo_nm, hi_nm, skip_nm))
    if pool.size == 0:
        raise ValueError(f"no spectrum of class {cls} covers {lo_nm}-{hi_nm} nm"
                         + (f" outside {list(skip_nm)}" if skip_nm else ""))
    by_source = [pool[lib.sources[pool] == s] for s in sorted(set(lib.sources[pool].tolist()))]
    which = rng.integers(len(by_source), size=int(n))
    idx = np.empty(int(n), dtype=np.int64)
    for k, members in enumerate(by_source):
        sel = which == k
        idx[sel] = members[rng.integers(members.size, size=int(sel.sum()))]
    return np.array(lib.spectra[idx], dtype=np.float32)
