"""Reading validity and value scale: the nodata comparison, GDAL mask bands, the scale estimate."""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from backend.io import rasters
from tests.backend.conftest import write_raster


def _read(path, window=None):
    with rasterio.open(path) as ds:
        window = window or rasters.full_window(ds)
        return rasters.read_window(ds, list(range(1, ds.count + 1)), window)


def test_nodata_and_nan_are_invalid_without_reading_a_mask_band(tmp_path):
    data = np.arange(3 * 6 * 5, dtype=np.float32).reshape(3, 6, 5) + 1
    data[0, 1, 1] = -9999.0
    data[2, 4, 3] = np.nan
    path = write_raster(tmp_path / "n.tif", data, nodata=-9999.0)
    with rasterio.open(path) as ds:
        assert not rasters.needs_mask_band(ds, [1, 2, 3])
    _, valid = _read(path)
    expected = np.isfinite(data) & (data != -9999.0)
    assert np.array_equal(valid, expected)
    assert valid.sum() == data.size - 2


def test_an_internal_mask_band_is_honoured(tmp_path):
    data = np.ones((2, 8, 8), np.uint16)
    mask = np.full((8, 8), 255, np.uint8)
    mask[:3, :] = 0  # pixels the producer marked invalid although their values look fine
    path = str(tmp_path / "m.tif")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=2, dtype="uint16",
                           crs="EPSG:32633", transform=from_origin(0, 80, 10, 10)) as dst:
            dst.write(data)
            dst.write_mask(mask)
    with rasterio.open(path) as ds:
        assert rasters.needs_mask_band(ds, [1, 2])
    _, valid = _read(path, Window(0, 0, 8, 8))
    assert not valid[:, :3].any() and valid[:, 3:].all()


def test_bands_with_different_nodata_values_fall_back_to_gdal_masks(tmp_path):
    # GeoTIFF has one nodata for all bands; a VRT (as ENVI/HDF readers can) gives each band its own.
    write_raster(tmp_path / "d.tif", np.full((2, 4, 4), 5, np.int16))
    bands = "".join(
        f'<VRTRasterBand dataType="Int16" band="{b}"><NoDataValue>{nd}</NoDataValue><SimpleSource>'
        f'<SourceFilename relativeToVRT="1">d.tif</SourceFilename><SourceBand>{b}</SourceBand></SimpleSource>'
        f'</VRTRasterBand>' for b, nd in ((1, 0), (2, 5)))
    path = tmp_path / "d.vrt"
    path.write_text(f'<VRTDataset rasterXSize="4" rasterYSize="4">{bands}</VRTDataset>')
    with rasterio.open(path) as ds:
        assert ds.nodatavals == (0.0, 5.0)
        assert rasters.needs_mask_band(ds, [1, 2])
    _, valid = _read(str(path))
    assert valid[0].all() and not valid[1].any()  # band 2's nodata is the value every pixel holds


def test_typical_magnitude_tells_the_scale_apart_on_a_subsample(tmp_path):
    rng = np.random.default_rng(0)
    reflectance = rng.uniform(0.02, 0.6, (40, 300, 300)).astype(np.float32)
    unit = write_raster(tmp_path / "r1.tif", reflectance)
    scaled = write_raster(tmp_path / "r10k.tif", (reflectance * 10000).astype(np.uint16))
    with rasterio.open(unit) as a, rasterio.open(scaled) as b:
        ma = rasters.typical_magnitude(a, list(range(1, 41)))
        mb = rasters.typical_magnitude(b, list(range(1, 41)))
    assert abs(ma - float(np.median(reflectance))) < 0.01  # the subsample's median is the full one's
    assert 9000 < mb / ma < 11000


@pytest.mark.parametrize("layout", [
    dict(tiled=True, blockxsize=32, blockysize=32, interleave="pixel"),
    dict(tiled=False, blockysize=3, interleave="band"),
])
def test_overview_reads_blocks_in_chunks_and_equals_a_plain_decimated_read(tmp_path, monkeypatch, layout):
    """Block rows read in chunks of whole blocks (here 2 blocks wide) give exactly every step-th row
    and column of every band, with the internal mask, at sizes that are not multiples of anything."""
    monkeypatch.setattr(rasters, "OVERVIEW_SIDE", 20)  # 101 px -> every 6th pixel
    monkeypatch.setattr(rasters, "OVERVIEW_CHUNK_BYTES", 2 * 4 * 32 * 32 * 2)
    rng = np.random.default_rng(0)
    data = rng.integers(1, 5000, (4, 101, 77)).astype(np.uint16)
    mask = np.full((101, 77), 255, np.uint8)
    mask[40:50, 10:70] = 0
    path = str(tmp_path / "o.tif")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", driver="GTiff", width=77, height=101, count=4, dtype="uint16",
                           crs="EPSG:32633", transform=from_origin(0, 1010, 10, 10), compress="deflate",
                           **layout) as dst:
            dst.write(data)
            dst.write_mask(mask)
    with rasterio.open(path) as ds:
        got, valid = rasters._overview_unchecked(ds, [1, 2, 3, 4])
    assert np.array_equal(got, data[:, ::6, ::6].astype(np.float32))
    assert np.array_equal(valid, np.broadcast_to(mask[::6, ::6] > 0, valid.shape))
