"""The text of a diagnostics report: QGIS side + the backend's `diagnostics` result."""

import json
import platform
import sys

from qgis.core import Qgis

from . import backend_env
from .paths import plugin_version


def _flatten(prefix, value, lines):
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            _flatten(f"{prefix}{key}.", sub, lines)
    else:
        lines.append(f"{prefix.rstrip('.')}: {_short(value)}")


def _short(value):
    return json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)


def format_report(result, python=None, source=None):
    lines = ["LandFuse diagnostics",
             f"plugin: {plugin_version()}",
             f"QGIS: {Qgis.QGIS_VERSION} (Python {platform.python_version()}, {sys.platform})",
             f"backend python: {python or '—'} ({source or 'unknown'})",
             f"backend environment: {backend_env.env_state(python) if python else 'missing'}"]
    diag = (result or {}).get("diagnostics", result or {})
    if isinstance(diag, dict):
        _flatten("", diag, lines)
    return "\n".join(lines)
