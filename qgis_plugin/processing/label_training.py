"""The base of landfuse:train_model and landfuse:finetune_model: the same inputs, labels, training
options, preflight and backend run. Each algorithm adds only what its job starts from (an
architecture, or a model package) and builds its own job dataclass."""

from typing import Optional, Tuple

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
    QgsRasterLayer,
)

from ..estimate import describe_estimate
from ..labels import CLASS_FIELD
from ..models import register_model_folder
from ..params import DEFAULT_TRAIN_TILE_SIZE, LabelTrainingParams
from ..preflight import Preflight, check_inputs, check_labels, check_output_folder, raster_path
from . import keys
from .common import (
    LandFuseAlgorithm,
    Parameters,
    add_device,
    add_hsi_and_aux,
    device_choice,
    export_vector_labels,
    hsi_and_aux,
    layer_paths,
    optional_raster,
    optional_vector,
    tr,
    with_help,
)


class LabelTrainingAlgorithm(LandFuseAlgorithm):
    """Shared by train_model and finetune_model. A subclass's initAlgorithm calls
    `add_inputs_and_labels()` and `add_training_options()` around its own parameters (the order
    the dialog shows), and it implements `make_job`; finetune also `base_model_summary`."""

    # --- parameters ------------------------------------------------------------------------------
    def add_inputs_and_labels(self) -> None:
        add_hsi_and_aux(self)
        self.addParameter(QgsProcessingParameterVectorLayer(
            keys.LABELS_VECTOR, tr("Training labels: point or polygon layer"),
            [QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(with_help(QgsProcessingParameterField(
            keys.CLASS_FIELD, tr("Class field"), parentLayerParameterName=keys.LABELS_VECTOR, optional=True),
            "Empty: the field of the layer's categorized style."))
        self.addParameter(with_help(QgsProcessingParameterRasterLayer(
            keys.LABELS_RASTER, tr("…or training labels: class raster"), optional=True),
            "One band of class values; 0 = unlabelled."))

    def add_training_options(self) -> None:
        self.addParameter(with_help(QgsProcessingParameterNumber(
            keys.EPOCHS, tr("Epochs"), QgsProcessingParameterNumber.Integer, optional=True, minValue=1),
            "Empty: the backend's default (with early stopping)."))
        add_device(self)
        self.addParameter(QgsProcessingParameterNumber(keys.SEED, tr("Random seed"),
                                                       QgsProcessingParameterNumber.Integer, defaultValue=0, minValue=0))
        self.addParameter(QgsProcessingParameterString(keys.MODEL_NAME, tr("Model name"), optional=True))
        tile = QgsProcessingParameterNumber(keys.TILE_SIZE, tr("Training tile size (pixels)"),
                                            QgsProcessingParameterNumber.Integer, defaultValue=DEFAULT_TRAIN_TILE_SIZE,
                                            minValue=16, maxValue=1024)
        tile.setFlags(tile.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(tile)
        self.addParameter(QgsProcessingParameterFolderDestination(keys.OUTPUT_MODEL, tr("Model package folder")))
        self.addOutput(QgsProcessingOutputNumber(keys.OVERALL_ACCURACY, tr("Validation overall accuracy")))

    # --- what a subclass says -------------------------------------------------------------------
    def base_model_summary(self, parameters: Parameters, context: QgsProcessingContext,
                           result: Preflight) -> Optional[dict]:
        """The manifest summary of the model the job starts from (its inputs are checked against
        it); None: a new model, whose inputs are checked on their own."""
        return None

    def make_job(self, parameters: Parameters, context: QgsProcessingContext, **shared) -> LabelTrainingParams:
        """The job dataclass, from the `shared` fields and the subclass's own parameters."""
        raise NotImplementedError

    # --- preflight and run ------------------------------------------------------------------------
    def preflight(self, parameters, context, result):
        summary = self.base_model_summary(parameters, context, result)
        hsi, aux = hsi_and_aux(self, parameters, context)
        check_inputs(result, hsi, aux, summary)
        vector = optional_vector(self, parameters, keys.LABELS_VECTOR, context)
        raster = optional_raster(self, parameters, keys.LABELS_RASTER, context)
        if (vector is None) == (raster is None):
            result.error(tr("Give exactly one of: a label vector layer, or a label raster."))
        else:
            field = self.parameterAsString(parameters, keys.CLASS_FIELD, context) if vector is not None else None
            check_labels(result, hsi, vector or raster, field or None)
        out = parameters.get(keys.OUTPUT_MODEL)
        # A temporary output is a fresh folder Processing makes: nothing to check.
        if isinstance(out, str) and out and out != QgsProcessing.TEMPORARY_OUTPUT:
            check_output_folder(result, out)

    def prepareAlgorithm(self, parameters, context, feedback):
        # On the main thread: layers are read and vector labels exported here, not in processAlgorithm.
        hsi, aux = hsi_and_aux(self, parameters, context)
        self._hsi, self._aux = layer_paths(hsi, aux)
        self._labels, self._class_field = self._prepare_labels(parameters, context, hsi, feedback)
        self._out = None
        return True

    def _prepare_labels(self, parameters: Parameters, context: QgsProcessingContext, hsi: QgsRasterLayer,
                        feedback: QgsProcessingFeedback) -> Tuple[str, Optional[str]]:
        """(label file, its class field or None): vector labels reprojected to the HSI CRS into a
        GeoPackage, or the label raster's file."""
        vector = optional_vector(self, parameters, keys.LABELS_VECTOR, context)
        if vector is not None:
            path, table, count = export_vector_labels(
                vector, self.parameterAsString(parameters, keys.CLASS_FIELD, context), hsi.crs(), "landfuse_labels",
                context, missing_field=tr("Choose the class field of the label layer."),
                no_feature=tr("No labelled feature in '{layer}' (field '{field}')."))
            feedback.pushInfo(f"{count} labelled features, classes: "
                              + ", ".join(f"{r['value']}={r['name']}" for r in table))
            return path, CLASS_FIELD
        raster = optional_raster(self, parameters, keys.LABELS_RASTER, context)
        path = raster_path(raster) if raster is not None else None
        if not path:
            raise QgsProcessingException(tr("Give a label vector layer or a label raster file."))
        return path, None

    def backend_job(self, parameters: Parameters, context: QgsProcessingContext) -> LabelTrainingParams:
        epochs = None
        if parameters.get(keys.EPOCHS) not in (None, ""):     # empty: the backend's default
            epochs = self.parameterAsInt(parameters, keys.EPOCHS, context)
        name = self.parameterAsString(parameters, keys.MODEL_NAME, context) if parameters.get(keys.MODEL_NAME) else ""
        return self.make_job(
            parameters, context, hsi=self._hsi, aux=self._aux, labels=self._labels, class_field=self._class_field,
            out=self.parameterAsString(parameters, keys.OUTPUT_MODEL, context),
            device=device_choice(self, parameters, context), epochs=epochs, name=name,
            tile_size=self.parameterAsInt(parameters, keys.TILE_SIZE, context),
            seed=self.parameterAsInt(parameters, keys.SEED, context))

    def processAlgorithm(self, parameters, context, feedback):
        job = self.backend_job(parameters, context)
        result = self.run_backend(job.command, job.backend_args(), feedback)
        self._out = (result.get("outputs") or {}).get("model", job.out)
        metrics = result.get("metrics") or {}
        oa = metrics.get("oa")
        estimate = describe_estimate(metrics)
        if estimate:
            feedback.pushInfo(estimate)
        return {keys.OUTPUT_MODEL: self._out, keys.OVERALL_ACCURACY: oa if isinstance(oa, (int, float)) else None}

    def postProcessAlgorithm(self, context, feedback):
        # On the main thread: the model lists (and any open dock) learn of the new package.
        if self._out:
            register_model_folder(self._out)
        return {}
