#!/usr/bin/env bash
# Every figure of the generic model's card and of the README's results table for it, from one script
# (`make evaluate-generic`; about 13 min on 2 CPU cores). Outputs under $OUT (default generic_eval/).
#   1. zero-shot on held-out synthetic scenes / spectra / map parts / sensors, vs a library random forest
#   2. fine-tuning with 20 labels per class vs training from scratch (held-out sensor)
#   3. real rasters: Samson (ENVI, reference labels) zero-shot vs the library random forest;
#      the DFC2018 48-band tile (band centres given with --wavelengths) zero-shot, PNG beside its image;
#      the DFC2018 crop and Indian Pines MSI (no wavelengths): a clean refusal, and the from-scratch path
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-models/generic-landcover}
OUT=${OUT:-generic_eval}
DATA=${LANDFUSE_SHARED_DATA:-../shared/data}
REAL="$OUT/real"
mkdir -p "$REAL"
last_line() { tail -n 1 "$1"; }

$PY -m backend zeroshot --model "$MODEL" --out "$OUT/zeroshot" --scenes 6 --seed 0 > "$OUT/zeroshot.log"
last_line "$OUT/zeroshot.log"
$PY -m backend fewshot --model "$MODEL" --out "$OUT/fewshot" --sensor AisaFENIX --per-class 20 --pairs 1 --seed 0 \
  > "$OUT/fewshot.log"
last_line "$OUT/fewshot.log"

# Samson: 156 bands 401-899 nm, int16 with an undocumented scale, malformed CRS; labels 4 tree, 5 soil, 6 water
$PY -m backend classify --hsi "$DATA/samson/samson_1.img" --model "$MODEL" --out "$REAL/samson.tif" > "$REAL/samson.log"
$PY -m backend evaluate --prediction "$REAL/samson.tif" --reference "$DATA/samson/samson_labels.tif" \
  --out-json "$REAL/samson_accuracy.json" | tail -n 1
$PY -m backend library-rf --hsi "$DATA/samson/samson_1.img" --out "$REAL/samson_library_rf.tif" > "$REAL/samson_rf.log"
$PY -m backend evaluate --prediction "$REAL/samson_library_rf.tif" --reference "$DATA/samson/samson_labels.tif" \
  --out-json "$REAL/samson_library_rf_accuracy.json" | tail -n 1
$PY -m backend preview --hsi "$DATA/samson/samson_1.img" --classes "$REAL/samson.tif" --out "$REAL/samson.png" > /dev/null

# Samson with 20 labels per class (spatially disjoint blocks: labels from one half, test on the other):
# fine-tune the generic model vs train the same architecture from scratch vs zero-shot, same test pixels
$PY -m backend split-labels --reference "$DATA/samson/samson_labels.tif" --out-train "$REAL/samson_train20.tif" \
  --out-test "$REAL/samson_test.tif" --per-class 20 --seed 0 | tail -n 1
$PY -m backend finetune --model "$MODEL" --hsi "$DATA/samson/samson_1.img" --labels "$REAL/samson_train20.tif" \
  --out "$REAL/samson_finetuned" --only-labelled-classes --seed 0 > "$REAL/samson_finetune.log"
# the same labels keeping all six base classes (what the plugin's fine-tune does): tree, soil and water
# are labelled, the others are remembered from the base unless it confuses them with those (training.memory)
$PY -m backend finetune --model "$MODEL" --hsi "$DATA/samson/samson_1.img" --labels "$REAL/samson_train20.tif" \
  --out "$REAL/samson_finetuned_all_classes" --seed 0 > "$REAL/samson_finetune_all_classes.log"
$PY -m backend train --arch m3amba --hsi "$DATA/samson/samson_1.img" --labels "$REAL/samson_train20.tif" \
  --out "$REAL/samson_scratch" --seed 0 > "$REAL/samson_scratch.log"
for run in samson_finetuned samson_finetuned_all_classes samson_scratch; do
  $PY -m backend classify --hsi "$DATA/samson/samson_1.img" --model "$REAL/$run" --out "$REAL/$run.tif" > /dev/null
  $PY -m backend evaluate --prediction "$REAL/$run.tif" --reference "$REAL/samson_test.tif" \
    --out-json "$REAL/${run}_accuracy.json" | tail -n 1
done
$PY -m backend evaluate --prediction "$REAL/samson.tif" --reference "$REAL/samson_test.tif" \
  --out-json "$REAL/samson_zeroshot_test_accuracy.json" | tail -n 1

# DFC2018 CASI tile: no wavelength metadata in the file; nominal band centres from resources/
$PY -m backend classify --hsi "$DATA/dfc2018_hsi_tile/testHSI.tif" --model "$MODEL" --out "$REAL/dfc2018_tile.tif" \
  --wavelengths resources/wavelengths/casi1500_dfc2018_48.txt | tail -n 1
$PY -m backend preview --hsi "$DATA/dfc2018_hsi_tile/testHSI.tif" --classes "$REAL/dfc2018_tile.tif" \
  --out "$REAL/dfc2018_tile.png" > /dev/null

# PCA / simulated-MSI rasters carry no wavelengths: the generic model must refuse cleanly (exit 1,
# wavelengths_unknown, nothing written) while a model trained from scratch on them still works.
for ds in dfc2018_crop indian_pines_msi; do
  $PY -m backend benchmark --dataset "$ds" --data-dir "$DATA/$ds" --arch random_forest --seeds 1 \
    --out "$OUT/$ds" > "$OUT/$ds.benchmark.log"
  hsi=$(find "$OUT/$ds/data" -name hsi.tif | sort | head -n 1)
  if $PY -m backend classify --hsi "$hsi" --model "$MODEL" --out "$REAL/$ds.tif" > "$REAL/$ds.log"; then
    echo "the generic model should have refused $ds (no wavelengths)" >&2; exit 1
  fi
  grep -q '"code": "wavelengths_unknown"' "$REAL/$ds.log"
  test ! -e "$REAL/$ds.tif"
  echo "$ds: refused cleanly (wavelengths_unknown); from-scratch results in $OUT/$ds"
done
$PY scripts/generic_card.py --model "$MODEL" --eval "$OUT" > /dev/null
echo "card updated: $MODEL/README.md"
