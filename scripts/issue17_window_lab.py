"""Issue 17 lab: how much of a class map changes with the network's window and halo.

    .venv/bin/python scripts/issue17_window_lab.py HSI MODEL [AUX ...] --windows 64 128 256 512 --halos 32 64 128

Classifies the scene through classify's own readers and window plan (engine.classify.window_batches,
window_logits) once per (window, halo), with the model's weights as they are (the halo overrides the
manifest's), and prints the share of pixels whose class differs from the map at window 512 with the
manifest's halo. A window larger than the scene is one window. Writes nothing.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backend.engine import classify, modalities  # noqa: E402
from backend.engine.package import load_model  # noqa: E402
from backend.manifest import read_manifest  # noqa: E402


def class_index_map(hsi, aux, model_dir, window, halo):
    specs = read_manifest(model_dir)["modalities"]
    with modalities.open_modalities(hsi, aux, specs, lambda message, level="info": None, None) as (ref, readers):
        _, net = load_model(model_dir, "cpu")
        out = np.zeros((ref.height, ref.width), np.int16)
        for batch in classify.window_batches(ref.height, ref.width, window, halo, 1):
            logits, _ = classify.window_logits(net, readers, batch, "cpu")
            index = logits.argmax(1).numpy()
            for k, tile in enumerate(batch):
                out[tile.core_slices] = index[k][tile.core_in_read]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("hsi")
    p.add_argument("model")
    p.add_argument("aux", nargs="*")
    p.add_argument("--windows", nargs="+", type=int, default=[64, 128, 256, 512, 1024])
    p.add_argument("--halos", nargs="+", type=int, default=[32, 64, 128])
    args = p.parse_args()
    shipped = int(read_manifest(args.model).get("halo", 0))
    reference = class_index_map(args.hsi, args.aux, args.model, 512, shipped)
    for halo in args.halos:
        for window in args.windows:
            changed = class_index_map(args.hsi, args.aux, args.model, window, halo) != reference
            print(json.dumps({"window": window, "halo": halo, "changed_pct": round(100 * float(changed.mean()), 3)}),
                  flush=True)


if __name__ == "__main__":
    main()
