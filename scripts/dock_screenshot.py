"""The README's pictures: the dock after a run on the demo scene, and the demo's preview.

Run with the QGIS Python after `make demo` (it reads demo_output/):
    QT_QPA_PLATFORM=offscreen LANDFUSE_BACKEND_PYTHON=.venv/bin/python .venv-qgis/bin/python scripts/dock_screenshot.py
It drives the real dock like a person: the demo scene's HSI and DSM, the default (generic) model,
the scene's reference labels, Classify; then saves docs/images/dock_after_run.png and copies
demo_output/preview.png to docs/images/demo_preview.png. Under Xvfb (QT_QPA_PLATFORM=xcb) the
widgets look the same; offscreen needs no X server.
"""

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo_output"
IMAGES = ROOT / "docs" / "images"


def main():
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
    app = QgsApplication([], True)
    app.initQgis()
    sys.path.insert(0, str(ROOT / "tests" / "plugin"))
    import conftest  # noqa: F401  (loads the repository as the plugin package `landfuse`)
    from landfuse.qgis_plugin import outputs
    from landfuse.qgis_plugin.dock import LandFuseDock
    scene = DEMO / "scene"
    if not (scene / "hsi.tif").is_file():
        sys.exit("run `make demo` first: demo_output/scene/hsi.tif is missing")
    layers = [QgsRasterLayer(str(scene / f), name, "gdal") for f, name in
              (("hsi.tif", "demo hsi"), ("dsm.tif", "demo dsm"), ("labels.tif", "reference labels"))]
    QgsProject.instance().addMapLayers(layers)
    folder = tempfile.mkdtemp(prefix="landfuse_screenshot_")
    outputs.remember_folder(folder)
    dock = LandFuseDock(None)
    try:
        dock.resize(400, 1000)
        dock.show()
        dock.hsi_combo.setLayer(layers[0])
        dock.aux_combo.setLayer(layers[1])
        dock.aux_add.click()
        dock.reference_combo.setLayer(layers[2])
        dock.device_combo.setCurrentText("cpu")
        finished = []
        dock.jobFinished.connect(finished.append)
        if dock.run() is None:
            sys.exit(dock.log_view.toPlainText())
        deadline = time.monotonic() + 300
        while not finished and time.monotonic() < deadline:
            QgsApplication.processEvents()
            time.sleep(0.02)
        if not finished or finished[0].error is not None:
            sys.exit("the run failed:\n" + dock.log_view.toPlainText()[-3000:])
        for _ in range(20):
            QgsApplication.processEvents()
        body = dock.widget().widget()
        body.resize(body.width(), body.sizeHint().height())
        for _ in range(20):
            QgsApplication.processEvents()
        IMAGES.mkdir(parents=True, exist_ok=True)
        body.grab().save(str(IMAGES / "dock_after_run.png"))
        shutil.copyfile(DEMO / "preview.png", IMAGES / "demo_preview.png")
        print(f"wrote {IMAGES / 'dock_after_run.png'} and {IMAGES / 'demo_preview.png'}")
    finally:
        dock.teardown()
        outputs.remember_folder("")
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
