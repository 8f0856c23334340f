#!/usr/bin/env bash
# Install the LandFuse plugin zip the way a user would and drive it with qgis_process:
#   1. unzip it into a fresh, throwaway QGIS profile (QGIS_CUSTOM_CONFIG_PATH=<dir> makes qgis_process
#      read plugins from <dir>/profiles/default/python/plugins/),
#   2. qgis_process plugins enable landfuse; qgis_process list (the LandFuse section),
#   3. make the demo scene and qgis_process run landfuse:classify_raster with the bundled demo-tiny model.
#
# Usage: scripts/qgis_process_demo.sh [plugin zip] [work folder]
#   zip:    default dist/landfuse-<version>.zip (built with scripts/package_plugin.py when missing)
#   folder: default a new folder under /tmp; the profile, scene and outputs are left there
# The unzipped plugin has no .venv: the backend Python is LANDFUSE_BACKEND_PYTHON (default: this
# checkout's .venv/bin/python, made by `make setup-backend`). qgis_process is QGIS_PROCESS if set, else
# qgis_process.bin (Debian's /usr/bin/qgis_process wrapper passes an option QGIS 3.22 rejects).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERSION=$(sed -n 's/^version=//p' "$REPO/metadata.txt")
ZIP=${1:-$REPO/dist/landfuse-$VERSION.zip}
WORK=${2:-$(mktemp -d /tmp/landfuse-qgis-process.XXXXXX)}
BACKEND_PY=${LANDFUSE_BACKEND_PYTHON:-$REPO/.venv/bin/python}
QP=${QGIS_PROCESS:-$(command -v qgis_process.bin || command -v qgis_process || true)}

if [ -z "$QP" ]; then echo "qgis_process not found: install QGIS (make setup-qgis)" >&2; exit 1; fi
if [ ! -x "$BACKEND_PY" ]; then echo "no backend Python at $BACKEND_PY: run make setup-backend or set LANDFUSE_BACKEND_PYTHON" >&2; exit 1; fi
if [ ! -f "$ZIP" ]; then python3 "$REPO/scripts/package_plugin.py"; fi

export QT_QPA_PLATFORM=offscreen
export QGIS_CUSTOM_CONFIG_PATH=$WORK/qgis-config
export LANDFUSE_BACKEND_PYTHON=$BACKEND_PY
export XDG_RUNTIME_DIR=$WORK/xdg-runtime
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
PLUGINS=$QGIS_CUSTOM_CONFIG_PATH/profiles/default/python/plugins
PLUGIN=$PLUGINS/landfuse
SCENE=$WORK/scene
OUT=$WORK/out

show() { printf '\n$ %s\n' "$*"; }

echo "zip:      $ZIP"
echo "profile:  $QGIS_CUSTOM_CONFIG_PATH/profiles/default"
echo "backend:  LANDFUSE_BACKEND_PYTHON=$BACKEND_PY"
echo "QGIS:     $("$QP" --version 2>/dev/null | head -n 1)"

rm -rf "$PLUGIN"
mkdir -p "$PLUGINS" "$OUT"
show "unzip $(basename "$ZIP") into $PLUGINS/"
python3 -m zipfile -e "$ZIP" "$PLUGINS/"
ls "$PLUGIN"
if [ ! -f "$PLUGIN/models/demo-tiny/model.json" ]; then echo "the zip holds no models/demo-tiny" >&2; exit 1; fi

show "qgis_process plugins enable landfuse"
"$QP" plugins enable landfuse 2>/dev/null

show "qgis_process list   (LandFuse section)"
"$QP" list 2>/dev/null | sed -n '/^LandFuse$/,/^$/p'

show "python -m backend synth --out $SCENE --seed 2026 --size 96"
(cd "$PLUGIN" && "$BACKEND_PY" -m backend synth --out "$SCENE" --seed 2026 --size 96 >/dev/null)
ls "$SCENE"

ARGS=(run landfuse:classify_raster "--INPUT_HSI=$SCENE/hsi.tif" "--AUX_LAYERS=$SCENE/dsm.tif"
      "--MODEL_FOLDER=$PLUGIN/models/demo-tiny" --DEVICE=1
      "--OUTPUT_CLASSES=$OUT/landcover.tif" "--OUTPUT_CONFIDENCE=$OUT/confidence.tif")
show "qgis_process ${ARGS[*]}"
"$QP" "${ARGS[@]}" 2>/dev/null

show "pixels per class in $OUT/landcover.tif"
"$BACKEND_PY" - "$OUT/landcover.tif" "$PLUGIN/models/demo-tiny/model.json" <<'EOF'
import json, sys
import numpy as np
import rasterio
with rasterio.open(sys.argv[1]) as ds:
    data = ds.read(1)
names = {c["value"]: c["name"] for c in json.load(open(sys.argv[2], encoding="utf-8"))["classes"]}
values, counts = np.unique(data, return_counts=True)
for v, n in zip(values.tolist(), counts.tolist()):
    print(f"  {v}  {names.get(v, 'nodata' if v == 0 else '?'):<16} {n}")
EOF
echo
echo "outputs in $OUT"
