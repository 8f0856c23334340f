"""Rewrite the generic model's card (README.md in its folder) with the figures scripts/evaluate_generic.sh
produced. Only the card changes: model.json and the weights (and their hash) stay as pretraining left them.

usage: python scripts/generic_card.py --model models/generic-landcover --eval generic_eval
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from backend.evaluation.calibration import card_section, with_card_section  # noqa: E402
from backend.training.pretrain import model_card  # noqa: E402


def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _row(name, m):
    return f"| {name} | {m['oa']:.3f} | {m['aa']:.3f} | {m['kappa']:.3f} | {m['n_pixels']} |"


def evaluation_markdown(eval_dir):
    z = _load(os.path.join(eval_dir, "zeroshot", "zeroshot.json"))
    f = _load(os.path.join(eval_dir, "fewshot", "fewshot.json"))
    lines = ["## Zero-shot on held-out synthetic scenes",
             "Held-out spectra, held-out parts of the real maps or new generated towns, sensors never simulated "
             "in pretraining; uint16 GeoTIFFs through `classify`. Every labelled pixel of every scene counted "
             "once. Command: `python -m backend zeroshot --model models/generic-landcover --out generic_eval/zeroshot "
             "--scenes 6 --seed 0`.", "",
             "| scenes | " + " | ".join(s["scene"] for s in z["scenes"]) + " |",
             "|---|" + "---|" * len(z["scenes"]),
             "| bands, pixel | " + " | ".join(f"{s['bands']}, {s['pixel_size_m']:g} m {s['layout']}" for s in z["scenes"]) + " |",
             "", "| method | OA | AA | κ | pixels |", "|---|---|---|---|---|"]
    labels = {"generic_hsi_dsm": "generic model, HSI + DSM", "generic_hsi_only": "generic model, HSI only",
              "random_forest": "RandomForest(300) on the raw library spectra"}
    lines += [_row(labels[k], m) for k, m in z["metrics"].items()]
    lines += ["", f"## Fine-tuning with {f['per_class']} labelled pixels per class ({f['sensor']}, held out)",
              "Labels on one held-out scene, accuracy on another of the same sensor; the same architecture, "
              "labels and seed for both. Command: `python -m backend fewshot --model models/generic-landcover "
              "--out generic_eval/fewshot --sensor AisaFENIX --per-class 20 --pairs 1 --seed 0`.", "",
              "| method | OA | AA | κ | pixels |", "|---|---|---|---|---|"]
    names = {"finetuned_generic": "fine-tuned from the generic model", "from_scratch": "trained from scratch",
             "zero_shot_generic": "generic model zero-shot (no labels)"}
    lines += [_row(names[k], m) for k, m in f["metrics"].items()]
    samson = os.path.join(eval_dir, "real", "samson_accuracy.json")
    if os.path.isfile(samson):
        s, r = _load(samson), _load(os.path.join(eval_dir, "real", "samson_library_rf_accuracy.json"))
        lines += ["", "## Real scene: Samson (zero-shot)",
                  "95×95 px, 156 bands 401–899 nm, reference = dominant class where its fraction ≥ 0.5 (tree, soil, "
                  "water). Predicting any other class counts as an error.", "",
                  "| method | OA | AA | κ | pixels |", "|---|---|---|---|---|",
                  _row("generic model (HSI only)", s), _row("RandomForest(300) on the raw library spectra", r)]
        few = os.path.join(eval_dir, "real", "samson_finetuned_accuracy.json")
        if os.path.isfile(few):
            lines += ["", "With 20 labelled pixels per class drawn from one half of the scene's blocks (`split-labels`), "
                      "tested on the other half (whole 16 px blocks, 2 px guard band):", "",
                      "| method | OA | AA | κ | pixels |", "|---|---|---|---|---|",
                      _row("fine-tuned from the generic model (`--only-labelled-classes`)", _load(few)),
                      *([_row("fine-tuned, keeping all six classes (the plugin's fine-tune)", _load(kept))]
                        if os.path.isfile(kept := os.path.join(eval_dir, "real",
                                                               "samson_finetuned_all_classes_accuracy.json")) else []),
                      _row("m3amba trained from scratch", _load(os.path.join(eval_dir, "real", "samson_scratch_accuracy.json"))),
                      _row("generic model zero-shot (same test pixels)",
                           _load(os.path.join(eval_dir, "real", "samson_zeroshot_test_accuracy.json")))]
    return "\n".join(lines) + "\n"


PREVIEWS = (("samson.png", "Samson (real, 156 bands, no DSM)"),
            ("dfc2018_tile.png", "DFC2018 CASI tile (real, 48 bands, band centres from --wavelengths, no DSM)"))


def copy_previews(eval_dir, model_dir):
    """Zero-shot maps of the real rasters, image beside map, into the model folder for the card."""
    import shutil
    lines = []
    for name, caption in PREVIEWS:
        src = os.path.join(eval_dir, "real", name)
        if os.path.isfile(src):
            shutil.copyfile(src, os.path.join(model_dir, "zero_shot_" + name))
            lines.append(f"![{caption}](zero_shot_{name})  \n*{caption}, zero-shot*")
    return ("\n## Zero-shot maps of real rasters\n" + "\n\n".join(lines) + "\n") if lines else ""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--eval", required=True)
    args = parser.parse_args()
    manifest = _load(os.path.join(args.model, "model.json"))
    card = model_card(manifest, evaluation_markdown(args.eval) + copy_previews(args.eval, args.model))
    if manifest.get("calibration"):       # written by `calibrate` into model.json: its section stays
        card = with_card_section(card, card_section(manifest["calibration"]))
    tmp = os.path.join(args.model, ".README.md.part")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(card)
    os.replace(tmp, os.path.join(args.model, "README.md"))
    print(card)


if __name__ == "__main__":
    main()
