"""Plugin tests in real QGIS (pytest-qgis). The repository root is loaded as the package
`landfuse`, exactly as QGIS loads the plugin folder; nothing here imports torch."""

import importlib.util
import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"


def _load_plugin_package():
    if "landfuse" in sys.modules:
        return sys.modules["landfuse"]
    spec = importlib.util.spec_from_file_location("landfuse", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["landfuse"] = module
    spec.loader.exec_module(module)
    return module


_load_plugin_package()


@pytest.fixture(scope="module")
def registry(qgis_processing):
    """QGIS's Processing registry with the LandFuse provider in it: added here when a module's tests
    find none, and removed after them (the plugin-load tests register and remove their own)."""
    from landfuse.qgis_plugin.processing.provider import LandFuseProvider
    from qgis.core import QgsApplication
    registry = QgsApplication.processingRegistry()
    added = None
    if registry.providerById("landfuse") is None:
        added = LandFuseProvider()
        registry.addProvider(added)
    yield registry
    if added is not None:
        registry.removeProvider(added)


@pytest.fixture(scope="module")
def processing_mod(registry):
    """QGIS's `processing` module (processing.run), with the LandFuse provider registered."""
    import processing
    return processing


@pytest.fixture(scope="session")
def plugin_root():
    return ROOT


@pytest.fixture(scope="session")
def backend_python():
    """The real backend interpreter (LANDFUSE_BACKEND_PYTHON, else the repo's .venv)."""
    path = os.environ.get("LANDFUSE_BACKEND_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip("no backend Python: set LANDFUSE_BACKEND_PYTHON or run `make setup-backend`")
    return path


FAKE_MAIN = r'''
"""A scripted stand-in for the backend: emits the JSON lines a scenario asks for."""
import json, os, sys, time

def emit(kind, **fields):
    fields.update(v=1, type=kind)
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()

command, args = sys.argv[1], sys.argv[2:]
scenario = os.path.join(os.getcwd(), "scenario.json")
steps = json.load(open(scenario)) if os.path.exists(scenario) else [["result", {}]]
for kind, payload in steps:
    if kind == "sleep":
        time.sleep(payload)
    elif kind == "stderr":
        sys.stderr.write(payload + "\n"); sys.stderr.flush()
    elif kind == "stdout":
        sys.stdout.write(payload + "\n"); sys.stdout.flush()
    elif kind == "exit":
        sys.exit(payload)
    elif kind == "ignore_term":
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif kind == "touch":
        open(payload, "w").close()
    elif kind == "env":
        emit("result", command=command, outputs={}, metrics={}, timings={},
             env=dict(os.environ), cwd=os.getcwd(), argv=sys.argv, path=sys.path, flags=list(sys.flags))
    else:
        if kind == "result":
            payload = dict({"command": command, "outputs": {}, "metrics": {}, "timings": {}, "args": args}, **payload)
        emit(kind, **payload)
'''


class FakeBackend:
    """A plugin root whose `backend` package is scripted; run it with the QGIS-side python."""

    def __init__(self, root):
        self.root = str(root)
        pkg = Path(root) / "backend"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "__main__.py").write_text(textwrap.dedent(FAKE_MAIN))
        self.python = sys.executable

    def script(self, *steps):
        (Path(self.root) / "scenario.json").write_text(json.dumps([list(s) for s in steps]))

    def call(self, command="classify", args=()):
        from landfuse.qgis_plugin.runner import BackendCall
        return BackendCall(self.python, command, list(args), self.root)


@pytest.fixture
def fake_backend(tmp_path):
    return FakeBackend(tmp_path / "fakeroot")


def make_executable(path, text):
    Path(path).write_text(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return str(path)


def wait_for(predicate, timeout_s=30.0):
    """Spin the Qt event loop until predicate() is true (tasks finish on the main thread)."""
    import time

    from qgis.core import QgsApplication
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        QgsApplication.processEvents()
        time.sleep(0.01)
