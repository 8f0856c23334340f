"""The plugin loads and unloads cleanly in real QGIS, registers its provider, never loads torch."""

import subprocess
import sys

from qgis.core import QgsApplication

EXPECTED_ALGORITHMS = {"landfuse:classify_raster", "landfuse:classify_batch", "landfuse:train_model",
                       "landfuse:finetune_model", "landfuse:assess_accuracy", "landfuse:backend_diagnostics"}


def test_import_does_not_load_torch(plugin_root):
    """In a fresh interpreter: import every plugin module; torch/rasterio must stay unloaded."""
    code = f"""
import importlib, importlib.util, pkgutil, sys
spec = importlib.util.spec_from_file_location("landfuse", {str(plugin_root / '__init__.py')!r},
                                              submodule_search_locations=[{str(plugin_root)!r}])
mod = importlib.util.module_from_spec(spec); sys.modules["landfuse"] = mod; spec.loader.exec_module(mod)
import landfuse.qgis_plugin as qp
names = ["landfuse.qgis_plugin." + m.name for m in pkgutil.walk_packages(qp.__path__, "") ]
for name in names:
    importlib.import_module(name)
mod.classFactory
heavy = [m for m in ("torch", "rasterio", "safetensors", "scipy") if m in sys.modules]
print("HEAVY", heavy, len(names))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(__import__("os").environ, QT_QPA_PLATFORM="offscreen"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "HEAVY [] " in out.stdout, out.stdout
    assert "torch" not in sys.modules


def test_load_and_unload(qgis_iface, qgis_processing):
    import landfuse
    registry = QgsApplication.processingRegistry()
    plugin = landfuse.classFactory(qgis_iface)
    plugin.initGui()
    try:
        provider = registry.providerById("landfuse")
        assert provider is not None
        ids = {alg.id() for alg in provider.algorithms()}
        assert ids == EXPECTED_ALGORITHMS
        for alg_id in EXPECTED_ALGORITHMS:
            assert registry.algorithmById(alg_id) is not None
        assert len(plugin.actions) == 4
        assert plugin.toolbar is not None and plugin.toolbar.actions()
        plugin.toggle_dock(True)
        assert plugin.dock is not None and not plugin.dock.isHidden()
        dock = plugin.dock
    finally:
        plugin.unload()
    assert registry.providerById("landfuse") is None
    assert plugin.actions == [] and plugin.toolbar is None and plugin.dock is None
    from qgis.PyQt.QtCore import QEvent
    QgsApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    from qgis.PyQt import sip
    assert sip.isdeleted(dock)
    assert "torch" not in sys.modules


def test_reload_twice(qgis_iface, qgis_processing):
    """Plugin Reloader style: load, unload, load again, unload."""
    import landfuse
    registry = QgsApplication.processingRegistry()
    for _ in range(2):
        plugin = landfuse.classFactory(qgis_iface)
        plugin.initGui()
        assert registry.providerById("landfuse") is not None
        plugin.unload()
        assert registry.providerById("landfuse") is None
