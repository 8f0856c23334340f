"""The output guard: one rule, checked before any work, for every path a command is about to write.

An output may never be
- one of the run's inputs (compared by real path and by file identity, so `./x/../hsi.tif`, a
  symbolic link or a hard link to an input are caught too; a model folder given as input counts with
  every file in it, a raster with its usual sidecars: `.hdr`, `.aux.xml`, …),
- a device, a FIFO, a socket or a folder (only a regular file, or nothing, is ever replaced), or a path
  under /dev, /proc or /sys,
- another output of the same run (`--confidence` equal to `--out`, `--out map.qml` whose legend
  sidecar is the map itself).

A model package folder is written beside its final path and swapped in (`io.atomic.atomic_dir`); an
existing folder there is replaced only when it is a LandFuse model package (`model.json` present) or
empty, and never when it holds, or is, one of the inputs (`train --out .` from the data folder).

    check_outputs(inputs=[hsi, *aux, model], outputs={"class map": out, "legend": qml}, log=events.log)
    check_model_folder(out, inputs=[hsi, labels], log=events.log)
"""

from __future__ import annotations

import os
import stat
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from backend.io.atomic import remove_stale_parts
from backend.protocol import ErrorCode, LandFuseError

SYSTEM_ROOTS = ("/dev", "/proc", "/sys")
# Files GDAL and OGR read beside a raster or a vector file: writing over one corrupts the input too.
SIDECAR_SUFFIXES = (".hdr", ".aux.xml", ".ovr", ".msk", ".prj", ".shx", ".dbf", ".cpg", ".qix", ".tfw",
                    ".wld", ".aux")
MODEL_MANIFEST = "model.json"   # backend.manifest.MANIFEST_FILE (io does not import the manifest module)

Log = Callable[..., None]


def os_error(exc: BaseException) -> Optional[LandFuseError]:
    """The typed error for a failed write: a full disk (disk_full) or a file system that refuses it
    (output_not_writable); None for other errors. GDAL's write errors carry no errno, only text."""
    import errno
    text = str(exc)
    name = getattr(exc, "filename", None)
    where = f" ({name})" if name else ""
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text \
            or "Disk quota" in text:
        return LandFuseError(ErrorCode.DISK_FULL, f"The disk is full: an output could not be written{where}. "
                             "Nothing was left half-written.", "Free some space or write to another disk.")
    if getattr(exc, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR,
                                       errno.EFBIG, errno.EINVAL, errno.EXDEV):
        return LandFuseError(ErrorCode.OUTPUT_NOT_WRITABLE, f"A file could not be written{where}: {exc.strerror or text}",
                             "Choose a folder you can write to.")
    return None


def real(path: str) -> str:
    """The absolute path with `..` and every symbolic link resolved."""
    return os.path.realpath(os.path.abspath(os.path.expanduser(path)))


def _identity(path: str) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _expand_inputs(inputs: Iterable[Optional[str]]) -> Tuple[Set[str], Set[Tuple[int, int]], List[str]]:
    """(real paths, file identities, input folders) of the inputs, sidecars and folder contents included."""
    paths: Set[str] = set()
    folders: List[str] = []
    for path in inputs:
        if not path:
            continue
        r = real(str(path))
        paths.add(r)
        if os.path.isdir(r):
            folders.append(r)
            try:
                names = os.listdir(r)
            except OSError:
                names = []
            paths.update(real(os.path.join(r, n)) for n in names)
            continue
        stem = os.path.splitext(r)[0]
        for suffix in SIDECAR_SUFFIXES:
            for candidate in (r + suffix, stem + suffix):
                if os.path.exists(candidate):
                    paths.add(real(candidate))
    identities = {i for i in map(_identity, paths) if i is not None}
    return paths, identities, folders


def _under_system_root(r: str) -> bool:
    if r == "/dev/shm" or r.startswith("/dev/shm/"):     # an ordinary (memory) file system
        return False
    return any(r == root or r.startswith(root + os.sep) for root in SYSTEM_ROOTS)


def _refuse(message: str, hint: str = "Choose another output path.", code: str = ErrorCode.OUTPUT_NOT_WRITABLE):
    raise LandFuseError(code, message, hint)


def _check_folder_writable(folder: str, what: str, path: str) -> None:
    if not os.path.isdir(folder):
        _refuse(f"The {what} folder does not exist: {folder}", "Create the folder or choose another output path.")
    if not os.access(folder, os.W_OK | os.X_OK):
        _refuse(f"The {what} cannot be written here (no write permission in the folder): {path}",
                "Choose a folder you can write to.")


