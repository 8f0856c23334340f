"""`diagnostics`: what a bug report needs — versions, device, CUDA, memory."""

from __future__ import annotations

import os
import platform
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time
if TYPE_CHECKING:
    from typing import Any, Dict


def _meminfo():
    info = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, value = line.split(":", 1)
                if key in ("MemTotal", "MemAvailable"):
                    info[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return {"total_bytes": info.get("MemTotal"), "available_bytes": info.get("MemAvailable")}


def collect() -> Dict[str, Any]:
    import numpy
    import rasterio
    import safetensors
    import torch

    from backend import __version__
    from backend.protocol import PROTOCOL_VERSION
    report = {
        "landfuse_backend": __version__,
        "protocol": PROTOCOL_VERSION,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": numpy.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "safetensors": safetensors.__version__,
        "memory": _meminfo(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "devices": [],
        "mamba_ssm": None,
        "default_device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            report["devices"].append({"index": i, "name": props.name, "memory_bytes": props.total_memory})
        try:  # mamba-ssm is only ever importable with CUDA
            import mamba_ssm
            report["mamba_ssm"] = mamba_ssm.__version__
        except Exception as exc:
            report["mamba_ssm"] = f"not available ({type(exc).__name__})"
    else:
        report["mamba_ssm"] = "not used on CPU (our own selective scan runs instead)"
    return report
