"""The "LandFuse" Processing provider (id `landfuse`)."""

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..paths import plugin_version, resource
from .assess_accuracy import AssessAccuracy
from .backend_diagnostics import BackendDiagnostics
from .classify_batch import ClassifyBatch
from .classify_raster import ClassifyRaster
from .finetune_model import FinetuneModel
from .train_model import TrainModel

ALGORITHMS = (ClassifyRaster, ClassifyBatch, TrainModel, FinetuneModel, AssessAccuracy, BackendDiagnostics)


class LandFuseProvider(QgsProcessingProvider):
    def id(self):
        return "landfuse"

    def name(self):
        return "LandFuse"

    def longName(self):
        return f"LandFuse {plugin_version()} — multimodal land-cover classification"

    def icon(self):
        return QIcon(resource("icon.svg"))

    def loadAlgorithms(self):
        for cls in ALGORITHMS:
            self.addAlgorithm(cls())
