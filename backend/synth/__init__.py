"""Synthetic co-registered scenes (HSI + DSM [+ SAR] + labels) for the demo, tests and pretraining.

Self-contained: class spectra are parametric (spectra.py), the landscape is procedural (layout.py),
the sensor and illumination physics and the GeoTIFF writing live in scene.py, and label sampling /
spatial splits in labels.py. numpy, scipy and rasterio only (no torch).
"""

from .labels import sample_labels, split_labels
from .scene import DEMO_CLASSES, generate_scene

__all__ = ["DEMO_CLASSES", "generate_scene", "sample_labels", "split_labels"]
