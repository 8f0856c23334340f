"""landfuse:assess_accuracy — a class raster against reference labels: OA, AA, κ, per class,
confusion matrix, as an HTML report (shown in Processing's Results Viewer) and JSON."""

from qgis.core import (QgsProcessingException, QgsProcessingOutputNumber, QgsProcessingParameterBoolean,
                       QgsProcessingParameterField, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterVectorLayer, QgsProcessing)

from ..labels import CLASS_FIELD, class_field_of, export_labels
from ..preflight import Preflight, check_labels, raster_path
from .common import LandFuseAlgorithm, temp_path, tr


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
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT_CLASSES", tr("Class raster to assess")))
        self.addParameter(QgsProcessingParameterRasterLayer("REFERENCE_RASTER", tr("Reference class raster"), optional=True))
        self.addParameter(QgsProcessingParameterVectorLayer(
            "REFERENCE_VECTOR", tr("…or reference point/polygon layer"),
            [QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterField("REFERENCE_FIELD", tr("Class field of the reference layer"),
                                                      parentLayerParameterName="REFERENCE_VECTOR", optional=True))
        self.addParameter(QgsProcessingParameterBoolean("OPEN_REPORT", tr("Open the report when done"), defaultValue=False))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_HTML", tr("Accuracy report"), tr("HTML files (*.html)")))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_JSON", tr("Accuracy report (JSON)"),
                                                                tr("JSON files (*.json)"), optional=True,
                                                                createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber("OVERALL_ACCURACY", tr("Overall accuracy")))
        self.addOutput(QgsProcessingOutputNumber("AVERAGE_ACCURACY", tr("Average accuracy")))
        self.addOutput(QgsProcessingOutputNumber("KAPPA", tr("Kappa")))

    def _inputs(self, parameters, context):
        prediction = self.parameterAsRasterLayer(parameters, "INPUT_CLASSES", context)
        ref_raster = self.parameterAsRasterLayer(parameters, "REFERENCE_RASTER", context) if parameters.get("REFERENCE_RASTER") else None
        ref_vector = self.parameterAsVectorLayer(parameters, "REFERENCE_VECTOR", context) if parameters.get("REFERENCE_VECTOR") else None
        return prediction, ref_raster, ref_vector

    def checkParameterValues(self, parameters, context):
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        result = Preflight()
        prediction, ref_raster, ref_vector = self._inputs(parameters, context)
        if prediction is None or raster_path(prediction) is None:
            result.error(tr("The class raster must be a raster file on disk."))
        if (ref_raster is None) == (ref_vector is None):
            result.error(tr("Give exactly one reference: a class raster or a point/polygon layer."))
        elif prediction is not None:
            field = self.parameterAsString(parameters, "REFERENCE_FIELD", context) if ref_vector is not None else None
            check_labels(result, prediction, ref_vector or ref_raster, field or None)
        return (True, "") if result.ok else (False, "\n".join(result.errors))

    def prepareAlgorithm(self, parameters, context, feedback):
        prediction, ref_raster, ref_vector = self._inputs(parameters, context)
        self._prediction = raster_path(prediction)
        if ref_vector is not None:
            field = self.parameterAsString(parameters, "REFERENCE_FIELD", context) or class_field_of(ref_vector)
            if not field:
                raise QgsProcessingException(tr("Choose the class field of the reference layer."))
            path, _, count = export_labels(ref_vector, field, prediction.crs(), temp_path(".gpkg", "landfuse_reference"),
                                           context.project())
            if not count:
                raise QgsProcessingException(tr("The reference layer has no labelled feature."))
            self._reference_args = ["--reference", path, "--class-field", CLASS_FIELD]
        else:
            self._reference_args = ["--reference", raster_path(ref_raster)]
        self._open = self.parameterAsBoolean(parameters, "OPEN_REPORT", context)
        self._html = None
        return True

    def processAlgorithm(self, parameters, context, feedback):
        html_path = self.parameterAsFileOutput(parameters, "OUTPUT_HTML", context)
        json_path = None
        if parameters.get("OUTPUT_JSON") not in (None, ""):
            json_path = self.parameterAsFileOutput(parameters, "OUTPUT_JSON", context) or None
        # The backend writes both reports (atomically); the plugin only shows them.
        args = ["--prediction", self._prediction] + self._reference_args + ["--out-html", html_path]
        if json_path:
            args += ["--out-json", json_path]
        result = self.run_backend("evaluate", args, feedback)
        metrics = result.get("metrics") or {}
        self._html = html_path
        oa, kappa, aa = metrics.get("oa"), metrics.get("kappa"), metrics.get("aa")
        feedback.pushInfo(f"OA {oa}, AA {aa}, kappa {kappa}")
        return {"OUTPUT_HTML": html_path, "OUTPUT_JSON": json_path, "OVERALL_ACCURACY": oa,
                "AVERAGE_ACCURACY": aa, "KAPPA": kappa}

    def postProcessAlgorithm(self, context, feedback):
        if self._open and self._html:
            from qgis.PyQt.QtCore import QUrl
            from qgis.PyQt.QtGui import QDesktopServices
            QDesktopServices.openUrl(QUrl.fromLocalFile(self._html))
        return {}
