"""Shared by the LandFuse Processing algorithms: the backend call and the preflight hook,
parameter helpers, label export, and the layer post-processors that style the outputs."""

import os
import tempfile
from typing import Any, Dict, List, Optional, Tuple

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from .. import backend_env
from ..backend_api import LandFuseError, read_manifest, summarize
from ..errors import NO_BACKEND, BackendError
from ..labels import class_field_of, export_labels
from ..models import default_model_dir
from ..params import DEVICES, MAX_MIN_CONFIDENCE
from ..paths import PLUGIN_ROOT, resource
from ..preflight import Preflight, raster_path
from ..runner import BackendCall, run_blocking_process
from ..styling import apply_class_style, apply_confidence_style
from . import keys

Parameters = Dict[str, Any]


def tr(text: str) -> str:
    return QCoreApplication.translate("LandFuse", text)


class LandFuseAlgorithm(QgsProcessingAlgorithm):
    """Base: provider-wide group, icon, createInstance, preflight, and a backend call with feedback."""

    def createInstance(self):
        return type(self)()

    def icon(self):
        return QIcon(resource("icon.svg"))

    def groupId(self):
        return ""

    def group(self):
        return ""

    def tr(self, text):
        return tr(text)

    def checkParameterValues(self, parameters, context):
        # Processing's own checks first (required values, types), then ours: a doomed job is
        # refused in the dialog, before any backend starts.
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        result = Preflight()
        self.preflight(parameters, context, result)
        return (True, "") if result.ok else (False, "\n".join(result.errors))

    def preflight(self, parameters: Parameters, context: QgsProcessingContext, result: Preflight) -> None:
        """The algorithm's own checks, as errors recorded in `result`; none by default."""

    def run_backend(self, command: str, args: List[str], feedback: QgsProcessingFeedback) -> dict:
        python, source = backend_env.find_backend_python()
        if not python:
            raise QgsProcessingException(BackendError(NO_BACKEND, "No backend Python was found.").user_message())
        feedback.pushDebugInfo(f"Backend Python ({source}): {python}")
        call = BackendCall(python, command, args, PLUGIN_ROOT)
        feedback.pushCommandInfo(" ".join(call.argv()))
        try:
            return run_blocking_process(call, feedback)
        except BackendError as exc:
            if exc.cancelled:
                feedback.pushInfo(exc.user_message(with_log=False))
                raise QgsProcessingException(exc.user_message(with_log=False)) from None
            raise QgsProcessingException(exc.user_message()) from None


# --- parameters ---------------------------------------------------------------------------------

def with_help(parameter, text: str):
    """`parameter` with `text` as its tooltip: labels stay short, so the dialog needs no extra width
    (QgsProcessingParameterDefinition.setHelp, QGIS ≥ 3.16)."""
    if hasattr(parameter, "setHelp"):
        parameter.setHelp(tr(text))
    return parameter


def add_hsi_and_aux(alg: QgsProcessingAlgorithm, optional_aux: bool = True) -> None:
    alg.addParameter(with_help(QgsProcessingParameterRasterLayer(keys.INPUT_HSI, tr("Hyperspectral raster")),
                               "The reference grid: every other raster is resampled onto it."))
    alg.addParameter(with_help(QgsProcessingParameterMultipleLayers(
        keys.AUX_LAYERS, tr("Auxiliary rasters (DSM, SAR…)"), QgsProcessing.TypeRaster, optional=optional_aux),
        "LiDAR/DSM/SAR rasters, in the model's order; they must overlap the hyperspectral raster."))


def add_model_folder(alg: QgsProcessingAlgorithm, description: str) -> None:
    alg.addParameter(QgsProcessingParameterFile(keys.MODEL_FOLDER, description, QgsProcessingParameterFile.Folder,
                                                defaultValue=default_model_dir() or None))


def add_min_confidence(alg: QgsProcessingAlgorithm) -> None:
    """The classifying algorithms' last parameter: appended (batch files and models name the ones before
    it by position too) and optional, so that a graphical model saved before it existed still validates."""
    alg.addParameter(with_help(QgsProcessingParameterNumber(
        keys.MIN_CONFIDENCE, tr("Minimum confidence"), QgsProcessingParameterNumber.Double,
        defaultValue=0.0, optional=True, minValue=0.0, maxValue=MAX_MIN_CONFIDENCE),
        "Pixels whose calibrated confidence is below this are written as 'unclassified' (value 255, its own "
        "legend entry) instead of their most likely class; 0 = off. No data stays 0."))


def add_device(alg: QgsProcessingAlgorithm) -> None:
    # Stored as an index (batch files hold 0/1/2): the order of DEVICES is public too.
    alg.addParameter(QgsProcessingParameterEnum(keys.DEVICE, tr("Device"), list(DEVICES), defaultValue=0))


def device_choice(alg: QgsProcessingAlgorithm, parameters: Parameters, context: QgsProcessingContext) -> str:
    return DEVICES[alg.parameterAsEnum(parameters, keys.DEVICE, context)]


def optional_raster(alg: QgsProcessingAlgorithm, parameters: Parameters, key: str,
                    context: QgsProcessingContext) -> Optional[QgsRasterLayer]:
    # An optional layer left empty is not read at all: "" would not resolve to a layer anyway.
    return alg.parameterAsRasterLayer(parameters, key, context) if parameters.get(key) else None


def optional_vector(alg: QgsProcessingAlgorithm, parameters: Parameters, key: str,
                    context: QgsProcessingContext) -> Optional[QgsVectorLayer]:
    return alg.parameterAsVectorLayer(parameters, key, context) if parameters.get(key) else None


