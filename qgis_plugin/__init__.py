"""LandFuse QGIS plugin (the QGIS-side client). Nothing here imports torch, rasterio or numpy-heavy
backend modules: the model runs in a separate process (see runner.py)."""
