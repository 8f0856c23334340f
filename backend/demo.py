"""`demo`: the main job on a generated scene — make it, classify it with a bundled model, report.

The demo scene uses a seed that no bundled model was trained on (see each model card), so the
accuracy printed is on an unseen scene with the same sensor, not on training data.
"""

import json
import os

import rasterio

from backend.classify import classify
from backend.evaluate import evaluate
from backend.preview import render_preview
from backend.protocol import ErrorCode, LandFuseError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_SEED = 2026
DEMO_SIZE = 256
DEMO_MODEL = os.path.join(REPO, "models", "demo-m3amba")


def run_demo(out_dir, events, model_dir=None, device="auto"):
    from backend.synth.scene import generate_scene
    model_dir = model_dir or DEMO_MODEL
    if not os.path.isfile(os.path.join(model_dir, "model.json")):
        raise LandFuseError(ErrorCode.MODEL_NOT_FOUND, f"The demo model is missing: {model_dir}",
                            "Restore the models/ folder from the repository.")
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    events.log(f"Generating the demo scene (seed {DEMO_SEED}) in {out_dir}/scene")
    scene = generate_scene(os.path.join(out_dir, "scene"), seed=DEMO_SEED, height=DEMO_SIZE, width=DEMO_SIZE)
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
