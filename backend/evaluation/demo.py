"""`demo`: the main job on a generated scene — make it, classify it with a bundled model, report.

With the default, generic model the scene is a held-out one (backend.synth.library_scene, split
"held_out"): spectra, map parts and a sensor (AisaFENIX) that pretraining never saw, so the accuracy
printed is zero-shot. A scene-specific model (--model models/demo-m3amba, …) gets the parametric scene
of its own sensor with a seed it was not trained on.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Dict, Optional, Union

import rasterio

from backend.engine.classify import classify
from backend.evaluation.evaluate import evaluate
from backend.io.preview import render_preview
from backend.protocol import ErrorCode, LandFuseError

if TYPE_CHECKING:
    from backend.protocol import EventWriter, NestedEvents

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_SEED = 2026
DEMO_SIZE = 256
DEMO_MODEL = os.path.join(REPO, "models", "generic-landcover")
DEMO_SENSOR = "AisaFENIX"


def _demo_scene(folder, generic):
    if generic:
        from backend.synth.library_scene import write_library_scene
        return write_library_scene(folder, DEMO_SEED, "held_out", DEMO_SENSOR, size=DEMO_SIZE)[0]
    from backend.synth.scene import generate_scene
    return generate_scene(folder, seed=DEMO_SEED, height=DEMO_SIZE, width=DEMO_SIZE)


def _real_ingredients():
    from backend.synth.library import shared_data_dir
    folder = shared_data_dir()
    return folder is not None and os.path.isdir(folder)


def run_demo(out_dir: str, events: Union[EventWriter, NestedEvents], model_dir: Optional[str] = None,
             device: Optional[str] = "auto") -> Dict[str, Any]:
    from backend.manifest import read_manifest
    model_dir = model_dir or DEMO_MODEL
    if not os.path.isfile(os.path.join(model_dir, "model.json")):
        raise LandFuseError(ErrorCode.MODEL_NOT_FOUND, f"The demo model is missing: {model_dir}",
                            "Restore the models/ folder from the repository.")
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    generic = bool(read_manifest(model_dir).get("generic"))
    if generic and not _real_ingredients():
        # the held-out scene is made of the real spectra and maps in ../shared/data; without them the
        # parametric scene (self-contained) still shows the whole job, with a model that never saw it
        events.log("The shared data folder (../shared/data or LANDFUSE_SHARED_DATA) is absent: the demo uses "
                   "the self-contained parametric scene instead of a held-out real-ingredient one.", "warning")
        generic = False
    events.log(f"Generating the demo scene (seed {DEMO_SEED}" + (f", held-out sensor {DEMO_SENSOR}" if generic else "")
               + f") in {out_dir}/scene")
    scene = _demo_scene(os.path.join(out_dir, "scene"), generic)
    aux = [scene["dsm"]]
    out = os.path.join(out_dir, "landcover.tif")
    confidence = os.path.join(out_dir, "confidence.tif")
    result = classify(scene["hsi"], aux, model_dir, out, events, confidence=confidence, device=device)
    report_path = os.path.join(out_dir, "accuracy.json")
    report = evaluate(out, scene["labels"], out_json=report_path, events=events)["metrics"]
    preview = os.path.join(out_dir, "preview.png")
    with rasterio.open(scene["hsi"]) as hsi, rasterio.open(out) as classes:
        render_preview(hsi, classes, result["class_table"], preview)
    outputs = dict(result["outputs"], report=report_path, preview=preview, scene_hsi=scene["hsi"],
                   scene_dsm=scene["dsm"], reference=scene["labels"])
    summary = {k: report[k] for k in ("oa", "aa", "kappa", "mean_f1", "n_pixels")}
    events.log("Demo outputs:\n" + "\n".join(f"  {k}: {v}" for k, v in outputs.items()))
    with open(os.path.join(out_dir, "demo_summary.json"), "w", encoding="utf-8") as f:
        json.dump({"model": os.path.basename(model_dir), "outputs": outputs, "accuracy": summary}, f, indent=2)
    return {"outputs": outputs, "metrics": summary, "timings": result["timings"]}
