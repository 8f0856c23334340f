"""`make fuzz`: damaged real files through the real commands, checking the protocol contract.

Each case takes a real file (../shared/data when it is there, else a generated scene), damages a copy
of it (truncation, random bytes in the header or anywhere, wrong TIFF tags, junk in an ENVI header or
in model.json), runs one `python -m backend` command on it in a child process and checks that
- stdout holds exactly one `error` or `result` event, and an error carries a known code other than
  `internal`;
- an error leaves no output and no `.part-PID` file behind; a result leaves its outputs;
- every input file is byte-identical afterwards.

Bounded and seeded: `--cases N` (default 24), `--budget-s S` (default 420; no case starts after it),
`--seed K`; `--keep DIR` keeps the cases that broke the contract. Exit status 1 when one did.
Not part of `make test` (a few minutes of child processes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
SHARED = os.environ.get("LANDFUSE_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))
GENERIC = os.path.join(REPO, "models", "generic-landcover")
CASE_TIMEOUT_S = 120


# ---- seeds: the files to damage ------------------------------------------------------------------------

def _generated_seeds(folder):
    """A small HSI + DSM + labels + model package made here, for when ../shared/data is absent."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    from tests.backend.conftest import make_package
    rng = np.random.default_rng(0)
    profile = dict(driver="GTiff", width=48, height=40, crs="EPSG:32633", transform=from_origin(389000, 5819000, 2, 2))
    hsi = os.path.join(folder, "gen_hsi.tif")
    with rasterio.open(hsi, "w", count=6, dtype="float32", nodata=-9999.0, **profile) as dst:
        dst.write(rng.normal(0.2, 0.05, (6, 40, 48)).astype("float32"))
        for b in range(1, 7):
            dst.update_tags(b, wavelength=str(450 + 90 * b), wavelength_units="nm")
    dsm = os.path.join(folder, "gen_dsm.tif")
    with rasterio.open(dsm, "w", count=1, dtype="float32", **profile) as dst:
        dst.write(rng.normal(300, 2, (1, 40, 48)).astype("float32"))
    labels = os.path.join(folder, "gen_labels.tif")
    with rasterio.open(labels, "w", count=1, dtype="uint8", nodata=0, **profile) as dst:
        dst.write(rng.integers(0, 4, (1, 40, 48)).astype("uint8"))
    model = make_package(os.path.join(folder, "gen_model"), [6, 1])
    return {"hsi": [hsi], "aux": [dsm], "labels": [labels], "model": [model], "scene_model": model}


def seeds(folder):
    found = _generated_seeds(folder)
    real = {
        "hsi": ["dfc2018_hsi_tile/testHSI.tif", "samson/samson_1.img"],
        "labels": ["enmap_berlin/raster/landcover_map_l3.tif", "samson/samson_labels.tif"],
        "vector": ["enmap_berlin/landcover_berlin_point.gpkg"],
    }
    for kind, names in real.items():
        for name in names:
            src = os.path.join(SHARED, name)
            if os.path.isfile(src):
                found.setdefault(kind, []).append(src)
    if os.path.isfile(os.path.join(GENERIC, "model.json")):
        found["model"].append(GENERIC)
    return found


def _copy_input(src, folder):
    """Copy a seed (and its sidecars, or a whole model folder) into the case folder; returns the copy."""
    if os.path.isdir(src):
        dst = os.path.join(folder, os.path.basename(src))
        shutil.copytree(src, dst)
        return dst
    dst = os.path.join(folder, os.path.basename(src))
    shutil.copyfile(src, dst)
    stem = os.path.splitext(src)[0]
    for side in (src + ".hdr", stem + ".hdr", src + ".aux.xml"):
        if os.path.isfile(side):
            target = os.path.join(folder, os.path.basename(side))
            if not os.path.exists(target):
                shutil.copyfile(side, target)
    return dst


# ---- damage ------------------------------------------------------------------------------------------------

def _truncate(path, rng):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(rng.randrange(0, max(1, size)))
    return "truncated"


def _header_bytes(path, rng):
    with open(path, "r+b") as f:
        head = bytearray(f.read(4096))
        if not head:
            return "empty"
        for _ in range(rng.randint(1, 24)):
            head[rng.randrange(len(head))] = rng.randrange(256)
        f.seek(0)
        f.write(head)
    return "random bytes in the header"


def _anywhere_bytes(path, rng):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        for _ in range(rng.randint(1, 64)):
            f.seek(rng.randrange(max(1, size)))
            f.write(bytes([rng.randrange(256)]))
    return "random bytes anywhere"


