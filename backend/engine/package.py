"""Model packages on disk: load (validated, hash-checked, never unpickled) and save (atomically)."""

from __future__ import annotations

import hashlib
import json
import math
import os
from typing import TYPE_CHECKING, Any, Dict, Mapping, Tuple, Union

from backend import manifest as mf
from backend.io.atomic import atomic_dir, write_json_atomic
from backend.protocol import ErrorCode, LandFuseError

if TYPE_CHECKING:
    import torch


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _refuse_pickles(model_dir, weights_file):
    if weights_file.lower().endswith(mf.PICKLE_SUFFIXES):
        raise LandFuseError(ErrorCode.UNSAFE_WEIGHTS,
                            f"The model names {weights_file} as its weights: pickle-based files can run code "
                            "when loaded, so LandFuse never opens them.",
                            "Convert the weights to safetensors (safetensors.torch.save_file) and update model.json.")
    path = os.path.join(model_dir, weights_file)
    if not os.path.isfile(path):
        pickles = [f for f in os.listdir(model_dir) if f.lower().endswith(mf.PICKLE_SUFFIXES)]
        if pickles:
            raise LandFuseError(ErrorCode.UNSAFE_WEIGHTS,
                                f"The model folder holds {pickles[0]} instead of {weights_file}: pickle-based "
                                "weights can run code when loaded, so LandFuse never opens them.",
                                "Convert the weights to safetensors and save them as weights.safetensors.")
        raise LandFuseError(ErrorCode.BAD_MODEL, f"The model folder has no weights file {weights_file}: {model_dir}")
    with open(path, "rb") as f:
        head = f.read(2)
    # A safetensors file starts with an 8-byte little-endian header length; a pickle starts with
    # 0x80 (protocol 2+) and a torch zip archive with "PK".
    if head in (b"PK",) or head[:1] == b"\x80":
        raise LandFuseError(ErrorCode.UNSAFE_WEIGHTS,
                            f"{weights_file} is a pickle/torch archive renamed as safetensors; "
                            "LandFuse never unpickles.",
                            "Save the weights with safetensors.torch.save_file.")
    return path


def load_manifest_checked(model_dir: str) -> Tuple[Dict[str, Any], str]:
    """Manifest + verified weights path: format, fields, pickles refused, sha256 matched."""
    manifest = mf.read_manifest(model_dir)
    weights_path = _refuse_pickles(model_dir, manifest["weights"]["file"])
    actual = sha256_file(weights_path)
    if actual != manifest["weights"]["sha256"]:
        raise LandFuseError(ErrorCode.MODEL_HASH_MISMATCH,
                            f"The weights file does not match the hash recorded in model.json ({model_dir}).",
                            "The file was changed or damaged after the model was saved: restore it or retrain.")
    return manifest, weights_path


def build_network(manifest: Mapping[str, Any]) -> torch.nn.Module:
    from backend import nets
    arch = manifest["architecture"]
    # an optional modality carries one more channel: its presence (see modalities.AbsentReader)
    bands = [m["bands"] + int(bool(m.get("optional"))) for m in manifest["modalities"]]
    return nets.build(arch["name"], arch["params"], bands, len(manifest["classes"]))


# Bounds on what an untrusted model.json may ask for, checked before anything is built: far above
# every real LandFuse model (the largest bundled one has ~0.3 M parameters) and far below a size that
# would exhaust a workstation.
MAX_PARAMETERS = 200_000_000
MAX_PARAM_VALUE = 100_000
MAX_HEADER_BYTES = 64 << 20


def _weights_header(path: str) -> Dict[str, tuple]:
    """Tensor name → shape from a safetensors file's JSON header, read without loading any weight."""
    import struct
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > MAX_HEADER_BYTES or length > os.path.getsize(path) - 8:
                raise ValueError(f"header length {length} does not fit the file")
            header = json.loads(f.read(length))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        return {k: tuple(int(n) for n in v["shape"]) for k, v in header.items() if k != "__metadata__"}
    except (struct.error, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise LandFuseError(ErrorCode.BAD_MODEL, f"The weights file is not a valid safetensors file: {exc}",
                            "Restore the model folder from its original copy.") from None


def _check_architecture_params(manifest: Mapping[str, Any]) -> None:
    for key, value in manifest["architecture"]["params"].items():
        if isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        if not isinstance(value, (int, float)) or not math.isfinite(value) or abs(value) > MAX_PARAM_VALUE:
            raise LandFuseError(ErrorCode.BAD_MODEL,
                                f"model.json: architecture parameter {key!r} = {str(value)[:40]} is out of bounds.",
                                "The manifest was changed or damaged: restore the model folder.")


def _check_shapes(manifest: Mapping[str, Any], weights_path: str) -> None:
    """Build the network on torch's meta device (no memory) and compare every tensor's shape with the
    weights file's header, so a hostile or damaged model.json is refused before it allocates anything."""
    import torch
    _check_architecture_params(manifest)
    stored = _weights_header(weights_path)
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build_network(manifest).state_dict().items()}
    except LandFuseError:
        raise
    except Exception as exc:  # parameters the architecture rejects (ValueError, TypeError, …)
        raise LandFuseError(ErrorCode.BAD_MODEL, f"model.json describes a network that cannot be built: "
                            f"{type(exc).__name__}: {str(exc)[:200]}",
                            "Restore the model folder from its original copy.") from None
    n_params = sum(math.prod(s) for s in expected.values())
    if n_params > MAX_PARAMETERS:
        raise LandFuseError(ErrorCode.BAD_MODEL, f"model.json describes a network of {n_params:.3g} parameters, "
                            f"more than LandFuse loads ({MAX_PARAMETERS:.0e}).")
    if expected != stored:
        missing = sorted(set(expected) - set(stored))[:3]
        extra = sorted(set(stored) - set(expected))[:3]
        differ = [k for k in sorted(set(expected) & set(stored)) if expected[k] != stored[k]][:3]
        detail = "; ".join(filter(None, [
            missing and f"missing {', '.join(missing)}", extra and f"unexpected {', '.join(extra)}",
            differ and ", ".join(f"{k} is {stored[k]} where model.json implies {expected[k]}" for k in differ)]))
        raise LandFuseError(ErrorCode.BAD_MODEL,
                            f"The weights do not fit the architecture described in model.json: {detail[:400]}",
                            "The manifest or the weights were changed: restore the model folder.")


