"""Band centre wavelengths (and FWHM) from every common metadata convention, in nanometres.

Conventions read, in order of precedence:
1. per-band items `wavelength` (+ `wavelength_units`, `fwhm`), as EnMAP-Box and EnMAP/PRISMA
   GeoTIFF exports write them (units also looked up at dataset level);
2. the ENVI header lists `wavelength`, `fwhm` with `wavelength units` (GDAL's ENVI domain);
3. GDAL's IMAGERY domain per band: CENTRAL_WAVELENGTH_UM, FWHM_UM (GDAL ≥ 3.10 derives these from
   ENVI headers too, but rounded to 1 nm, hence last among the exact sources);
4. band descriptions such as "band 7 (442.1 Nanometers)" or "442.1 nm".
Values without units are taken as µm when they look like µm (< 30), else nm.
"""

from __future__ import annotations

import re

from backend.protocol import ErrorCode, LandFuseError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time
if TYPE_CHECKING:
    from typing import List, Optional, Sequence, Tuple

    from rasterio.io import DatasetReader

_UNIT_FACTORS = {"nanometers": 1.0, "nanometer": 1.0, "nm": 1.0, "micrometers": 1000.0, "micrometer": 1000.0,
                 "um": 1000.0, "µm": 1000.0, "microns": 1000.0, "micron": 1000.0,
                 "millimeters": 1e6, "mm": 1e6, "wavenumber": None}
_DESCRIPTION = re.compile(r"([0-9]+(?:\.[0-9]*)?)\s*(nanometers?|nm|micrometers?|microns?|um|µm)\b", re.IGNORECASE)


def _factor(units, values):
    if units:
        key = units.strip().lower()
        if key in _UNIT_FACTORS and _UNIT_FACTORS[key] is not None:
            return _UNIT_FACTORS[key]
    # Unknown or missing units: reflectance sensors span 0.35–2.5 µm, i.e. 350–2500 nm.
    return 1000.0 if values and max(values) < 30 else 1.0


def _floats(items):
    try:
        return [float(v) for v in items]
    except (TypeError, ValueError):
        return None


def _envi_list(text):
    return [t.strip() for t in (text or "").strip().strip("{}").split(",") if t.strip()]


def _from_imagery(ds):
    wl = [ds.tags(b, ns="IMAGERY").get("CENTRAL_WAVELENGTH_UM") for b in range(1, ds.count + 1)]
    wl = _floats(wl)
    if not wl:
        return None
    fwhm = _floats([ds.tags(b, ns="IMAGERY").get("FWHM_UM") for b in range(1, ds.count + 1)])
    return [w * 1000 for w in wl], [f * 1000 for f in fwhm] if fwhm else None


def _from_band_items(ds):
    tags = [ds.tags(b) for b in range(1, ds.count + 1)]
    wl = _floats([t.get("wavelength") for t in tags])
    if not wl:
        return None
    units = next((t.get("wavelength_units") for t in tags if t.get("wavelength_units")), None) \
        or ds.tags().get("wavelength_units")
    factor = _factor(units, wl)
    fwhm = _floats([t.get("fwhm") for t in tags])
    return [w * factor for w in wl], [f * factor for f in fwhm] if fwhm else None


def _from_envi(ds):
    envi = ds.tags(ns="ENVI")
    wl = _floats(_envi_list(envi.get("wavelength")))
    if not wl or len(wl) != ds.count:
        return None
    factor = _factor(envi.get("wavelength_units"), wl)
    fwhm = _floats(_envi_list(envi.get("fwhm")))
    fwhm = [f * factor for f in fwhm] if fwhm and len(fwhm) == ds.count else None
    return [w * factor for w in wl], fwhm


def _from_descriptions(ds):
    values = []
    for d in ds.descriptions:
        match = _DESCRIPTION.search(d or "")
        if not match:
            return None
        values.append(float(match.group(1)) * _factor(match.group(2), None))
    return (values, None) if values else None


def parse_wavelength_list(text: str) -> List[float]:
    """`--wavelengths`: "442.1,450.3,…" (nm, or µm if all < 30) or a text file with one value a line
    (text after '#' is a comment)."""
    import os
    if os.path.isfile(text):
        try:
            with open(text, encoding="utf-8") as f:
                text = "\n".join(line.split("#", 1)[0] for line in f)
        except UnicodeDecodeError:
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"The --wavelengths file is not UTF-8 text: {text}",
                                "Save it as plain text, one number (nm or µm) a line.") from None
    values = _floats([t for t in re.split(r"[,\s;]+", text.strip()) if t])
    if not values:
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, "--wavelengths must list numbers (nm or µm), or name a file of them.")
    factor = _factor(None, values)
    return [v * factor for v in values]


def band_wavelengths(ds: DatasetReader, override: Optional[Sequence[float]] = None,
                     ) -> Tuple[Optional[List[float]], Optional[List[float]], Optional[str]]:
    """(centres_nm, fwhm_nm or None, source) for every band of `ds`; (None, None, None) if unknown."""
    if override is not None:
        if len(override) != ds.count:
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS,
                                f"--wavelengths lists {len(override)} values; the raster has {ds.count} bands.")
        return list(override), None, "--wavelengths"
    for source, reader in (("band metadata", _from_band_items), ("ENVI header", _from_envi),
                           ("IMAGERY metadata", _from_imagery), ("band descriptions", _from_descriptions)):
        found = reader(ds)
        if found:
            centres, fwhm = found
            if fwhm is None:  # GDAL copies ENVI wavelengths to band items but leaves fwhm in the header
                fwhm = (_from_envi(ds) or (None, None))[1]
            return centres, fwhm, source
    return None, None, None


def require_wavelengths(ds: DatasetReader, override: Optional[Sequence[float]] = None,
                        ) -> Tuple[List[float], Optional[List[float]], str]:
    centres, fwhm, source = band_wavelengths(ds, override)
    if centres is None:
        raise LandFuseError(ErrorCode.WAVELENGTHS_UNKNOWN,
                            "The hyperspectral raster does not say which wavelength each band measures, and this "
                            "model works from wavelengths.",
                            "Pass --wavelengths (a comma-separated list in nm, or a text file), or add 'wavelength' "
                            "band metadata (e.g. an ENVI header with 'wavelength = {…}').")
    return centres, fwhm, source