def _tiff_tags(path, rng):
    """Overwrite the type or count of a few IFD entries of the first TIFF directory."""
    import struct
    with open(path, "r+b") as f:
        head = f.read(8)
        if head[:2] not in (b"II", b"MM") or len(head) < 8:
            return _header_bytes(path, rng)
        end = "<" if head[:2] == b"II" else ">"
        if struct.unpack(end + "H", head[2:4])[0] != 42:
            return _header_bytes(path, rng)
        ifd = struct.unpack(end + "I", head[4:8])[0]
        f.seek(ifd)
        raw = f.read(2)
        if len(raw) < 2:
            return _header_bytes(path, rng)
        n = struct.unpack(end + "H", raw)[0]
        for _ in range(rng.randint(1, 4)):
            entry = ifd + 2 + 12 * rng.randrange(max(1, n))
            f.seek(entry + rng.choice((2, 4)))
            f.write(struct.pack(end + "H", rng.choice((0, 1, 7, 13, 999, 65535))))
    return "wrong TIFF tags"


ENVI_JUNK = ["bands = 9999", "data type = 99", "byte order = 7", "interleave = zzz", "wavelength = {a, b, 1e999}",
             "bbl = {1, junk, 0, x}", "samples = -3", "header offset = 99999999999", "wavelength units = furlongs",
             "reflectance scale factor = nan", "data gain values = {0, 0, 0}"]


def _envi_header(path, rng):
    header = path + ".hdr" if os.path.isfile(path + ".hdr") else os.path.splitext(path)[0] + ".hdr"
    if not os.path.isfile(header):
        return _header_bytes(path, rng)
    with open(header, encoding="utf-8", errors="replace") as f:
        text = f.read()
    for line in rng.sample(ENVI_JUNK, rng.randint(1, 3)):
        key = line.split("=")[0].strip()
        text = re.sub(rf"(?im)^{re.escape(key)}\s*=.*$", "", text) + "\n" + line + "\n"
    with open(header, "w", encoding="utf-8") as f:
        f.write(text)
    return "junk in the ENVI header"


def _model_json(folder, rng):
    path = os.path.join(folder, "model.json")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    choice = rng.randrange(6)
    if choice == 0:
        manifest["architecture"]["params"]["dim"] = rng.choice((0, -5, 2000, 10 ** 7, 1.5))
        what = "architecture dim"
    elif choice == 1:
        manifest["modalities"][0]["mean"][0] = rng.choice((float("nan"), float("inf"), "x"))
        what = "a NaN / Inf / text mean"
    elif choice == 2:
        manifest["modalities"][0]["bands"] = rng.choice((0, 10 ** 6, -1))
        what = "band count"
    elif choice == 3:
        del manifest[rng.choice(("classes", "modalities", "weights", "architecture"))]
        what = "a missing section"
    elif choice == 4:
        manifest["classes"] = [{"value": v, "name": f"c{v}", "color": "#000000"} for v in range(1, 300)]
        what = "299 classes"
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write("[" * 50_000 + "]" * 50_000)
        return "a 50k-deep model.json"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f)
    return f"model.json: {what}"


def damage(path, rng):
    if os.path.isdir(path):
        if rng.random() < 0.7:
            return _model_json(path, rng)
        weights = os.path.join(path, "weights.safetensors")
        return "weights: " + rng.choice((_truncate, _header_bytes, _anywhere_bytes))(weights, rng)
    mutations = [_truncate, _header_bytes, _anywhere_bytes]
    if path.lower().endswith((".tif", ".tiff")):
        mutations.append(_tiff_tags)
    if os.path.isfile(os.path.splitext(path)[0] + ".hdr") or os.path.isfile(path + ".hdr"):
        mutations += [_envi_header, _envi_header]
    return rng.choice(mutations)(path, rng)


# ---- cases -------------------------------------------------------------------------------------------------

def _case(rng, found, folder):
    """(argv, the damaged input, every input, the outputs the command would write, what was damaged)."""
    kind = rng.choice(["classify_hsi", "classify_hsi", "classify_aux", "classify_model", "info", "evaluate",
                       "evaluate_vector" if found.get("vector") else "evaluate", "train_labels"])
    out = os.path.join(folder, "out")
    os.mkdir(out)
    if kind in ("classify_hsi", "classify_model") and rng.random() < 0.5 and GENERIC in found["model"]:
        model = GENERIC
        hsi = rng.choice(found["hsi"])
        aux = []
    else:
        model, hsi, aux = found["scene_model"], found["hsi"][0], [found["aux"][0]]
    if kind == "classify_hsi":
        target = hsi
    elif kind == "classify_aux":
        target = aux[0] if aux else found["aux"][0]
        model, hsi, aux = found["scene_model"], found["hsi"][0], [target]
    elif kind in ("classify_model", "info"):
        target = rng.choice(found["model"])
    elif kind == "evaluate_vector":
        target = found["vector"][0]
    elif kind == "train_labels":
        target = found["labels"][0]
    else:
        target = rng.choice(found["labels"])
    damaged = _copy_input(target, folder)
    what = damage(damaged, rng)
    copies = {target: damaged}

    def c(path):
        if path not in copies:
            copies[path] = _copy_input(path, folder)
        return copies[path]

    if kind.startswith("classify"):
        outputs = [os.path.join(out, "map.tif"), os.path.join(out, "map.qml"), os.path.join(out, "conf.tif")]
        argv = ["classify", "--hsi", c(hsi), "--model", c(model), "--out", outputs[0], "--confidence", outputs[2]]
        for a in aux:
            argv += ["--aux", c(a)]
    elif kind == "info":
        outputs, argv = [], ["info", "--model", damaged]
    elif kind == "train_labels":
        outputs = [os.path.join(out, "model")]
        argv = ["train", "--hsi", c(found["hsi"][0]), "--aux", c(found["aux"][0]), "--labels", damaged,
                "--out", outputs[0], "--arch", "tiny", "--epochs", "1", "--device", "cpu"]
    else:
        reference = c(rng.choice(found["labels"])) if kind == "evaluate" else damaged
        prediction = damaged if kind == "evaluate" else c(found["labels"][0])
        outputs = [os.path.join(out, "r.json"), os.path.join(out, "r.html")]
        argv = ["evaluate", "--prediction", prediction, "--reference", reference, "--out-json", outputs[0],
                "--out-html", outputs[1]]
    return argv, sorted(set(copies.values())), outputs, f"{kind}: {os.path.basename(target)}: {what}"


