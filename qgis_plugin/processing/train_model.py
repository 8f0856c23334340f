"""landfuse:train_model — train a model package on labels drawn or loaded in QGIS."""

from qgis.core import (QgsProcessingOutputNumber, QgsProcessingParameterDefinition, QgsProcessingParameterEnum, QgsProcessingParameterFolderDestination,
                       QgsProcessingParameterNumber, QgsProcessingParameterString)

from ..models import register_model_folder
from ..preflight import Preflight, check_inputs, check_output_folder
from .common import (LandFuseAlgorithm, add_device, add_hsi_and_aux, add_label_parameters, check_label_parameters,
                     device_arg, hsi_and_aux, layer_args, prepare_label_args, tr)

ARCHITECTURES = ["m3amba", "bdgf", "tiny"]


class TrainModel(LandFuseAlgorithm):
    def name(self):
        return "train_model"

    def displayName(self):
        return tr("Train model")

    def shortHelpString(self):
        return tr("Trains a LandFuse model package on your labels: a point/polygon layer with a class field (or a "
                  "categorized style), reprojected to the hyperspectral CRS, or a class raster with 0 = "
                  "unlabelled. The new model appears in the LandFuse dock's model list. Architectures: m3amba "
                  "(cross-modal Mamba), bdgf (diffusion-guided fusion), tiny (fast, for tests and previews).")

    def initAlgorithm(self, config=None):
        add_hsi_and_aux(self)
        add_label_parameters(self)
        self.addParameter(QgsProcessingParameterEnum("ARCHITECTURE", tr("Architecture"), ARCHITECTURES, defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber("EPOCHS", tr("Epochs (empty: the backend's default)"),
                                                       QgsProcessingParameterNumber.Integer, optional=True, minValue=1))
        add_device(self)
        self.addParameter(QgsProcessingParameterNumber("SEED", tr("Random seed"), QgsProcessingParameterNumber.Integer,
                                                       defaultValue=0, minValue=0))
        self.addParameter(QgsProcessingParameterString("MODEL_NAME", tr("Model name"), optional=True))
        tile = QgsProcessingParameterNumber("TILE_SIZE", tr("Training tile size (pixels)"),
                                            QgsProcessingParameterNumber.Integer, defaultValue=64, minValue=16, maxValue=1024)
        tile.setFlags(tile.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(tile)
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_MODEL", tr("Model package folder")))
        self.addOutput(QgsProcessingOutputNumber("OVERALL_ACCURACY", tr("Validation overall accuracy")))

    def checkParameterValues(self, parameters, context):
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        result = Preflight()
        hsi, aux = hsi_and_aux(self, parameters, context)
        check_inputs(result, hsi, aux)
        check_label_parameters(self, parameters, context, result, hsi)
        out = parameters.get("OUTPUT_MODEL")
        if isinstance(out, str) and out and out != "TEMPORARY_OUTPUT":
            check_output_folder(result, out)
        return (True, "") if result.ok else (False, "\n".join(result.errors))

    def extra_args(self, parameters, context):
        return ["--arch", ARCHITECTURES[self.parameterAsEnum(parameters, "ARCHITECTURE", context)],
                "--seed", str(self.parameterAsInt(parameters, "SEED", context))]

    command = "train"

    def prepareAlgorithm(self, parameters, context, feedback):
        hsi, aux = hsi_and_aux(self, parameters, context)
        self._args = layer_args(hsi, aux)
        label_args, table, count = prepare_label_args(self, parameters, context, hsi)
        if count is not None:
            feedback.pushInfo(f"{count} labelled features, classes: " + ", ".join(f"{r['value']}={r['name']}" for r in table))
        self._args += label_args
        self._out = None
        return True

    def processAlgorithm(self, parameters, context, feedback):
        out = self.parameterAsString(parameters, "OUTPUT_MODEL", context)
        args = list(self._args) + ["--out", out] + device_arg(self, parameters, context)
        if parameters.get("EPOCHS") not in (None, ""):
            args += ["--epochs", str(self.parameterAsInt(parameters, "EPOCHS", context))]
        name = self.parameterAsString(parameters, "MODEL_NAME", context) if parameters.get("MODEL_NAME") else ""
        if name:
            args += ["--name", name]
        args += ["--tile-size", str(self.parameterAsInt(parameters, "TILE_SIZE", context))]
        args += self.extra_args(parameters, context)
        result = self.run_backend(self.command, args, feedback)
        self._out = (result.get("outputs") or {}).get("model", out)
        metrics = result.get("metrics") or {}
        oa = metrics.get("oa")
        if isinstance(oa, (int, float)):
            feedback.pushInfo(f"Validation overall accuracy: {oa:.3f}")
        return {"OUTPUT_MODEL": self._out, "OVERALL_ACCURACY": oa if isinstance(oa, (int, float)) else None}

    def postProcessAlgorithm(self, context, feedback):
        if self._out:
            register_model_folder(self._out)
        return {}
