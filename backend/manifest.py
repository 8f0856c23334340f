"""Model package manifests (`model.json`): reading and validation, pure Python (no torch).

A package is a folder with model.json, weights.safetensors and a README.md model card. The plugin
imports this module to show a model's modalities and classes without starting the backend.
"""

import json
import math
import os
import re

from backend.protocol import ErrorCode, LandFuseError

FORMAT_NAME = "landfuse-model"
FORMAT_VERSION = 1
MANIFEST_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "README.md"
# Weight formats that unpickle on load: we refuse them by name before touching their bytes.
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib")
MAX_MANIFEST_BYTES = 64 << 20
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
# Temperatures a calibration may record: positive and finite, and within bounds where dividing
# float32 logits by them can neither overflow nor flatten every probability to 1/classes.
TEMPERATURE_RANGE = (1e-3, 1e3)


def _bad(message, hint="Re-export the model with `python -m backend train` or pick another model folder."):
    return LandFuseError(ErrorCode.BAD_MODEL, message, hint)


def _require(obj, key, kind, where):
    if not isinstance(obj, dict) or key not in obj:
        raise _bad(f"{where}: missing field '{key}'")
    value = obj[key]
    if kind is int and isinstance(value, bool):
        raise _bad(f"{where}: field '{key}' must be an integer")
    if not isinstance(value, kind):
        raise _bad(f"{where}: field '{key}' has the wrong type")
    return value


def validate_manifest(manifest):
    """Check structure and values; raise LandFuseError(bad_model) with the first problem found."""
    if not isinstance(manifest, dict):
        raise _bad("model.json must hold a JSON object")
    if manifest.get("format") != FORMAT_NAME:
        raise _bad("model.json is not a LandFuse model manifest (field 'format')")
    version = _require(manifest, "format_version", int, "model.json")
    if version != FORMAT_VERSION:
        raise _bad(f"model.json format_version {version} is not supported (this backend reads {FORMAT_VERSION})",
                   "Update LandFuse, or use a model made by this version.")
    arch = _require(manifest, "architecture", dict, "model.json")
    _require(arch, "name", str, "architecture")
    _require(arch, "params", dict, "architecture")
    modalities = _require(manifest, "modalities", list, "model.json")
    if not modalities:
        raise _bad("model.json lists no modalities")
    for i, mod in enumerate(modalities):
        where = f"modality {i + 1}"
        _require(mod, "name", str, where)
        bands = _require(mod, "bands", int, where)
        if bands < 1:
            raise _bad(f"{where}: 'bands' must be at least 1")
        for key in ("mean", "std"):
            stats = _require(mod, key, list, where)
            if len(stats) != bands or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                              for x in stats):
                raise _bad(f"{where}: '{key}' must list one number per band ({bands})")
            if not all(math.isfinite(x) for x in stats):
                raise _bad(f"{where}: '{key}' holds NaN or infinite values")
        if any(s <= 0 for s in mod["std"]):
            raise _bad(f"{where}: 'std' values must be positive")
        magnitude = mod.get("typical_magnitude")
        if magnitude is not None and (isinstance(magnitude, bool) or not isinstance(magnitude, (int, float))
                                      or not math.isfinite(magnitude) or magnitude < 0):
            raise _bad(f"{where}: 'typical_magnitude' must be a finite number ≥ 0")
        coverage = mod.get("trained_coverage")
        if coverage is not None and (not isinstance(coverage, list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in coverage)):
            raise _bad(f"{where}: 'trained_coverage' must list finite numbers")
        used = mod.get("used_bands")
        if used is not None:
            source = _require(mod, "source_bands", int, where)
            if (not isinstance(used, list) or len(used) != bands
                    or not all(isinstance(b, int) and 1 <= b <= source for b in used)):
                raise _bad(f"{where}: 'used_bands' must list {bands} band numbers between 1 and {source}")
    if any(m.get("optional") for m in modalities[:1]) or any(
            m.get("optional") and not n.get("optional") for m, n in zip(modalities[1:], modalities[2:])):
        raise _bad("only auxiliary modalities after every required one may be optional")
    grid = modalities[0].get("spectral_grid")
    if grid is not None and not isinstance(grid, str):
        raise _bad("modality 1: 'spectral_grid' must name a canonical grid")
    if modalities[0].get("kind", "hsi") != "hsi":
        raise _bad("the first modality must be the hyperspectral image")
    classes = _require(manifest, "classes", list, "model.json")
    if not classes:
        raise _bad("model.json lists no classes")
    seen_values, seen_names = set(), set()
    for i, cls in enumerate(classes):
        where = f"class {i + 1}"
        value = _require(cls, "value", int, where)
        name = _require(cls, "name", str, where)
        color = _require(cls, "color", str, where)
        if not 1 <= value <= 255:
            raise _bad(f"{where}: value {value} must be 1..255 (0 is nodata)")
        if value in seen_values or name in seen_names:
            raise _bad(f"{where}: duplicate class value or name ({value}, {name!r})")
        if not _COLOR.match(color):
            raise _bad(f"{where}: colour {color!r} must look like #rrggbb")
        seen_values.add(value)
        seen_names.add(name)
    weights = _require(manifest, "weights", dict, "model.json")
    wfile = _require(weights, "file", str, "weights")
    sha = _require(weights, "sha256", str, "weights")
    if os.path.basename(wfile) != wfile:
        raise _bad("weights.file must be a file name inside the model folder")
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise _bad("weights.sha256 must be 64 lowercase hex digits")
    halo = manifest.get("halo", 0)
    if not isinstance(halo, int) or halo < 0:
        raise _bad("'halo' must be a non-negative integer")
    calibration = manifest.get("calibration")
    if calibration is not None:
        if not isinstance(calibration, dict):
            raise _bad("'calibration' must be an object (from `python -m backend calibrate`)")
        t = calibration.get("temperature")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) \
                or not TEMPERATURE_RANGE[0] <= t <= TEMPERATURE_RANGE[1]:
            raise _bad(f"calibration: 'temperature' must be a positive finite number "
                       f"({TEMPERATURE_RANGE[0]:g}…{TEMPERATURE_RANGE[1]:g})",
                       "Run `python -m backend calibrate --model` on the package again, or remove its 'calibration'.")
    return manifest


