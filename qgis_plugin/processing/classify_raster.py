"""landfuse:classify_raster — a land-cover map from an HSI (+ aux rasters) with a model package."""

import os

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsRasterLayer,
)

from ..areas import area_lines, class_areas
from ..backend_api import DEFAULT_TILE_SIZE, UNCLASSIFIED
from ..params import TILE_SIZE_HELP, ClassifyParams
from ..preflight import check_inputs
from . import keys
from .common import (
    ClassStyler,
    ConfidenceStyler,
    LandFuseAlgorithm,
    add_device,
    add_hsi_and_aux,
    add_min_confidence,
    add_model_folder,
    check_model_folder,
    device_choice,
    hsi_and_aux,
    layer_paths,
    style_on_load,
    tr,
    with_help,
)


class ClassifyRaster(LandFuseAlgorithm):
    def name(self):
        return "classify_raster"

    def displayName(self):
        return tr("Classify raster")

    def shortHelpString(self):
        return tr("Classifies a hyperspectral raster, with optional co-registered LiDAR/DSM/SAR rasters, into a "
                  "land-cover map with a LandFuse model package (a folder with model.json and "
                  "weights.safetensors). The auxiliary rasters are resampled onto the hyperspectral grid by the "
                  "backend and must overlap it. The class raster is styled with the model's class names and "
                  "colours; the optional confidence raster holds the top class probability (0–1), calibrated when the "
                  "model package records a temperature. With a minimum confidence, less certain pixels are left "
                  "'unclassified' (value 255).")

    def initAlgorithm(self, config=None):
        add_hsi_and_aux(self)
        add_model_folder(self, tr("Model package folder"))
        add_device(self)
        self.addParameter(with_help(QgsProcessingParameterFile(
            keys.WAVELENGTHS_FILE, tr("Band wavelengths file"), QgsProcessingParameterFile.File,
            fileFilter=tr("Wavelength lists (*.txt *.csv);;All files (*)"), optional=True),
            "One band centre (nm) a line, for a generic model on a raster whose metadata lacks them "
            "(e.g. resources/wavelengths/casi1500_dfc2018_48.txt)."))
        wavelengths = with_help(QgsProcessingParameterString(
            keys.WAVELENGTHS, tr("…or band wavelengths (list, nm)"), optional=True),
            "Comma-separated band centres in nm (or a file path); overrides the raster's metadata.")
        wavelengths.setFlags(wavelengths.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(wavelengths)
        tile = with_help(QgsProcessingParameterNumber(keys.TILE_SIZE, tr("Tile size (pixels)"),
                                                      QgsProcessingParameterNumber.Integer,
                                                      defaultValue=DEFAULT_TILE_SIZE, minValue=16, maxValue=4096),
                         TILE_SIZE_HELP)
        tile.setFlags(tile.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(tile)
        self.addParameter(QgsProcessingParameterRasterDestination(keys.OUTPUT_CLASSES, tr("Land-cover classes")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            keys.OUTPUT_CONFIDENCE, tr("Confidence"), optional=True, createByDefault=False))
        add_min_confidence(self)
        self.addOutput(QgsProcessingOutputNumber(keys.CLASS_COUNT, tr("Number of classes")))

    def preflight(self, parameters, context, result):
        summary = check_model_folder(self, parameters, context, result)
        hsi, aux = hsi_and_aux(self, parameters, context)
        check_inputs(result, hsi, aux, summary)
        listed = (self.parameterAsString(parameters, keys.WAVELENGTHS, context) or "").strip()
        if listed and self._wavelengths_file(parameters, context):
            result.error(tr("Give the band wavelengths once: as a file or as a list, not both."))

    def _wavelengths_file(self, parameters, context):
        if parameters.get(keys.WAVELENGTHS_FILE) in (None, ""):
            return None
        return (self.parameterAsFile(parameters, keys.WAVELENGTHS_FILE, context) or "").strip() or None

    def backend_job(self, parameters, context) -> ClassifyParams:
        hsi, aux = layer_paths(*hsi_and_aux(self, parameters, context))
        confidence = None
        # Optional and off by default: an empty value means "not written", never a temporary file.
        if parameters.get(keys.OUTPUT_CONFIDENCE) not in (None, ""):
            confidence = self.parameterAsOutputLayer(parameters, keys.OUTPUT_CONFIDENCE, context) or None
        return ClassifyParams(
            hsi=hsi, aux=aux, model_dir=self.parameterAsFile(parameters, keys.MODEL_FOLDER, context),
            out=self.parameterAsOutputLayer(parameters, keys.OUTPUT_CLASSES, context),
            device=device_choice(self, parameters, context),
            tile_size=self.parameterAsInt(parameters, keys.TILE_SIZE, context),
            wavelengths=(self._wavelengths_file(parameters, context)
                         or (self.parameterAsString(parameters, keys.WAVELENGTHS, context) or "").strip() or None),
            confidence=confidence,
            min_confidence=self.parameterAsDouble(parameters, keys.MIN_CONFIDENCE, context))

    @staticmethod
    def _report_areas(classes_path, class_table, result, feedback):
        """The area of each class (ha and %) in the log, as the dock's result panel shows it."""
        layer = QgsRasterLayer(classes_path, "classes", "gdal")
        if not layer.isValid() or not class_table:
            return
        try:
            rows = class_areas(layer, class_table, (result.get("metrics") or {}).get("pixels_per_class"))
        except (RuntimeError, OSError, ImportError, AttributeError) as exc:
            feedback.pushInfo(f"Could not measure the class areas: {exc}")
            return
        feedback.pushInfo("Area per class (share of mapped pixels):\n" + "\n".join(area_lines(rows)))

    def processAlgorithm(self, parameters, context, feedback):
        job = self.backend_job(parameters, context)
        result = self.run_backend(job.command, job.backend_args(), feedback)
        outputs = result.get("outputs", {})
        classes_path = outputs.get("classes", job.out)
        class_table = result.get("class_table") or []
        conf_path = outputs.get("confidence") or None
        style_on_load(context, classes_path, ClassStyler.create(class_table, conf_path))
        if conf_path:
            style_on_load(context, conf_path, ConfidenceStyler.create(classes_path))
        self._report_areas(classes_path, class_table, result, feedback)
        timings = result.get("timings") or {}
        if timings:
            feedback.pushInfo("Timings: " + ", ".join(f"{k} {v:.1f} s" if isinstance(v, (int, float)) else f"{k} {v}"
                                                      for k, v in timings.items()))
        return {keys.OUTPUT_CLASSES: classes_path,
                keys.OUTPUT_CONFIDENCE: conf_path if conf_path and os.path.exists(conf_path) else None,
                # the model's classes: "unclassified" (a confidence threshold's) is not one of them
                keys.CLASS_COUNT: sum(c.get("value") != UNCLASSIFIED["value"] for c in class_table)}
