"""landfuse:assess_accuracy — a class raster against reference labels: OA, AA, κ, per class,
confusion matrix, as an HTML report (shown in Processing's Results Viewer) and JSON."""

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorLayer,
)

from ..labels import CLASS_FIELD
from ..params import EvaluateParams
from ..preflight import check_labels, raster_path
from . import keys
from .common import LandFuseAlgorithm, export_vector_labels, optional_file_output, optional_raster, optional_vector, tr


class AssessAccuracy(LandFuseAlgorithm):
    def name(self):
        return "assess_accuracy"

    def displayName(self):
        return tr("Assess accuracy")

    def shortHelpString(self):
        return tr("Compares a class raster with reference labels — a class raster (0 = unlabelled) or a "
                  "point/polygon layer with a class field, reprojected to the class raster's CRS — and writes an "
                  "HTML report (overall and average accuracy, kappa, per-class accuracy, confusion matrix) "
                  "and the same numbers as JSON.")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(keys.INPUT_CLASSES, tr("Class raster to assess")))
        self.addParameter(QgsProcessingParameterRasterLayer(keys.REFERENCE_RASTER, tr("Reference class raster"),
                                                            optional=True))
        self.addParameter(QgsProcessingParameterVectorLayer(
            keys.REFERENCE_VECTOR, tr("…or reference point/polygon layer"),
            [QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterField(keys.REFERENCE_FIELD, tr("Class field of the reference layer"),
                                                      parentLayerParameterName=keys.REFERENCE_VECTOR, optional=True))
        self.addParameter(QgsProcessingParameterBoolean(keys.OPEN_REPORT, tr("Open the report when done"),
                                                        defaultValue=False))
        self.addParameter(QgsProcessingParameterFileDestination(keys.OUTPUT_HTML, tr("Accuracy report"),
                                                                tr("HTML files (*.html)")))
        self.addParameter(QgsProcessingParameterFileDestination(keys.OUTPUT_JSON, tr("Accuracy report (JSON)"),
                                                                tr("JSON files (*.json)"), optional=True,
                                                                createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber(keys.OVERALL_ACCURACY, tr("Overall accuracy")))
        self.addOutput(QgsProcessingOutputNumber(keys.AVERAGE_ACCURACY, tr("Average accuracy")))
        self.addOutput(QgsProcessingOutputNumber(keys.KAPPA, tr("Kappa")))

    def _inputs(self, parameters, context):
        prediction = self.parameterAsRasterLayer(parameters, keys.INPUT_CLASSES, context)
        ref_raster = optional_raster(self, parameters, keys.REFERENCE_RASTER, context)
        ref_vector = optional_vector(self, parameters, keys.REFERENCE_VECTOR, context)
        return prediction, ref_raster, ref_vector

    def preflight(self, parameters, context, result):
        prediction, ref_raster, ref_vector = self._inputs(parameters, context)
        if prediction is None or raster_path(prediction) is None:
            result.error(tr("The class raster must be a raster file on disk."))
        if (ref_raster is None) == (ref_vector is None):
            result.error(tr("Give exactly one reference: a class raster or a point/polygon layer."))
        elif prediction is not None:
            field = self.parameterAsString(parameters, keys.REFERENCE_FIELD, context) if ref_vector is not None else None
            check_labels(result, prediction, ref_vector or ref_raster, field or None)

    def prepareAlgorithm(self, parameters, context, feedback):
        # On the main thread: layers are read and a vector reference exported here.
        prediction, ref_raster, ref_vector = self._inputs(parameters, context)
        self._prediction = raster_path(prediction)
        if ref_vector is not None:
            self._reference, _, _ = export_vector_labels(
                ref_vector, self.parameterAsString(parameters, keys.REFERENCE_FIELD, context), prediction.crs(),
                "landfuse_reference", context, missing_field=tr("Choose the class field of the reference layer."),
                no_feature=tr("The reference layer has no labelled feature."))
            self._class_field = CLASS_FIELD
        else:
            self._reference, self._class_field = raster_path(ref_raster), None
        self._open = self.parameterAsBoolean(parameters, keys.OPEN_REPORT, context)
        self._html = None
        return True

    def backend_job(self, parameters, context) -> EvaluateParams:
        return EvaluateParams(prediction=self._prediction, reference=self._reference, class_field=self._class_field,
                              out_html=self.parameterAsFileOutput(parameters, keys.OUTPUT_HTML, context),
                              out_json=optional_file_output(self, parameters, keys.OUTPUT_JSON, context))

    def processAlgorithm(self, parameters, context, feedback):
        # The backend writes both reports (atomically); the plugin only shows them.
        job = self.backend_job(parameters, context)
        result = self.run_backend(job.command, job.backend_args(), feedback)
        metrics = result.get("metrics") or {}
        self._html = job.out_html
        oa, kappa, aa = metrics.get("oa"), metrics.get("kappa"), metrics.get("aa")
        feedback.pushInfo(f"OA {oa}, AA {aa}, kappa {kappa}")
        return {keys.OUTPUT_HTML: job.out_html, keys.OUTPUT_JSON: job.out_json, keys.OVERALL_ACCURACY: oa,
                keys.AVERAGE_ACCURACY: aa, keys.KAPPA: kappa}

    def postProcessAlgorithm(self, context, feedback):
        if self._open and self._html:
            from qgis.PyQt.QtCore import QUrl
            from qgis.PyQt.QtGui import QDesktopServices
            QDesktopServices.openUrl(QUrl.fromLocalFile(self._html))
        return {}
