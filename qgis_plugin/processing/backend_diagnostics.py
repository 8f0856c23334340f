"""landfuse:backend_diagnostics — versions, torch device, CUDA and memory of the backend."""

import json

from qgis.core import (QgsProcessingOutputString, QgsProcessingParameterFileDestination)

from .. import backend_env
from ..diagnostics import format_report
from .common import LandFuseAlgorithm, tr


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
            "OUTPUT_JSON", tr("Diagnostics (JSON)"), tr("JSON files (*.json)"), optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputString("DIAGNOSTICS", tr("Diagnostics")))
        self.addOutput(QgsProcessingOutputString("BACKEND_PYTHON", tr("Backend Python")))

    def processAlgorithm(self, parameters, context, feedback):
        result = self.run_backend("diagnostics", [], feedback)
        python, source = backend_env.find_backend_python()
        text = format_report(result, python, source)
        for line in text.splitlines():
            feedback.pushInfo(line)
        json_path = None
        if parameters.get("OUTPUT_JSON") not in (None, ""):
            json_path = self.parameterAsFileOutput(parameters, "OUTPUT_JSON", context) or None
        if json_path:
            with open(json_path, "w", encoding="utf-8") as f:
                json.dump(result, f, indent=1, default=str)
        return {"DIAGNOSTICS": text, "BACKEND_PYTHON": python, "OUTPUT_JSON": json_path}
