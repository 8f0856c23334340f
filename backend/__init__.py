"""LandFuse backend: the GUI-free engine, run as `python -m backend <command>`.

This package's top level must stay importable without torch: the QGIS plugin imports the pure-Python
pieces (`backend.protocol`, `backend.manifest`) from the QGIS process, where torch must never load.
"""

__version__ = "0.1.0"
