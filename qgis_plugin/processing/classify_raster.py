"""landfuse:classify_raster — a land-cover map from an HSI (+ aux rasters) with a model package."""

import os

from qgis.core import (QgsProcessingOutputNumber, QgsProcessingParameterDefinition,
                       QgsProcessingParameterFile, QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination, QgsProcessingParameterString)

from ..backend_api import DEFAULT_TILE_SIZE
from ..models import default_model_dir
from ..preflight import Preflight, check_inputs
from .common import (ClassStyler, ConfidenceStyler, LandFuseAlgorithm, add_device, add_hsi_and_aux, check_model_folder,
                     device_arg, hsi_and_aux, layer_args, style_on_load, tr)


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
                  "colours; the optional confidence raster holds the top class probability (0–1).")

    def initAlgorithm(self, config=None):
        add_hsi_and_aux(self)
        self.addParameter(QgsProcessingParameterFile(
            "MODEL_FOLDER", tr("Model package folder"), QgsProcessingParameterFile.Folder,
            defaultValue=default_model_dir() or None))
        add_device(self)
        wavelengths = QgsProcessingParameterString(
            "WAVELENGTHS", tr("Band centres of the hyperspectral layer (nm; a list or a text file) — only for a "
                              "generic model on a raster without wavelength metadata"), optional=True)
        wavelengths.setFlags(wavelengths.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(wavelengths)
        tile = QgsProcessingParameterNumber("TILE_SIZE", tr("Tile size (pixels)"), QgsProcessingParameterNumber.Integer,
                                            defaultValue=DEFAULT_TILE_SIZE, minValue=16, maxValue=4096)
        tile.setFlags(tile.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(tile)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_CLASSES", tr("Land-cover classes")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "OUTPUT_CONFIDENCE", tr("Confidence"), optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber("CLASS_COUNT", tr("Number of classes")))

    def checkParameterValues(self, parameters, context):
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        result = Preflight()
        summary = check_model_folder(self, parameters, context, result)
        hsi, aux = hsi_and_aux(self, parameters, context)
        check_inputs(result, hsi, aux, summary)
        return (True, "") if result.ok else (False, "\n".join(result.errors))

    def processAlgorithm(self, parameters, context, feedback):
        hsi, aux = hsi_and_aux(self, parameters, context)
        model_dir = self.parameterAsFile(parameters, "MODEL_FOLDER", context)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT_CLASSES", context)
        args = layer_args(hsi, aux) + ["--model", model_dir, "--out", out] + device_arg(self, parameters, context)
        args += ["--tile-size", str(self.parameterAsInt(parameters, "TILE_SIZE", context))]
        wavelengths = (self.parameterAsString(parameters, "WAVELENGTHS", context) or "").strip()
        if wavelengths:
            args += ["--wavelengths", wavelengths]
        confidence = None
        if parameters.get("OUTPUT_CONFIDENCE") not in (None, ""):
            confidence = self.parameterAsOutputLayer(parameters, "OUTPUT_CONFIDENCE", context) or None
        if confidence:
            args += ["--confidence", confidence]
        result = self.run_backend("classify", args, feedback)
        outputs = result.get("outputs", {})
        classes_path = outputs.get("classes", out)
        class_table = result.get("class_table") or []
        style_on_load(context, classes_path, ClassStyler.create(class_table))
        conf_path = outputs.get("confidence") or None
        if conf_path:
            style_on_load(context, conf_path, ConfidenceStyler.create())
        timings = result.get("timings") or {}
        if timings:
            feedback.pushInfo("Timings: " + ", ".join(f"{k} {v:.1f} s" if isinstance(v, (int, float)) else f"{k} {v}"
                                                      for k, v in timings.items()))
        return {"OUTPUT_CLASSES": classes_path, "OUTPUT_CONFIDENCE": conf_path if conf_path and os.path.exists(conf_path) else None,
                "CLASS_COUNT": len(class_table)}
