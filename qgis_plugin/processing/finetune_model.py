"""landfuse:finetune_model — continue training a model package on new labels."""

from ..params import FinetuneParams
from . import keys
from .common import add_model_folder, check_model_folder, tr
from .label_training import LabelTrainingAlgorithm


class FinetuneModel(LabelTrainingAlgorithm):
    def name(self):
        return "finetune_model"

    def displayName(self):
        return tr("Fine-tune model")

    def shortHelpString(self):
        return tr("Fine-tunes an existing LandFuse model package on your labels (same inputs as the model was "
                  "trained on) and writes a new package; the original is left untouched. Labels: a point/polygon "
                  "layer with a class field (or categorized style), or a class raster with 0 = unlabelled. "
                  "Classes of the starting model that you do not label are kept as it predicts them, unless it "
                  "already gives them to more than a tenth of your labelled pixels (the log names both).")

    def initAlgorithm(self, config=None):
        add_model_folder(self, tr("Model package to start from"))
        self.add_inputs_and_labels()
        self.add_training_options()

    def base_model_summary(self, parameters, context, result):
        return check_model_folder(self, parameters, context, result)

    def make_job(self, parameters, context, **shared) -> FinetuneParams:
        return FinetuneParams(model_dir=self.parameterAsFile(parameters, keys.MODEL_FOLDER, context), **shared)
