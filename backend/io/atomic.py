"""Atomic writes: a file or folder appears at its final path complete, or not at all.

Everything is first written to a hidden sibling `.NAME.part-PID` (`part_path`) in the target's own
folder, so the final `os.replace` is a rename on one file system, and renamed into place only once
complete. Readers (QGIS, a next step of a pipeline) therefore never see half a file, and a failure
leaves the previous file untouched. The pid in the name lets a later run recognise, and remove, the
parts that a killed run (SIGKILL leaves no chance to clean) left behind (`remove_stale_parts`).

    with atomic_path(path) as part:      # any writer: rasterio.open(part, "w", ...), np.save, ...
        write(part)
    write_text_atomic(path, text)
    write_json_atomic(path, obj, indent=2)
    with atomic_dir(folder) as part:     # a whole folder, swapped in at once
        ...
"""

import contextlib
import glob
import json
import os
import re
import shutil
from typing import Any, Callable, Iterator, List, Optional

PART_MARK = ".part-"
OLD_MARK = ".old-"     # atomic_dir: the replaced folder, renamed aside until the new one is in place


def part_path(path: str) -> str:
    """Temporary hidden sibling of `path`; the pid lets a later run remove parts of a killed run."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}{PART_MARK}{os.getpid()}")


def remove_stale_parts(path: str) -> List[str]:
    """Delete temporaries that a killed run left beside `path` (those whose pid is not running);
    returns the paths removed."""
    removed = []
    folder, name = os.path.split(os.path.abspath(path))
    candidates = [p for mark in (PART_MARK, OLD_MARK)
                  for p in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}{mark}*"))]
    for part in candidates:
        match = re.search(f"(?:{re.escape(PART_MARK)}|{re.escape(OLD_MARK)})" + r"(\d+)$", part)
        if match and not _pid_alive(int(match.group(1))):
            try:
                if os.path.isdir(part) and not os.path.islink(part):
                    shutil.rmtree(part)     # an atomic_dir part
                else:
                    os.remove(part)
                removed.append(part)
            except OSError:
                pass
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def discard_part(part: str) -> None:
    """Remove a temporary file and the PAM sidecar (.aux.xml) GDAL may have written beside it."""
    for path in (part, part + ".aux.xml"):
        if os.path.exists(path):
            os.remove(path)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield the temporary path to write `path`'s content to; on a clean exit it is renamed onto
    `path` (replacing it), on any exception it is removed and `path` is left as it was."""
    part = part_path(path)
    try:
        yield part
        os.replace(part, path)
    except BaseException:
        discard_part(part)
        raise


def write_text_atomic(path: str, text: str, encoding: str = "utf-8") -> str:
    """Write `text` to `path` atomically. Returns `path`."""
    with atomic_path(path) as part:
        with open(part, "w", encoding=encoding) as f:
            f.write(text)
    return path


def write_json_atomic(path: str, obj: Any, indent: Optional[int] = 2, end: str = "") -> str:
    """Write `json.dumps(obj, indent=indent) + end` to `path` atomically (`end="\\n"` for a final
    newline). Returns `path`."""
    return write_text_atomic(path, json.dumps(obj, indent=indent) + end)


@contextlib.contextmanager
def atomic_dir(path: str, may_replace: Optional[Callable[[str], bool]] = None) -> Iterator[str]:
    """Yield a fresh temporary folder beside `path` to fill; on a clean exit it replaces `path`, on any
    exception it is deleted and `path` is left as it was.

    An existing folder at `path` is replaced only when `may_replace(path)` says so (default: never):
    it is first renamed aside (`.NAME.old-PID`), the new folder renamed into place, and only then is the
    old one deleted, so a crash at any point leaves one whole folder (the old or the new) at `path` or,
    between the two renames, the old one intact beside it. The temporary folder is made with a plain
    mkdir, so it gets the permissions of the umask."""
    if os.path.lexists(path) and not (os.path.isdir(path) and not os.path.islink(path)
                                      and may_replace is not None and may_replace(path)):
        raise FileExistsError(f"refusing to replace {path}: not a folder this writer may replace")
    part = part_path(path)
    if os.path.isdir(part):       # left by an earlier process of the same pid
        shutil.rmtree(part)
    os.mkdir(part)
    try:
        yield part
        old = None
        if os.path.isdir(path):
            old = os.path.join(os.path.dirname(part), f".{os.path.basename(path)}{OLD_MARK}{os.getpid()}")
            if os.path.isdir(old):
                shutil.rmtree(old)
            os.rename(path, old)
        try:
            os.rename(part, path)
        except BaseException:
            if old is not None:
                os.rename(old, path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise
