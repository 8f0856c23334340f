"""Finding, checking and creating the backend's Python environment.

Order of search (first that exists wins):
 1. the LANDFUSE_BACKEND_PYTHON environment variable (developers, tests, managed installs);
 2. the `LandFuse/backend_python` setting (chosen by the user);
 3. a `.venv/` bundled next to the plugin root (a developer checkout after `make setup-backend`);
 4. the venv this plugin created in the QGIS profile folder (`<profile>/landfuse/venv`).
If none exists the plugin offers to create 4: `install_plan` lists the commands (argument lists,
never a shell), `EnvInstallTask` runs them, and a stamp (hash of the requirements + torch variant)
written last tells a complete env from a broken one and a stale one from a current one.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

from qgis.core import QgsApplication, QgsSettings, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from .backend_launch import clean_environment
from .paths import PLUGIN_ROOT

ENV_VAR = "LANDFUSE_BACKEND_PYTHON"
SETTING_PYTHON = "LandFuse/backend_python"
SETTING_BASE_PYTHON = "LandFuse/base_python"
SETTING_TORCH_INDEX = "LandFuse/torch_index_url"
STAMP_FILE = "landfuse-stamp.json"
CPU, CUDA = "cpu", "cuda"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu126"


def venv_python(venv_dir):
    if os.name == "nt":
        return os.path.join(venv_dir, "Scripts", "python.exe")
    return os.path.join(venv_dir, "bin", "python")


def profile_venv_dir():
    return os.path.join(QgsApplication.qgisSettingsDirPath(), "landfuse", "venv")


def bundled_venv_dir(root=None):
    return os.path.join(root or PLUGIN_ROOT, ".venv")


def _usable(python):
    return bool(python) and os.path.isfile(python) and os.access(python, os.X_OK)


def configured_python():
    return QgsSettings().value(SETTING_PYTHON, "", type=str) or ""


def set_configured_python(path):
    QgsSettings().setValue(SETTING_PYTHON, path or "")


def find_backend_python(root=None):
    """(python path or None, where it came from)."""
    candidates = [
        (os.environ.get(ENV_VAR, ""), f"environment variable {ENV_VAR}"),
        (configured_python(), "LandFuse setting"),
        (venv_python(bundled_venv_dir(root)), "bundled .venv next to the plugin"),
        (venv_python(profile_venv_dir()), "LandFuse environment in the QGIS profile"),
    ]
    for path, source in candidates:
        if _usable(path):
            return path, source
    return None, "not found"


# --- requirements, stamp --------------------------------------------------------------------

def requirements_files(root=None, variant=CPU):
    backend = os.path.join(root or PLUGIN_ROOT, "backend")
    files = [os.path.join(backend, "requirements.txt")]
    if variant == CUDA:
        files.append(os.path.join(backend, "requirements-gpu.txt"))
    return files


def requirements_hash(root=None, variant=CPU):
    digest = hashlib.sha256(f"variant={variant}\n".encode())
    for path in requirements_files(root, variant):
        digest.update(os.path.basename(path).encode() + b"\n")
        if os.path.isfile(path):
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def torch_requirement(root=None):
    """The torch line of requirements.txt (e.g. 'torch==2.13.0'), or 'torch'."""
    path = requirements_files(root, CPU)[0]
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if re.match(r"^torch\b", line):
                    return line
    return "torch"


def stamp_path(venv_dir):
    return os.path.join(venv_dir, STAMP_FILE)


def write_stamp(venv_dir, root=None, variant=CPU):
    stamp = {"requirements_sha256": requirements_hash(root, variant), "variant": variant,
             "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "python": venv_python(venv_dir)}
    with open(stamp_path(venv_dir), "w", encoding="utf-8") as f:
        json.dump(stamp, f, indent=1)
    return stamp


def read_stamp(venv_dir):
    try:
        with open(stamp_path(venv_dir), encoding="utf-8") as f:
            stamp = json.load(f)
        return stamp if isinstance(stamp, dict) else None
    except (OSError, ValueError):
        return None


def env_state(python, root=None):
    """'current', 'stale' (requirements changed since it was made), 'incomplete' (no stamp in a
    venv we manage) or 'external' (an interpreter we did not create: not checked)."""
    if not python:
        return "missing"
    venv_dir = os.path.dirname(os.path.dirname(os.path.abspath(python)))
    managed = os.path.abspath(venv_dir) == os.path.abspath(profile_venv_dir())
    stamp = read_stamp(venv_dir)
    if stamp is None:
        return "incomplete" if managed else "external"
    if stamp.get("requirements_sha256") != requirements_hash(root, stamp.get("variant", CPU)):
        return "stale"
    return "current"


# --- creating the environment -----------------------------------------------------------------

def detect_cuda():
    """True when an NVIDIA driver answers (`nvidia-smi -L` lists a GPU)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return False
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and b"GPU" in out.stdout


