"""landfuse:train_model — train a model package on labels drawn or loaded in QGIS."""

from qgis.core import QgsProcessingParameterEnum

from ..params import ARCHITECTURES, TrainParams
from . import keys
from .common import tr
from .label_training import LabelTrainingAlgorithm


class TrainModel(LabelTrainingAlgorithm):
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
        self.add_inputs_and_labels()
        # Stored as an index in batch files and models: the order of ARCHITECTURES is public.
        self.addParameter(QgsProcessingParameterEnum(keys.ARCHITECTURE, tr("Architecture"), list(ARCHITECTURES),
                                                     defaultValue=0))
        self.add_training_options()

    def make_job(self, parameters, context, **shared) -> TrainParams:
        return TrainParams(arch=ARCHITECTURES[self.parameterAsEnum(parameters, keys.ARCHITECTURE, context)], **shared)
