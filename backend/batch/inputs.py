"""The scenes of a batch: `--inputs` (files, globs, folders, @list files) expanded in order, each
scene's auxiliary rasters (`--aux`: one file for all scenes or one per scene; `--aux-pattern`: a
name built from the scene's), and the output names in the output folder. Pure Python: no torch, no
Dask, no raster is opened here (a path GDAL opens but the file system does not know, such as
/vsis3/… or https://…, is passed through as it is)."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from backend.protocol import ErrorCode, LandFuseError

# What a folder given in --inputs contributes: the raster files directly inside it.
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".dat", ".bsq", ".bil", ".bip", ".jp2")
CLASSES_SUFFIX = "_classes.tif"
CONFIDENCE_SUFFIX = "_confidence.tif"
SUMMARY_FILE = "classify_batch.json"
_GLOB_CHARS = set("*?[")


@dataclass
class Scene:
    index: int
    hsi: str
    aux: List[str]
    name: str                      # unique within the batch; the stem of every output
    outputs: Dict[str, str] = field(default_factory=dict)   # classes, qml [, confidence]


def is_virtual(path: str) -> bool:
    """A GDAL path that is not a plain file (/vsicurl/…, /vsis3/…, https://…)."""
    return path.startswith("/vsi") or "://" in path


def _local_key(path: str) -> str:
    return path if is_virtual(path) else os.path.realpath(path)


def _read_list(list_file: str) -> List[str]:
    if not os.path.isfile(list_file):
        raise LandFuseError(ErrorCode.INPUT_NOT_FOUND, f"The list file does not exist: {list_file}")
    base = os.path.dirname(os.path.abspath(list_file))
    items = []
    with open(list_file, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                # Relative lines are relative to the list file, so a list travels with its scenes.
                items.append(line if is_virtual(line) or os.path.isabs(line) else os.path.join(base, line))
    return items


def expand(items: Sequence[str], warn: Callable[[str], None]) -> List[str]:
    """Files in the order given: `@list.txt` (one path or glob per line), a glob (sorted), a folder
    (its raster files, sorted), or a path as it is (a missing one fails later, as its scene)."""
    out = []
    for item in items:
        if item.startswith("@"):
            out += expand(_read_list(item[1:]), warn)
        elif not is_virtual(item) and _GLOB_CHARS & set(item):
            found = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not found:
                warn(f"{item} matches no file")
            out += found
        elif not is_virtual(item) and os.path.isdir(item):
            found = sorted(os.path.join(item, n) for n in os.listdir(item)
                           if n.lower().endswith(RASTER_SUFFIXES) and not n.startswith(".")
                           and os.path.isfile(os.path.join(item, n)))
            if not found:
                warn(f"the folder {item} holds no raster file ({', '.join(RASTER_SUFFIXES)})")
            out += found
        else:
            out.append(item)
    return out


def aux_from_pattern(pattern: str, hsi: str) -> str:
    """`{stem}` (the scene's file name without extension), `{name}` (with it) and `{dir}` (its folder)
    in `pattern`; a relative result is relative to the scene's folder."""
    folder, name = os.path.split(hsi)
    try:
        path = pattern.format(stem=os.path.splitext(name)[0], name=name, dir=folder)
    except (KeyError, IndexError, ValueError) as exc:
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"--aux-pattern {pattern!r}: {exc!r} is not one of "
                            "{stem}, {name}, {dir}") from exc
    return path if is_virtual(path) or os.path.isabs(path) else os.path.join(folder, path)


def _unique_names(paths: Sequence[str]) -> List[str]:
    """The file stem of each path; where stems collide, parent folder names are put in front
    (a/scene.tif, b/scene.tif → a_scene, b_scene) until each name is unique."""
    parts = []
    for p in paths:
        comps = [c for c in p.replace("\\", "/").split("/") if c]
        comps[-1] = os.path.splitext(comps[-1])[0]
        parts.append(comps)
    depth = [1] * len(paths)
    while True:
        names = ["_".join(c[-d:]) for c, d in zip(parts, depth)]
        clashes = {n for n in names if names.count(n) > 1}
        grow = [i for i, n in enumerate(names) if n in clashes and depth[i] < len(parts[i])]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    seen: Dict[str, int] = {}
    for i, n in enumerate(names):      # identical paths up to the root (cannot happen after dedup)
        seen[n] = seen.get(n, 0) + 1
        if seen[n] > 1:
            names[i] = f"{n}_{seen[n]}"
    return names


def resolve_scenes(inputs: Sequence[str], aux: Sequence[Sequence[str]], aux_patterns: Sequence[str], out_dir: str,
                   confidence: bool, warn: Callable[[str], None] = lambda m: None) -> List[Scene]:
    """Every scene of the batch with its aux rasters and output paths, in input order.

    `aux` holds one list per auxiliary modality (one `--aux` option each): one file (used for every
    scene, e.g. a DSM mosaic warped onto each scene's grid) or one file per scene, in input order.
    `aux_patterns` holds one name pattern per modality instead."""
    if aux and aux_patterns:
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, "Give either --aux or --aux-pattern, not both.")
    out_dir = os.path.abspath(out_dir)
    for item in inputs:
        if not item.startswith("@") and not is_virtual(item) and os.path.isdir(item) \
                and os.path.realpath(item) == os.path.realpath(out_dir):
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"The output folder is also an input folder: {out_dir}",
                                "Write the maps into a folder of their own.")
    hsis, seen = [], set()
    for path in expand(inputs, warn):
        key = _local_key(path)
        if key in seen:
            continue
        seen.add(key)
        if not is_virtual(path) and os.path.dirname(key) == os.path.realpath(out_dir) \
                and path.endswith((CLASSES_SUFFIX, CONFIDENCE_SUFFIX)):
            warn(f"{path} is an output of this batch; not an input")
            continue
        hsis.append(path)
    groups = [expand(g, warn) for g in aux]
    for g in groups:
        if not g:
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS, "An --aux option names no file.")
    # Rasters that serve as some scene's aux are not scenes themselves (a folder of scenes with their DSMs).
    aux_keys = {_local_key(p) for g in groups for p in g}
    aux_keys |= {_local_key(aux_from_pattern(pat, h)) for pat in aux_patterns for h in hsis}
    dropped = [h for h in hsis if _local_key(h) in aux_keys]
    hsis = [h for h in hsis if _local_key(h) not in aux_keys]
    if dropped:
        warn(f"{len(dropped)} input(s) are auxiliary rasters of the batch, not scenes: "
             + ", ".join(os.path.basename(d) for d in dropped[:5]) + (" …" if len(dropped) > 5 else ""))
    if not hsis:
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, "--inputs names no raster.",
                            "Give files, a glob in quotes, a folder or @list.txt.")
    for g in groups:
        if len(g) not in (1, len(hsis)):
            raise LandFuseError(ErrorCode.BAD_ARGUMENTS,
                                f"An --aux option names {len(g)} files for {len(hsis)} scenes.",
                                "Give one file for every scene (in the order of --inputs), or one for all.")
    scenes = []
    for i, (hsi, name) in enumerate(zip(hsis, _unique_names(hsis))):
        scene_aux = [g[0] if len(g) == 1 else g[i] for g in groups] + [aux_from_pattern(p, hsi) for p in aux_patterns]
        outputs = {"classes": os.path.join(out_dir, name + CLASSES_SUFFIX),
                   "qml": os.path.join(out_dir, name + CLASSES_SUFFIX[:-4] + ".qml")}
        if confidence:
            outputs["confidence"] = os.path.join(out_dir, name + CONFIDENCE_SUFFIX)
        scenes.append(Scene(i, hsi, scene_aux, name, outputs))
    return scenes


def summary_path(out_dir: str) -> str:
    return os.path.join(os.path.abspath(out_dir), SUMMARY_FILE)


def scene_record(scene: Scene, status: str, seconds: Optional[float] = None, error: Optional[dict] = None,
                 **extra) -> dict:
    record = {"input": scene.hsi, "aux": list(scene.aux), "name": scene.name, "status": status,
              "outputs": dict(scene.outputs) if status in ("ok", "skipped") else {},
              "error": error, "seconds": None if seconds is None else round(seconds, 3)}
    record.update(extra)
    return record


def counts(records: Sequence[dict]) -> Tuple[int, int, int]:
    """(ok, failed, skipped)"""
    return tuple(sum(1 for r in records if r["status"] == s) for s in ("ok", "failed", "skipped"))
