"""Checks made before a job starts, so a doomed job is refused with a clear message instead.

Rules follow the backend (backend/modalities.py): the model takes the HSI plus exactly one raster
per auxiliary modality; a raster must have the model's `source_bands` bands or exactly the
`bands` it uses; a generic model maps any
sensor's wavelengths, so its HSI band count is not checked. Layers need a CRS and must overlap the
HSI; the output folder must be writable.
"""

import os

from qgis.core import (
    QgsCoordinateTransform,
    QgsCsException,
    QgsMapLayerType,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)


class Preflight:
    def __init__(self):
        self.errors = []
        self.warnings = []

    @property
    def ok(self):
        return not self.errors

    def error(self, text):
        self.errors.append(text)

    def warn(self, text):
        self.warnings.append(text)

    def message(self):
        return "\n".join(self.errors + [f"Warning: {w}" for w in self.warnings])


def raster_path(layer):
    """The local file behind a raster layer, or None (web services, memory, etc.)."""
    if not isinstance(layer, QgsRasterLayer) or layer.providerType() != "gdal":
        return None
    path = layer.source().split("|")[0]
    return path if os.path.isfile(path) else None


def vector_path(layer):
    if not isinstance(layer, QgsVectorLayer) or layer.providerType() != "ogr":
        return None
    path = layer.source().split("|")[0]
    return path if os.path.isfile(path) else None


def _layer_extent_in(layer, crs, project=None):
    if layer.crs() == crs:
        return layer.extent()
    context = (project or QgsProject.instance()).transformContext()
    transform = QgsCoordinateTransform(layer.crs(), crs, context)
    try:
        return transform.transformBoundingBox(layer.extent())
    except QgsCsException:
        return None


def check_overlap(result, hsi, layer, what):
    if not layer.crs().isValid():
        result.error(f"{what} '{layer.name()}' has no coordinate reference system: set it in the layer properties.")
        return
    if not hsi.crs().isValid():
        return
    extent = _layer_extent_in(layer, hsi.crs())
    if extent is None or not extent.intersects(hsi.extent()):
        result.error(f"{what} '{layer.name()}' does not overlap the hyperspectral layer '{hsi.name()}' "
                     f"(after reprojection from {layer.crs().authid() or 'its CRS'} to {hsi.crs().authid() or 'the HSI CRS'}).")


def _band_rule(result, layer, spec, role):
    """The backend reads a raster with the model's `source_bands` bands (its bad bands filled), or
    one whose valid bands are exactly the `bands` the model uses. Any other count is refused here:
    it could only work if just the right number of bands happened to be flagged bad."""
    count = layer.bandCount()
    source = spec.get("source_bands", spec["bands"])
    bands = spec["bands"]
    if count in (source, bands):
        return
    result.error(f"{role} '{layer.name()}' has {count} band(s); the model's '{spec['name']}' input expects "
                 f"{source} band(s)" + (f" (or the {bands} it uses)" if bands != source else "") + ".")


def check_inputs(result, hsi, aux_layers, summary=None):
    """HSI and aux layers: file-based, CRS, overlap and (with a model summary) band counts."""
    if hsi is None or not isinstance(hsi, QgsRasterLayer) or not hsi.isValid():
        result.error("Choose a valid hyperspectral raster layer.")
        return result
    if raster_path(hsi) is None:
        result.error(f"The hyperspectral layer '{hsi.name()}' is not a raster file on disk (GDAL); save it as GeoTIFF first.")
    if not hsi.crs().isValid():
        result.error(f"The hyperspectral layer '{hsi.name()}' has no coordinate reference system.")
    for i, aux in enumerate(aux_layers, start=1):
        if aux is None or not aux.isValid():
            result.error(f"Auxiliary layer {i} is missing or invalid.")
            continue
        if raster_path(aux) is None:
            result.error(f"Auxiliary layer '{aux.name()}' is not a raster file on disk (GDAL).")
        if aux.id() == hsi.id():
            result.error(f"The hyperspectral layer '{hsi.name()}' is also listed as an auxiliary layer.")
        check_overlap(result, hsi, aux, "Auxiliary layer")
    if summary is not None:
        modalities = summary["modalities"]
        expected = len(modalities) - 1
        required = sum(1 for m in modalities[1:] if not m.get("optional"))
        if not required <= len(aux_layers) <= expected:
            names = ", ".join(m["name"] + (" (optional)" if m.get("optional") else "") for m in modalities[1:]) or "none"
            count = f"{required} to {expected}" if required < expected else f"{expected}"
            result.error(f"The model takes the hyperspectral layer plus {count} auxiliary layer(s) ({names}); "
                         f"{len(aux_layers)} given.")
        if not summary.get("generic"):
            _band_rule(result, hsi, modalities[0], "The hyperspectral layer")
        for aux, spec in zip(aux_layers, modalities[1:]):
            if aux is not None and aux.isValid():
                _band_rule(result, aux, spec, "Auxiliary layer")
    return result