def base_python_candidates():
    """Interpreters able to create a venv (QGIS's own Python first on Windows/macOS)."""
    found = []
    configured = QgsSettings().value(SETTING_BASE_PYTHON, "", type=str)
    if configured:
        found.append(configured)
    exe_dir = os.path.dirname(sys.executable)
    for name in ("python3", "python", "python.exe", "python3.exe"):
        for folder in (exe_dir, getattr(sys, "base_prefix", ""), os.path.join(sys.base_prefix, "bin")):
            path = os.path.join(folder, name)
            if _usable(path):
                found.append(path)
    for name in ("python3", "python"):
        path = shutil.which(name)
        if path:
            found.append(path)
    unique = []
    for path in found:
        if path not in unique and "qgis" not in os.path.basename(path).lower():
            unique.append(path)
    return unique


class Step:
    def __init__(self, label, argv, optional=False):
        self.label = label
        self.argv = [str(a) for a in argv]
        self.optional = optional

    def __repr__(self):
        return f"Step({self.label!r}, {self.argv!r}, optional={self.optional})"


def torch_index_url(variant):
    override = QgsSettings().value(SETTING_TORCH_INDEX, "", type=str)
    if override:
        return override
    if variant == CUDA:
        # Linux wheels on PyPI are the CUDA build already; Windows needs PyTorch's CUDA index.
        return TORCH_CUDA_INDEX if sys.platform.startswith("win") else ""
    # PyPI's Linux torch is the multi-GB CUDA build: take the CPU wheel from PyTorch's index.
    # macOS wheels on PyPI are CPU/MPS builds.
    return "" if sys.platform == "darwin" else TORCH_CPU_INDEX


def install_plan(base_python, venv_dir, root=None, variant=CPU):
    """The commands that create the backend venv, in order."""
    root = root or PLUGIN_ROOT
    py = venv_python(venv_dir)
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    steps = [Step("Create the virtual environment", [base_python, "-m", "venv", "--clear", venv_dir]),
             Step("Update pip", pip + ["--upgrade", "pip"], optional=True)]
    torch_cmd = pip + [torch_requirement(root)]
    index = torch_index_url(variant)
    if index:
        torch_cmd += ["--index-url", index]
    steps.append(Step(f"Install PyTorch ({variant.upper()})", torch_cmd))
    req, *gpu = requirements_files(root, variant)
    steps.append(Step("Install the backend requirements", pip + ["-r", req]))
    for extra in gpu:
        steps.append(Step("Install the GPU extras (optional: mamba-ssm)", pip + ["-r", req, "-r", extra],
                          optional=True))
    steps.append(Step("Check the backend", [py, "-E", "-s", os.path.join(root, "qgis_plugin", "backend_launch.py"),
                                            root, "diagnostics"]))
    return steps


class EnvInstallTask(QgsTask):
    """Runs an install plan step by step; streams output lines through `line`; writes the stamp
    only when every required step succeeded. Cancel kills the running step."""

    line = pyqtSignal(str)

    def __init__(self, steps, venv_dir, root=None, variant=CPU, on_finished=None):
        super().__init__("LandFuse: set up the backend environment", QgsTask.CanCancel)
        self.steps = steps
        self.venv_dir = venv_dir
        self.root = root or PLUGIN_ROOT
        self.variant = variant
        self.on_finished = on_finished
        self.failed_step = None
        self.message = ""
        self.log = []

    def _emit(self, text):
        self.log.append(text)
        self.line.emit(text)

    def run(self):
        env = clean_environment(os.environ)
        env["PIP_NO_INPUT"] = "1"
        for i, step in enumerate(self.steps):
            if self.isCanceled():
                self.message = "Cancelled."
                return False
            self.setProgress(100.0 * i / len(self.steps))
            self._emit(f"== {step.label}: {' '.join(step.argv)}")
            try:
                proc = subprocess.Popen(step.argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, cwd=self.root)
            except OSError as exc:
                rc, text = None, str(exc)
            else:
                rc = self._follow(proc)
                text = f"exit code {rc}"
            if self.isCanceled():
                self.message = "Cancelled."
                return False
            if rc != 0:
                if step.optional:
                    self._emit(f"(optional step failed: {text}; continuing)")
                    continue
                self.failed_step = step
                self.message = f"{step.label} failed ({text})."
                return False
        write_stamp(self.venv_dir, self.root, self.variant)
        self.setProgress(100.0)
        self.message = "The backend environment is ready."
        return True

    def _follow(self, proc):
        import threading
        def pump():
            for raw in iter(proc.stdout.readline, b""):
                self._emit(raw.decode("utf-8", "replace").rstrip())
        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        while proc.poll() is None:
            if self.isCanceled():
                proc.kill()
                break
            time.sleep(0.1)
        proc.wait()
        reader.join(2)
        proc.stdout.close()
        return proc.returncode

    def finished(self, ok):
        if self.on_finished is not None:
            self.on_finished(self, ok)
