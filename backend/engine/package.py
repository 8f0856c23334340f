"""Model packages on disk: load (validated, hash-checked, never unpickled) and save (atomically)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any, Dict, Mapping, Tuple, Union

from backend import manifest as mf
from backend.io.atomic import atomic_dir
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


def load_model(model_dir: str, device: Union[str, torch.device] = "cpu") -> Tuple[Dict[str, Any], torch.nn.Module]:
    """(manifest, torch module in eval mode on `device`)."""
    import safetensors.torch
    manifest, weights_path = load_manifest_checked(model_dir)
    try:
        state = safetensors.torch.load_file(weights_path, device="cpu")
    except Exception as exc:  # truncated / corrupt file: safetensors raises its own error types
        raise LandFuseError(ErrorCode.BAD_MODEL, f"The weights file cannot be read: {exc}",
                            "Restore the model folder from its original copy.") from exc
    net = build_network(manifest)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise LandFuseError(ErrorCode.BAD_MODEL,
                            "The weights do not fit the architecture described in model.json: "
                            + str(exc).splitlines()[0]) from exc
    return manifest, net.to(device).eval()


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def save_package(out_dir: str, manifest: dict, state_dict: Mapping[str, Any], card_text: str) -> dict:
    """Write model.json + weights.safetensors + README.md into `out_dir` atomically: into a folder
    beside it that then replaces it whole (backend.io.atomic.atomic_dir). Returns the manifest as
    written (with the weights' file name and sha256)."""
    import safetensors.torch
    out_dir = os.path.abspath(out_dir)
    os.makedirs(os.path.dirname(out_dir), exist_ok=True)
    with atomic_dir(out_dir) as tmp:
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