def temperature(manifest):
    """The softmax temperature the package's logits are divided by (`calibration.temperature`;
    1.0 for a package without calibration, so every older package reads as before)."""
    calibration = manifest.get("calibration")
    return float(calibration["temperature"]) if isinstance(calibration, dict) else 1.0


def read_manifest(model_dir):
    """Read and validate `model_dir/model.json` (no weights are touched)."""
    if not os.path.isdir(model_dir):
        raise LandFuseError(ErrorCode.MODEL_NOT_FOUND, f"Model folder not found: {model_dir}",
                            "Pick a folder that holds model.json and weights.safetensors.")
    path = os.path.join(model_dir, MANIFEST_FILE)
    if not os.path.isfile(path):
        raise _bad(f"The model folder has no {MANIFEST_FILE}: {model_dir}")
    if os.path.getsize(path) > MAX_MANIFEST_BYTES:
        raise _bad(f"{MANIFEST_FILE} is {os.path.getsize(path)} bytes, far larger than any model manifest")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"{MANIFEST_FILE} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise _bad(f"{MANIFEST_FILE} is nested too deeply to be a model manifest") from None
    return validate_manifest(manifest)


def summarize(manifest):
    """The short description the CLI `info` command and the plugin's model chooser show."""
    return {
        "id": manifest.get("id", ""),
        "name": manifest.get("name", manifest.get("id", "")),
        "architecture": manifest["architecture"]["name"],
        "modalities": [{"name": m["name"], "kind": m.get("kind", "aux"), "bands": m["bands"],
                        "source_bands": m.get("source_bands", m["bands"]), "optional": bool(m.get("optional")),
                        "any_sensor": bool(m.get("spectral_grid"))} for m in manifest["modalities"]],
        "classes": [{"value": c["value"], "name": c["name"], "color": c["color"]} for c in manifest["classes"]],
        "metrics": manifest.get("metrics", {}),
        "generic": bool(manifest.get("generic", False)),
    }
