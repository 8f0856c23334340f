"""landfuse:finetune_model — continue training a model package on new labels."""

from qgis.core import QgsProcessingParameterFile

from ..models import default_model_dir
from ..preflight import Preflight, check_inputs, check_output_folder
from .common import check_label_parameters, check_model_folder, hsi_and_aux, tr
from .train_model import TrainModel


class FinetuneModel(TrainModel):
    command = "finetune"

    def name(self):
        return "finetune_model"

    def displayName(self):
        return tr("Fine-tune model")

    def shortHelpString(self):
        return tr("Fine-tunes an existing LandFuse model package on your labels (same inputs as the model was "
                  "trained on) and writes a new package; the original is left untouched. Labels: a point/polygon "
                  "layer with a class field (or categorized style), or a class raster with 0 = unlabelled.")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFile("MODEL_FOLDER", tr("Model package to start from"),
                                                     QgsProcessingParameterFile.Folder,
                                                     defaultValue=default_model_dir() or None))
        super().initAlgorithm(config)
        self.removeParameter("ARCHITECTURE")

    def checkParameterValues(self, parameters, context):
        ok, message = super(TrainModel, self).checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        result = Preflight()
        summary = check_model_folder(self, parameters, context, result)
        hsi, aux = hsi_and_aux(self, parameters, context)
        check_inputs(result, hsi, aux, summary)
        check_label_parameters(self, parameters, context, result, hsi)
        out = parameters.get("OUTPUT_MODEL")
        if isinstance(out, str) and out and out != "TEMPORARY_OUTPUT":
            check_output_folder(result, out)
        return (True, "") if result.ok else (False, "\n".join(result.errors))

    def extra_args(self, parameters, context):
        return ["--model", self.parameterAsFile(parameters, "MODEL_FOLDER", context),
                "--seed", str(self.parameterAsInt(parameters, "SEED", context))]