def check_outputs(inputs: Iterable[Optional[str]], outputs: Mapping[str, Optional[str]],
                  log: Optional[Log] = None) -> Dict[str, str]:
    """Refuse, before any work, every output file that breaks the rule (module docstring); remove the
    part files a killed earlier run left beside each output (and say so). `outputs` maps a name for a
    person ("class map", "confidence raster") to a path; empty entries are skipped. Returns the
    outputs' real paths by name."""
    input_paths, input_ids, _ = _expand_inputs(inputs)
    seen: Dict[str, str] = {}
    resolved: Dict[str, str] = {}
    for what, path in outputs.items():
        if not path:
            continue
        r = real(str(path))
        if _under_system_root(r):
            _refuse(f"The {what} would be written into a system folder ({r}): {path}")
        if os.path.lexists(r):
            try:
                mode = os.stat(r).st_mode
            except OSError:
                mode = 0
            if stat.S_ISDIR(mode):
                _refuse(f"The {what} path is a folder: {path}", "Give a file name inside the folder.")
            if mode and not stat.S_ISREG(mode):
                _refuse(f"The {what} path is not a regular file (a device, pipe or socket): {path}",
                        "LandFuse only replaces regular files; choose a file name.")
            if not os.access(r, os.W_OK):
                _refuse(f"The {what} exists and cannot be replaced (read-only): {path}")
        if r in input_paths or (_identity(r) is not None and _identity(r) in input_ids):
            _refuse(f"The {what} {path} is one of this run's inputs (or a file that belongs to one); "
                    "writing it would destroy the input.", "Choose a new file name for the output.",
                    ErrorCode.BAD_ARGUMENTS)
        if r in seen:
            _refuse(f"The {what} and the {seen[r]} are the same file: {path}",
                    "Give each output its own file name (the map's legend is written beside it as .qml).",
                    ErrorCode.BAD_ARGUMENTS)
        seen[r] = what
        _check_folder_writable(os.path.dirname(r), what, path)
        resolved[what] = r
    for r in resolved.values():
        _clean_stale(r, log)
    return resolved


def _clean_stale(path: str, log: Optional[Log]) -> None:
    removed = remove_stale_parts(path)
    if removed and log:
        log(f"Removed {len(removed)} unfinished temporary file(s) that an interrupted earlier run left beside "
            f"{os.path.basename(path)}: {', '.join(os.path.basename(p) for p in removed)}", "warning")


def check_folder_of_outputs(path: Optional[str], marker: str, what: str, log: Optional[Log] = None) -> str:
    """A folder a command fills with files of fixed names (`synth`'s hsi.tif, dsm.tif, …): it must be new,
    empty, or hold `marker` (what an earlier run of the same command wrote); anything else is a folder
    of someone's files that those names would overwrite. Returns the real path."""
    if not path:
        _refuse(f"No {what} path given.", code=ErrorCode.BAD_ARGUMENTS)
    r = real(str(path))
    if _under_system_root(r):
        _refuse(f"The {what} would be written into a system folder: {path}")
    if os.path.lexists(r):
        if not os.path.isdir(r):
            _refuse(f"The {what} path {path} is a file, not a folder.")
        if os.listdir(r) and not os.path.isfile(os.path.join(r, marker)):
            _refuse(f"The folder {path} already holds other files (no {marker} of an earlier run): its files could "
                    "be overwritten.", "Give a new or empty folder.")
    return r


def is_model_package(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, MODEL_MANIFEST))


def replaceable_folder(folder: str) -> bool:
    """A folder LandFuse may replace whole: a model package, or an empty folder."""
    try:
        return is_model_package(folder) or not os.listdir(folder)
    except OSError:
        return False


def check_model_folder(path: Optional[str], inputs: Iterable[Optional[str]] = (), log: Optional[Log] = None,
                       what: str = "model folder") -> str:
    """Refuse, before any work, a model package output that would replace something else than a model
    package (or an empty folder), an input or a folder holding one. Returns the real path."""
    if not path:
        _refuse(f"No {what} path given.", code=ErrorCode.BAD_ARGUMENTS)
    r = real(str(path))
    if _under_system_root(r):
        _refuse(f"The {what} would be written under a system folder: {path}")
    input_paths, _, input_folders = _expand_inputs(inputs)
    for inp in sorted(input_paths | set(input_folders)):
        if inp == r or inp.startswith(r.rstrip(os.sep) + os.sep):
            _refuse(f"The {what} {path} is, or holds, one of this run's inputs ({inp}); replacing it would "
                    "destroy the input.", "Write the model to a new folder.", ErrorCode.BAD_ARGUMENTS)
    if os.path.lexists(r):
        if not os.path.isdir(r):
            _refuse(f"The {what} path {path} is a file, not a folder.", "Give a new folder name for the model.")
        if not replaceable_folder(r):
            _refuse(f"The folder {path} exists and is not a LandFuse model package (no {MODEL_MANIFEST}): "
                    "LandFuse replaces only model packages, never other folders.",
                    "Give a new folder name for the model; it is created.")
    parent = os.path.dirname(r)
    existing = parent
    while existing and not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    if not existing or not os.access(existing, os.W_OK | os.X_OK):
        _refuse(f"Cannot write the {what} here (no write permission): {path}", "Choose a folder you can write to.")
    _clean_stale(r, log)
    return r
