import os
import shutil

import numpy as np
import pytest
import rasterio

from backend.io.spectral import band_wavelengths, parse_wavelength_list, require_wavelengths
from backend.protocol import LandFuseError
from tests.backend.conftest import SHARED_DATA, needs_shared, write_raster


@needs_shared
def test_envi_header_in_nanometres_samson():
    with rasterio.open(os.path.join(SHARED_DATA, "samson", "samson_1.img")) as ds:
        centres, fwhm, source = band_wavelengths(ds)
    assert len(centres) == 156 and abs(centres[0] - 400.938721) < 1e-3 and abs(centres[-1] - 899.074585) < 1e-3
    assert fwhm is None


@needs_shared
def test_envi_header_in_micrometres_with_fwhm_enmap(tmp_path):
    header = os.path.join(SHARED_DATA, "enmap_berlin", "enmap_berlin.hdr")
    shutil.copy(header, tmp_path / "enmap.hdr")
    (tmp_path / "enmap").write_bytes(b"\x00" * (220 * 400 * 177 * 2))  # the image itself is not shipped
    with rasterio.open(tmp_path / "enmap") as ds:
        centres, fwhm, source = band_wavelengths(ds)
    assert len(centres) == 177 and 400 < centres[0] < 500 and 2300 < centres[-1] < 2500
    assert fwhm is not None and all(3 < f < 40 for f in fwhm)
    assert all(b > a for a, b in zip(centres, centres[1:]))


def test_band_items_and_descriptions_and_units(tmp_path):
    path = write_raster(tmp_path / "a.tif", np.zeros((3, 4, 4), np.float32),
                        band_tags={b: {"wavelength": str(0.4 + 0.1 * b), "wavelength_units": "Micrometers",
                                       "fwhm": "0.01"} for b in (1, 2, 3)})
    with rasterio.open(path) as ds:
        centres, fwhm, source = band_wavelengths(ds)
    assert np.allclose(centres, [500, 600, 700]) and np.allclose(fwhm, [10, 10, 10]) and source == "band metadata"
    path = tmp_path / "b.tif"
    write_raster(path, np.zeros((2, 4, 4), np.float32))
    with rasterio.open(path, "r+") as ds:
        ds.set_band_description(1, "band 7 (442.1 Nanometers)")
        ds.set_band_description(2, "0.55 um")
    with rasterio.open(path) as ds:
        centres, _, source = band_wavelengths(ds)
    assert np.allclose(centres, [442.1, 550.0]) and source == "band descriptions"


def test_override_and_missing(tmp_path):
    path = write_raster(tmp_path / "c.tif", np.zeros((3, 4, 4), np.float32))
    (tmp_path / "wl.txt").write_text("0.45\n0.55\n0.65\n")
    with rasterio.open(path) as ds:
        assert band_wavelengths(ds) == (None, None, None)
        with pytest.raises(LandFuseError) as err:
            require_wavelengths(ds)
        assert err.value.code == "wavelengths_unknown" and "--wavelengths" in err.value.hint
        centres, _, source = require_wavelengths(ds, parse_wavelength_list(str(tmp_path / "wl.txt")))
        assert np.allclose(centres, [450, 550, 650]) and source == "--wavelengths"
        with pytest.raises(LandFuseError):
            band_wavelengths(ds, [500.0])
    assert parse_wavelength_list("450, 550;650") == [450.0, 550.0, 650.0]
