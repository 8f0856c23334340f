"""Generated multimodal test scenes (GDAL + numpy from the QGIS Python; no torch)."""

import numpy as np
from osgeo import gdal, osr

SPECTRA = np.array([[0.10, 0.20, 0.30, 0.40, 0.50, 0.40, 0.30, 0.20],
                    [0.50, 0.40, 0.30, 0.20, 0.10, 0.10, 0.20, 0.30],
                    [0.30, 0.30, 0.30, 0.30, 0.30, 0.35, 0.35, 0.35]], np.float32)
HEIGHTS = (2.0, 10.0, 0.5)
ORIGIN = (500000.0, 5000000.0)  # UTM 33N


def write_raster(path, array, epsg=32633, origin=ORIGIN, pixel=1.0, dtype=gdal.GDT_Float32, nodata=None):
    bands, rows, cols = array.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, bands, dtype)
    ds.SetGeoTransform((origin[0], pixel, 0, origin[1], 0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    for i in range(bands):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(array[i])
        if nodata is not None:
            band.SetNoDataValue(nodata)
    ds.FlushCache()
    ds = None
    return str(path)


def truth(size=48):
    labels = np.zeros((size, size), np.uint8)
    third = size // 3
    labels[:, :third] = 1
    labels[:, third:2 * third] = 2
    labels[:, 2 * third:] = 3
    return labels


def make_scene(folder, size=48, seed=0, bands=8):
    """HSI (`bands` bands), DSM (1 band), the full truth raster and a sparse label raster."""
    rng = np.random.default_rng(seed)
    labels = truth(size)
    spectra = SPECTRA if bands == SPECTRA.shape[1] else np.repeat(SPECTRA, -(-bands // 8), axis=1)[:, :bands]
    hsi = spectra[labels - 1].transpose(2, 0, 1) + rng.normal(0, 0.02, (bands, size, size)).astype(np.float32)
    dsm = np.choose(labels - 1, HEIGHTS).astype(np.float32)[None] + rng.normal(0, 0.2, (1, size, size)).astype(np.float32)
    sparse = np.zeros_like(labels)
    sparse[::3, ::3] = labels[::3, ::3]
    return {
        "hsi": write_raster(folder / "hsi.tif", hsi),
        "dsm": write_raster(folder / "dsm.tif", dsm),
        "truth": write_raster(folder / "truth.tif", labels[None], dtype=gdal.GDT_Byte, nodata=0),
        "labels": write_raster(folder / "labels.tif", sparse[None], dtype=gdal.GDT_Byte, nodata=0),
        "size": size,
    }


def label_polygons_wkt(size=48, inset=3):
    """One training rectangle per class (map coordinates of UTM 33N), class value 1..3."""
    x0, y0 = ORIGIN
    third = size // 3
    polys = []
    for value in (1, 2, 3):
        left = x0 + (value - 1) * third + inset
        right = x0 + value * third - inset
        top, bottom = y0 - inset, y0 - size + inset
        polys.append((value, f"POLYGON(({left} {top},{right} {top},{right} {bottom},{left} {bottom},{left} {top}))"))
    return polys
