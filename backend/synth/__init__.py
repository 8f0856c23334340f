"""Synthetic co-registered scenes (HSI + DSM [+ SAR] + labels) for the demo, tests and pretraining.

The landscape: procedural (layout.py) or cut from a real label map (real_layout.py, with heights
measured on real LiDAR: heights.py). The materials: parametric spectra (spectra.py) or real library
spectra (library.py). The sensor and illumination physics: scene.py, which writes its rasters through
geotiff.py; library_scene.py puts real ingredients and the sensors of sensors.py together for the
generic model. Label sampling and spatial block splits (of rasters, or of arrays) live in labels.py.
numpy, scipy and rasterio only (no torch); the real ingredients are read from ../shared/data.
"""

from .labels import sample_labels, split_labels
from .scene import DEMO_CLASSES, generate_scene

__all__ = ["DEMO_CLASSES", "generate_scene", "sample_labels", "split_labels"]