def load_model(model_dir: str, device: Union[str, torch.device] = "cpu") -> Tuple[Dict[str, Any], torch.nn.Module]:
    """(manifest, torch module in eval mode on `device`)."""
    import safetensors.torch
    import torch
    manifest, weights_path = load_manifest_checked(model_dir)
    _check_shapes(manifest, weights_path)
    try:
        state = safetensors.torch.load_file(weights_path, device="cpu")
    except Exception as exc:  # truncated / corrupt file: safetensors raises its own error types
        raise LandFuseError(ErrorCode.BAD_MODEL, f"The weights file cannot be read: {exc}",
                            "Restore the model folder from its original copy.") from exc
    bad = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise LandFuseError(ErrorCode.BAD_MODEL, f"The weights hold NaN or infinite values ({bad}): every pixel "
                            "would get the same class.", "Restore the model folder, or retrain the model.")
    net = build_network(manifest)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise LandFuseError(ErrorCode.BAD_MODEL,
                            "The weights do not fit the architecture described in model.json: "
                            + str(exc).splitlines()[0]) from exc
    # The package's calibration travels with the network (a plain attribute, not a weight), so every
    # caller of the per-window code (`classify`, `classify-batch`) divides by the same temperature.
    net.landfuse_temperature = mf.temperature(manifest)
    return manifest, net.to(device).eval()


def model_temperature(net: Any) -> float:
    """The temperature `load_model` attached to `net` (1.0 for a network built any other way)."""
    return float(getattr(net, "landfuse_temperature", 1.0))


def update_manifest(model_dir: str, fields: Mapping[str, Any]) -> dict:
    """Set top-level `fields` of a package's model.json (validated, written atomically, in the format
    `save_package` writes); the weights file is not touched and must still match its recorded sha256."""
    manifest, _ = load_manifest_checked(model_dir)
    manifest = dict(manifest, **fields)
    mf.validate_manifest(manifest)
    write_json_atomic(os.path.join(model_dir, mf.MANIFEST_FILE), manifest, indent=2, end="\n")
    return manifest


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def save_package(out_dir: str, manifest: dict, state_dict: Mapping[str, Any], card_text: str) -> dict:
    """Write model.json + weights.safetensors + README.md into `out_dir` atomically: into a folder
    beside it that then replaces it whole (backend.io.atomic.atomic_dir). Returns the manifest as
    written (with the weights' file name and sha256)."""
    import safetensors.torch

    from backend.io.paths import replaceable_folder
    out_dir = os.path.abspath(out_dir)
    if os.path.lexists(out_dir) and not (os.path.isdir(out_dir) and replaceable_folder(out_dir)):
        raise LandFuseError(ErrorCode.OUTPUT_NOT_WRITABLE,
                            f"{out_dir} exists and is not a LandFuse model package (no {mf.MANIFEST_FILE}): "
                            "LandFuse replaces only model packages, never other folders or files.",
                            "Give a new folder name for the model.")
    os.makedirs(os.path.dirname(out_dir), exist_ok=True)
    with atomic_dir(out_dir, may_replace=replaceable_folder) as tmp:
        weights_path = os.path.join(tmp, mf.WEIGHTS_FILE)
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
        safetensors.torch.save_file(tensors, weights_path)
        manifest = dict(manifest)
        manifest["weights"] = {"file": mf.WEIGHTS_FILE, "sha256": sha256_file(weights_path)}
        mf.validate_manifest(manifest)
        with open(os.path.join(tmp, mf.MANIFEST_FILE), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        with open(os.path.join(tmp, mf.CARD_FILE), "w", encoding="utf-8") as f:
            f.write(card_text)
        os.chmod(weights_path, 0o666 & ~_umask())   # safetensors writes it private; the rest follow the umask
    return manifest
