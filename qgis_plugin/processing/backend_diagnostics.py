"""landfuse:backend_diagnostics — versions, torch device, CUDA and memory of the backend."""

import json

from qgis.core import QgsProcessingOutputString, QgsProcessingParameterFileDestination

from .. import backend_env
from ..diagnostics import format_report
from . import keys
from .common import LandFuseAlgorithm, optional_file_output, tr


class BackendDiagnostics(LandFuseAlgorithm):
    def name(self):
        return "backend_diagnostics"

    def displayName(self):
        return tr("Backend diagnostics")

    def shortHelpString(self):
        return tr("Runs `python -m backend diagnostics` in the LandFuse backend environment and reports "
                  "versions, the torch device, CUDA and free memory — paste it into bug reports.")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFileDestination(
            keys.OUTPUT_JSON, tr("Diagnostics (JSON)"), tr("JSON files (*.json)"), optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputString(keys.DIAGNOSTICS, tr("Diagnostics")))
        self.addOutput(QgsProcessingOutputString(keys.BACKEND_PYTHON, tr("Backend Python")))

    def processAlgorithm(self, parameters, context, feedback):
        result = self.run_backend("diagnostics", [], feedback)
        python, source = backend_env.find_backend_python()
        text = format_report(result, python, source)
        for line in text.splitlines():
            feedback.pushInfo(line)
        json_path = optional_file_output(self, parameters, keys.OUTPUT_JSON, context)
        if json_path:
            with open(json_path, "w", encoding="utf-8") as f:
                json.dump(result, f, indent=1, default=str)
        return {keys.DIAGNOSTICS: text, keys.BACKEND_PYTHON: python, keys.OUTPUT_JSON: json_path}