def _digest_tree(paths):
    out = {}
    for p in paths:
        if os.path.isdir(p):
            out.update(_digest_tree([os.path.join(p, n) for n in sorted(os.listdir(p))]))
        elif os.path.isfile(p):
            with open(p, "rb") as f:
                out[p] = hashlib.sha256(f.read()).hexdigest()
    return out


def check_case(argv, inputs, outputs, env=None):
    """Run one case; returns the list of contract violations (empty: kept)."""
    from backend.protocol import ErrorCode, parse_event
    before = _digest_tree(inputs)
    try:
        proc = subprocess.run([sys.executable, "-m", "backend", *argv], cwd=REPO, capture_output=True, text=True,
                              timeout=CASE_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        return [f"no answer within {CASE_TIMEOUT_S} s"]
    events = [e for e in (parse_event(line) for line in proc.stdout.splitlines()) if e]
    final = [e for e in events if e["type"] in ("error", "result")]
    problems = []
    if len(final) != 1:
        problems.append(f"{len(final)} error/result events")
    elif final[0]["type"] == "error":
        code = final[0].get("code")
        if code not in ErrorCode.all() or code == ErrorCode.INTERNAL:
            problems.append(f"error code {code!r}: {final[0].get('message', '')[:300]}")
        left = [p for p in outputs if os.path.exists(p)]
        if left:
            problems.append(f"an error left outputs: {left}")
        if proc.returncode == 0:
            problems.append("exit status 0 after an error")
    elif proc.returncode != 0:
        problems.append(f"exit status {proc.returncode} after a result")
    for folder in {os.path.dirname(p) for p in outputs}:
        parts = [n for n in os.listdir(folder) if ".part-" in n] if os.path.isdir(folder) else []
        if parts:
            problems.append(f"part files left: {parts}")
    if _digest_tree(inputs) != before:
        problems.append("an input changed")
    if problems and proc.stderr:
        problems.append("stderr: " + proc.stderr[-600:])
    return problems


def run(seed=0, cases=24, budget_s=420.0, keep=None, log=print):
    rng = random.Random(seed)
    started = time.monotonic()
    failures = []
    done = 0
    with tempfile.TemporaryDirectory(prefix="landfuse-fuzz-") as root:
        os.makedirs(os.path.join(root, "seeds"))
        found = seeds(os.path.join(root, "seeds"))
        env = dict(os.environ, LANDFUSE_GDAL_THREADS="1")
        for i in range(cases):
            if time.monotonic() - started > budget_s:
                log(f"time budget of {budget_s:g} s spent after {done} case(s)")
                break
            folder = os.path.join(root, f"case_{i:03d}")
            os.mkdir(folder)
            argv, inputs, outputs, what = _case(rng, found, folder)
            problems = check_case(argv, inputs, outputs, env)
            done += 1
            log(f"[{i + 1}/{cases}] {'FAIL' if problems else 'ok  '} {what}")
            if problems:
                failures.append({"case": i, "what": what, "argv": argv, "problems": problems})
                for p in problems:
                    log(f"      {p}")
                if keep:
                    shutil.copytree(folder, os.path.join(keep, f"case_{i:03d}"), dirs_exist_ok=True)
            else:
                shutil.rmtree(folder, ignore_errors=True)
    log(f"{done} case(s), {len(failures)} broke the contract (seed {seed})")
    return done, failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--budget-s", type=float, default=420.0)
    parser.add_argument("--keep", help="copy the failing cases here")
    args = parser.parse_args(argv)
    _, failures = run(args.seed, args.cases, args.budget_s, args.keep)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
