"""Files in and out: everything that touches a user's disk, and nothing that needs torch.

`rasters` opens and validates rasters (GeoTIFF, ENVI, …), reads windows and decimated overviews and
aligns auxiliary rasters onto the HSI grid; `spectral` finds band wavelengths and bad-band lists;
`labels` turns label rasters and vector layers into a class raster on the HSI grid; `output` writes
class maps, confidence rasters and QML legends; `atomic` is the one way anything is written (a hidden
part file renamed into place, so a failed run leaves no half-written file); `preview` and `report` render the PNG and HTML a
person reads. The engine, training and evaluation sit on top of this package.
"""