def check_output_file(result, path, extensions=(".tif", ".tiff")):
    if not path:
        return result
    folder = os.path.dirname(os.path.abspath(path)) or os.curdir
    if extensions and os.path.splitext(path)[1].lower() not in extensions:
        result.error(f"The output '{path}' must end with {' or '.join(extensions)}.")
    if not os.path.isdir(folder):
        result.error(f"The output folder does not exist: {folder}")
    elif not os.access(folder, os.W_OK):
        result.error(f"The output folder is not writable: {folder}")
    elif os.path.isdir(path):
        result.error(f"The output '{path}' is a folder.")
    elif os.path.exists(path) and not os.access(path, os.W_OK):
        result.error(f"The output file exists and cannot be overwritten: {path}")
    return result


def check_output_folder(result, path):
    if not path:
        return result
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isfile(path):
        result.error(f"The output model folder '{path}' is a file.")
    elif os.path.isdir(path) and os.listdir(path) and not os.path.isfile(os.path.join(path, "model.json")):
        result.error(f"The output model folder '{path}' exists and holds other files: choose an empty or new folder.")
    elif not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        result.error(f"The folder that would hold the model is missing or not writable: {parent}")
    return result


def check_labels(result, hsi, labels, class_field=None):
    """Labels: a raster (0 = unlabelled) or a point/polygon layer with a class field."""
    if labels is None or not labels.isValid():
        result.error("Choose a valid label layer.")
        return result
    if labels.type() == QgsMapLayerType.RasterLayer:
        if raster_path(labels) is None:
            result.error(f"The label raster '{labels.name()}' is not a raster file on disk.")
        if labels.bandCount() != 1:
            result.error(f"The label raster '{labels.name()}' must have one band (class values, 0 = unlabelled).")
    elif labels.type() == QgsMapLayerType.VectorLayer:
        from .labels import class_field_of
        if labels.featureCount() == 0:
            result.error(f"The label layer '{labels.name()}' has no features: draw some training areas first.")
        field = class_field or class_field_of(labels)
        if not field:
            result.error(f"Choose the class field of '{labels.name()}' (or give it a categorized style).")
        elif labels.fields().indexOf(field) < 0:
            result.error(f"The label layer '{labels.name()}' has no field '{field}'.")
    else:
        result.error(f"'{labels.name()}' is neither a raster nor a vector layer.")
    if hsi is not None and hsi.isValid():
        check_overlap(result, hsi, labels, "Label layer")
    return result


def model_problems(summary, hsi, aux_layers, wavelengths_known=True):
    """Why the model `summary` cannot take these layers (empty: it can). Problems that every model
    would have (a layer not on disk, no CRS) are not the model's and are left out."""
    if hsi is None or not isinstance(hsi, QgsRasterLayer) or not hsi.isValid():
        return []
    base = set(check_inputs(Preflight(), hsi, aux_layers, None).errors)
    problems = [e for e in check_inputs(Preflight(), hsi, aux_layers, summary).errors if e not in base]
    if summary.get("generic") and not wavelengths_known:
        problems.append(f"It works from band wavelengths, and '{hsi.name()}' does not give them: "
                        "choose a wavelength file (one centre in nm a line).")
    return problems


def check_not_an_input(result, path, inputs):
    """An output is never one of the run's inputs."""
    if not path:
        return result
    target = os.path.abspath(path)
    for source in inputs:
        if source and os.path.abspath(source) == target:
            result.error(f"The output '{path}' is one of the inputs: choose another file.")
            break
    return result
