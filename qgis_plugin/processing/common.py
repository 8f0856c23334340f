"""Shared by the LandFuse Processing algorithms: the backend call, parameter helpers, preflight
plumbing and the layer post-processors that style the outputs."""

import os
import tempfile

from qgis.core import (QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingLayerPostProcessorInterface,
                       QgsProcessingParameterEnum, QgsProcessingParameterMultipleLayers, QgsProcessingParameterRasterLayer,
                       QgsProcessing)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from .. import backend_env
from ..errors import NO_BACKEND, BackendError
from ..paths import PLUGIN_ROOT, resource
from ..runner import BackendCall, run_blocking_process
from ..styling import apply_class_style, apply_confidence_style

DEVICES = ["auto", "cpu", "cuda"]


def tr(text):
    return QCoreApplication.translate("LandFuse", text)


class LandFuseAlgorithm(QgsProcessingAlgorithm):
    """Base: provider-wide group, icon, createInstance, and a backend call with feedback."""

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

    def run_backend(self, command, args, feedback):
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


def add_hsi_and_aux(alg, optional_aux=True):
    alg.addParameter(QgsProcessingParameterRasterLayer("INPUT_HSI", tr("Hyperspectral raster (reference grid)")))
    alg.addParameter(QgsProcessingParameterMultipleLayers(
        "AUX_LAYERS", tr("Auxiliary rasters (LiDAR/DSM/SAR…), in the model's order"),
        QgsProcessing.TypeRaster, optional=optional_aux))


def add_device(alg):
    param = QgsProcessingParameterEnum("DEVICE", tr("Device"), DEVICES, defaultValue=0)
    alg.addParameter(param)


def hsi_and_aux(alg, parameters, context):
    hsi = alg.parameterAsRasterLayer(parameters, "INPUT_HSI", context)
    aux = alg.parameterAsLayerList(parameters, "AUX_LAYERS", context) if parameters.get("AUX_LAYERS") else []
    return hsi, aux


def layer_args(hsi, aux):
    from ..preflight import raster_path
    hsi_path = raster_path(hsi) if hsi is not None else None
    if not hsi_path:
        raise QgsProcessingException(tr("The hyperspectral layer must be a raster file on disk."))
    args = ["--hsi", hsi_path]
    for layer in aux:
        path = raster_path(layer)
        if not path:
            raise QgsProcessingException(tr(f"Auxiliary layer '{layer.name()}' must be a raster file on disk."))
        args += ["--aux", path]
    return args


def device_arg(alg, parameters, context):
    return ["--device", DEVICES[alg.parameterAsEnum(parameters, "DEVICE", context)]]


def temp_path(suffix, stem="landfuse"):
    folder = tempfile.mkdtemp(prefix=stem + "_")
    return os.path.join(folder, stem + suffix)


# --- layer post-processors ---------------------------------------------------------------------
# Processing keeps only a C++ pointer to a post-processor: the Python objects are held here.
_POST_PROCESSORS = []


class ClassStyler(QgsProcessingLayerPostProcessorInterface):
    def __init__(self, class_table):
        super().__init__()
        self.class_table = class_table

    def postProcessLayer(self, layer, context, feedback):
        if layer is not None and layer.isValid():
            apply_class_style(layer, self.class_table)

    @staticmethod
    def create(class_table):
        styler = ClassStyler(class_table)
        _keep(styler)
        return styler


class ConfidenceStyler(QgsProcessingLayerPostProcessorInterface):
    def postProcessLayer(self, layer, context, feedback):
        if layer is not None and layer.isValid():
            apply_confidence_style(layer)

    @staticmethod
    def create():
        styler = ConfidenceStyler()
        _keep(styler)
        return styler


def style_on_load(context, path, post_processor):
    if path and context.willLoadLayerOnCompletion(path):
        context.layerToLoadOnCompletionDetails(path).setPostProcessor(post_processor)


def _keep(styler, limit=200):
    _POST_PROCESSORS.append(styler)
    del _POST_PROCESSORS[:-limit]


# --- labels (train_model, finetune_model) -------------------------------------------------------

def check_model_folder(alg, parameters, context, result):
    """Preflight of the MODEL_FOLDER parameter: its manifest summary, or None with the error recorded."""
    from ..backend_api import LandFuseError, read_manifest, summarize
    try:
        return summarize(read_manifest(alg.parameterAsFile(parameters, "MODEL_FOLDER", context)))
    except LandFuseError as exc:
        result.error(f"Model: {exc.message}")
        return None


def add_label_parameters(alg):
    from qgis.core import (QgsProcessingParameterField, QgsProcessingParameterVectorLayer)
    alg.addParameter(QgsProcessingParameterVectorLayer(
        "LABELS_VECTOR", tr("Training labels: point or polygon layer"),
        [QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon], optional=True))
    alg.addParameter(QgsProcessingParameterField(
        "CLASS_FIELD", tr("Class field (default: the field of the layer's categorized style)"),
        parentLayerParameterName="LABELS_VECTOR", optional=True))
    alg.addParameter(QgsProcessingParameterRasterLayer(
        "LABELS_RASTER", tr("…or training labels: class raster (0 = unlabelled)"), optional=True))


def check_label_parameters(alg, parameters, context, result, hsi):
    from ..preflight import check_labels
    vector = alg.parameterAsVectorLayer(parameters, "LABELS_VECTOR", context) if parameters.get("LABELS_VECTOR") else None
    raster = alg.parameterAsRasterLayer(parameters, "LABELS_RASTER", context) if parameters.get("LABELS_RASTER") else None
    if (vector is None) == (raster is None):
        result.error(tr("Give exactly one of: a label vector layer, or a label raster."))
        return
    field = alg.parameterAsString(parameters, "CLASS_FIELD", context) if vector is not None else None
    check_labels(result, hsi, vector or raster, field or None)


def prepare_label_args(alg, parameters, context, hsi):
    """Main thread (prepareAlgorithm): vector labels reprojected to the HSI CRS into a GeoPackage."""
    from ..labels import CLASS_FIELD, class_field_of, export_labels
    from ..preflight import raster_path
    vector = alg.parameterAsVectorLayer(parameters, "LABELS_VECTOR", context) if parameters.get("LABELS_VECTOR") else None
    if vector is not None:
        field = alg.parameterAsString(parameters, "CLASS_FIELD", context) or class_field_of(vector)
        if not field:
            raise QgsProcessingException(tr("Choose the class field of the label layer."))
        path, table, count = export_labels(vector, field, hsi.crs(), temp_path(".gpkg", "landfuse_labels"),
                                           context.project())
        if count == 0:
            raise QgsProcessingException(tr(f"No labelled feature in '{vector.name()}' (field '{field}')."))
        return ["--labels", path, "--class-field", CLASS_FIELD], table, count
    raster = alg.parameterAsRasterLayer(parameters, "LABELS_RASTER", context) if parameters.get("LABELS_RASTER") else None
    path = raster_path(raster) if raster is not None else None
    if not path:
        raise QgsProcessingException(tr("Give a label vector layer or a label raster file."))
    return ["--labels", path], [], None
