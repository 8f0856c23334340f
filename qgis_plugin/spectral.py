"""Band wavelengths of a raster layer, as the backend reads them, and the bands to show it with.

The conventions are the backend's own (`backend.io.spectral`: band items, ENVI header, GDAL's
IMAGERY domain, band descriptions), read here through GDAL rather than rasterio, so the plugin and
the backend agree on which rasters have wavelengths. A wavelength list or file given in the dock
(`--wavelengths`) wins over the metadata, as it does in the backend.
"""

from typing import List, Optional, Tuple

from .backend_api import LandFuseError, spectral

# Band centres (nm) of the two displays offered: true colour and colour infrared (NIR, red, green).
DISPLAYS = {"true colour": (640.0, 550.0, 470.0), "colour infrared": (860.0, 650.0, 550.0)}
MAX_OFFSET_NM = 60.0      # a band further than this from the wanted centre does not stand in for it


class _GdalBands:
    """The part of rasterio's dataset API that backend.io.spectral reads, over a GDAL dataset."""

    def __init__(self, ds):
        self._ds = ds
        self.count = ds.RasterCount
        self.descriptions = tuple(ds.GetRasterBand(b).GetDescription() or None for b in range(1, self.count + 1))

    def tags(self, bidx=0, ns=None):
        obj = self._ds if not bidx else self._ds.GetRasterBand(bidx)
        return obj.GetMetadata_Dict(ns or "") or {}


def raster_wavelengths(path: str, override: Optional[str] = None) -> Tuple[Optional[List[float]], str]:
    """(band centres in nm, where they came from) for the raster file `path`; (None, why) when
    unknown. `override`: a comma-separated list or a text file, as `--wavelengths` takes."""
    from osgeo import gdal
    ds = gdal.Open(path) if path else None
    if ds is None:
        return None, "not a raster file GDAL can open"
    try:
        values = spectral.parse_wavelength_list(override) if override else None
        centres, _, source = spectral.band_wavelengths(_GdalBands(ds), values)
    except LandFuseError as exc:
        return None, exc.message
    finally:
        ds = None
    if not centres:
        return None, "the raster's metadata names no band wavelengths"
    return [float(c) for c in centres], (source if not override else "the wavelength list or file")


def display_bands(wavelengths: List[float], display: str = "true colour") -> Optional[Tuple[int, int, int]]:
    """1-based (red, green, blue) band numbers nearest the display's centres; None when the sensor
    does not reach one of them."""
    picks = []
    for target in DISPLAYS[display]:
        band, centre = min(enumerate(wavelengths, start=1), key=lambda bc: abs(bc[1] - target))
        if abs(centre - target) > MAX_OFFSET_NM:
            return None
        picks.append(band)
    return tuple(picks)