def optional_file_output(alg: QgsProcessingAlgorithm, parameters: Parameters, key: str,
                         context: QgsProcessingContext) -> Optional[str]:
    # An optional file output left empty is not written: asking Processing for its path would
    # make up a temporary one.
    if parameters.get(key) in (None, ""):
        return None
    return alg.parameterAsFileOutput(parameters, key, context) or None


def hsi_and_aux(alg: QgsProcessingAlgorithm, parameters: Parameters,
                context: QgsProcessingContext) -> Tuple[Optional[QgsRasterLayer], List[QgsMapLayer]]:
    hsi = alg.parameterAsRasterLayer(parameters, keys.INPUT_HSI, context)
    aux = alg.parameterAsLayerList(parameters, keys.AUX_LAYERS, context) if parameters.get(keys.AUX_LAYERS) else []
    return hsi, aux


def layer_paths(hsi: Optional[QgsRasterLayer], aux: List[QgsMapLayer]) -> Tuple[str, List[str]]:
    """The files behind the HSI and aux layers; a layer that is not a file stops the run (the
    backend reads files, not QGIS layers)."""
    hsi_path = raster_path(hsi) if hsi is not None else None
    if not hsi_path:
        raise QgsProcessingException(tr("The hyperspectral layer must be a raster file on disk."))
    aux_paths = []
    for layer in aux:
        path = raster_path(layer)
        if not path:
            raise QgsProcessingException(tr(f"Auxiliary layer '{layer.name()}' must be a raster file on disk."))
        aux_paths.append(path)
    return hsi_path, aux_paths


def temp_path(suffix: str, stem: str = "landfuse") -> str:
    # Inside QGIS's Processing temporary folder, which QGIS deletes when it exits.
    folder = tempfile.mkdtemp(prefix=stem + "_", dir=QgsProcessingUtils.tempFolder())
    return os.path.join(folder, stem + suffix)


# --- layer post-processors ---------------------------------------------------------------------
# Processing keeps only a C++ pointer to a post-processor: the Python objects are held here.
_POST_PROCESSORS = []


def keep_above(project, top_path: Optional[str], bottom_path: Optional[str]) -> None:
    """Move the layer of `top_path` just above that of `bottom_path` when both are in the same
    group of the layer tree (Processing loads outputs in its own order: the class map must not
    end up under its confidence raster)."""
    if not project or not top_path or not bottom_path:
        return
    root = project.layerTreeRoot()
    nodes = {}
    for layer in project.mapLayers().values():
        if layer.source() in (top_path, bottom_path):
            node = root.findLayer(layer.id())
            if node is not None:
                nodes[layer.source()] = node
    top, bottom = nodes.get(top_path), nodes.get(bottom_path)
    if top is None or bottom is None or top.parent() is not bottom.parent():
        return
    parent = top.parent()
    children = parent.children()
    if children.index(top) < children.index(bottom):
        return
    parent.insertChildNode(children.index(bottom), top.clone())
    parent.removeChildNode(top)


class ClassStyler(QgsProcessingLayerPostProcessorInterface):
    def __init__(self, class_table, confidence_path=None):
        super().__init__()
        self.class_table = class_table
        self.confidence_path = confidence_path

    def postProcessLayer(self, layer, context, feedback):
        if layer is not None and layer.isValid():
            apply_class_style(layer, self.class_table)
            keep_above(context.project(), layer.source(), self.confidence_path)

    @staticmethod
    def create(class_table, confidence_path=None):
        styler = ClassStyler(class_table, confidence_path)
        _keep(styler)
        return styler


class ConfidenceStyler(QgsProcessingLayerPostProcessorInterface):
    def __init__(self, class_path=None):
        super().__init__()
        self.class_path = class_path

    def postProcessLayer(self, layer, context, feedback):
        if layer is not None and layer.isValid():
            apply_confidence_style(layer)
            keep_above(context.project(), self.class_path, layer.source())

    @staticmethod
    def create(class_path=None):
        styler = ConfidenceStyler(class_path)
        _keep(styler)
        return styler


def style_on_load(context, path, post_processor):
    if path and context.willLoadLayerOnCompletion(path):
        context.layerToLoadOnCompletionDetails(path).setPostProcessor(post_processor)


def _keep(styler, limit=200):
    _POST_PROCESSORS.append(styler)
    del _POST_PROCESSORS[:-limit]


# --- model folder and labels --------------------------------------------------------------------

def check_model_folder(alg: QgsProcessingAlgorithm, parameters: Parameters, context: QgsProcessingContext,
                       result: Preflight) -> Optional[dict]:
    """Preflight of the MODEL_FOLDER parameter: its manifest summary, or None with the error recorded."""
    try:
        return summarize(read_manifest(alg.parameterAsFile(parameters, keys.MODEL_FOLDER, context)))
    except LandFuseError as exc:
        result.error(f"Model: {exc.message}")
        return None


def export_vector_labels(vector: QgsVectorLayer, field: str, crs: QgsCoordinateReferenceSystem, stem: str,
                         context: QgsProcessingContext, missing_field: str,
                         no_feature: str) -> Tuple[str, List[dict], int]:
    """Main thread (prepareAlgorithm): a label or reference layer reprojected to `crs` into a
    temporary GeoPackage, whose class field is `labels.CLASS_FIELD` whatever the layer's was.
    `field` empty: the field of the layer's categorized style. `no_feature` may name {layer} and
    {field}. Returns (path, class table, feature count)."""
    field = field or class_field_of(vector)
    if not field:
        raise QgsProcessingException(missing_field)
    path, table, count = export_labels(vector, field, crs, temp_path(".gpkg", stem), context.project())
    if not count:
        raise QgsProcessingException(no_feature.format(layer=vector.name(), field=field))
    return path, table, count
