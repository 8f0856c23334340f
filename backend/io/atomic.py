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
from typing import Any, Iterator, Optional

PART_MARK = ".part-"


def part_path(path: str) -> str:
    """Temporary hidden sibling of `path`; the pid lets a later run remove parts of a killed run."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}{PART_MARK}{os.getpid()}")


def remove_stale_parts(path: str) -> None:
    """Delete temporaries that a killed run left beside `path` (those whose pid is not running)."""
    folder, name = os.path.split(os.path.abspath(path))
    for part in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}{PART_MARK}*")):
        match = re.search(re.escape(PART_MARK) + r"(\d+)$", part)
        if match and not _pid_alive(int(match.group(1))):
            try:
                if os.path.isdir(part) and not os.path.islink(part):
                    shutil.rmtree(part)     # an atomic_dir part
                else:
                    os.remove(part)
            except OSError:
                pass


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
def atomic_dir(path: str) -> Iterator[str]:
    """Yield a fresh temporary folder beside `path` to fill; on a clean exit it replaces `path` (an
    existing folder there is deleted first), on any exception it is deleted and `path` is left as it was.

    The temporary folder is made with a plain mkdir, so it gets the permissions of the umask. The swap
    is two steps (delete, rename): a crash between them leaves no folder at `path`, never half of one."""
    part = part_path(path)
    if os.path.isdir(part):       # left by an earlier process of the same pid
        shutil.rmtree(part)
    os.mkdir(part)
    try:
        yield part
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.rename(part, path)
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise
