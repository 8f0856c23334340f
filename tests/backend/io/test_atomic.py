"""Atomic writes (backend/io/atomic.py): complete at the final path, or nothing changed and nothing left."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from backend.io.atomic import (
    PART_MARK,
    atomic_dir,
    atomic_path,
    part_path,
    remove_stale_parts,
    write_json_atomic,
    write_text_atomic,
)


class Boom(Exception):
    pass


def test_part_path_is_a_hidden_sibling_named_after_the_pid(tmp_path):
    part = part_path(str(tmp_path / "out.tif"))
    assert os.path.dirname(part) == str(tmp_path)
    assert os.path.basename(part) == f".out.tif{PART_MARK}{os.getpid()}"


def test_content_appears_only_on_success(tmp_path):
    target = tmp_path / "a.txt"
    with atomic_path(str(target)) as part:
        with open(part, "w") as f:
            f.write("new")
        assert not target.exists() and os.path.exists(part)
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_failure_removes_the_temporary_and_keeps_the_target(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(Boom):
        with atomic_path(str(target)) as part:
            with open(part, "w") as f:
                f.write("half")
            with open(part + ".aux.xml", "w") as f:   # what GDAL may write beside a raster
                f.write("<PAMDataset/>")
            raise Boom()
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_failure_before_anything_was_written_leaves_no_target(tmp_path):
    target = tmp_path / "never.txt"
    with pytest.raises(Boom):
        with atomic_path(str(target)):
            raise Boom()
    assert os.listdir(tmp_path) == []


def test_a_raster_written_through_the_part(tmp_path):
    target = tmp_path / "r.tif"
    data = np.arange(12, dtype=np.uint8).reshape(1, 3, 4)
    with atomic_path(str(target)) as part:
        with rasterio.open(part, "w", driver="GTiff", width=4, height=3, count=1, dtype="uint8", crs="EPSG:32633",
                           transform=from_origin(389000, 5819000, 2, 2)) as dst:
            dst.write(data)
    with rasterio.open(target) as src:
        assert np.array_equal(src.read(), data)


def test_text_and_json_helpers(tmp_path):
    text = tmp_path / "t.md"
    assert write_text_atomic(str(text), "é\n") == str(text)
    assert text.read_bytes() == "é\n".encode()
    obj = {"b": [1, 2.5], "a": "x"}
    path = tmp_path / "o.json"
    write_json_atomic(str(path), obj)
    assert path.read_text() == json.dumps(obj, indent=2)
    write_json_atomic(str(path), obj, indent=1, end="\n")
    assert path.read_text() == json.dumps(obj, indent=1) + "\n"
    with pytest.raises(TypeError):
        write_json_atomic(str(path), {"x": object()})    # not serialisable: the old file stays
    assert json.loads(path.read_text()) == obj
    assert sorted(os.listdir(tmp_path)) == ["o.json", "t.md"]


def test_atomic_dir_swaps_a_folder_in_whole(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileExistsError):      # by default an existing folder is never replaced
        with atomic_dir(str(target)):
            pass
    assert os.listdir(target) == ["old.txt"] and os.listdir(tmp_path) == ["model"]
    with pytest.raises(Boom):
        with atomic_dir(str(target), may_replace=lambda p: True) as part:
            with open(os.path.join(part, "new.txt"), "w") as f:
                f.write("half")
            raise Boom()
    assert os.listdir(target) == ["old.txt"] and os.listdir(tmp_path) == ["model"]
    with atomic_dir(str(target), may_replace=lambda p: True) as part:
        with open(os.path.join(part, "new.txt"), "w") as f:
            f.write("new")
        assert os.listdir(target) == ["old.txt"]
    assert os.listdir(target) == ["new.txt"] and os.listdir(tmp_path) == ["model"]


def test_atomic_dir_follows_the_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_dir(str(tmp_path / "m")):
            pass
    finally:
        os.umask(umask)
    assert os.stat(tmp_path / "m").st_mode & 0o777 == 0o755


def test_stale_parts_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    target = str(tmp_path / "out.tif")
    stale_file = os.path.join(tmp_path, f".out.tif{PART_MARK}{dead_pid}")
    stale_dir = os.path.join(tmp_path, f".out.tif{PART_MARK}{dead_pid}x")   # no pid at the end: kept
    live = part_path(target)
    for path in (stale_file, live):
        with open(path, "w") as f:
            f.write("x")
    os.mkdir(stale_dir)
    dead_dir = os.path.join(tmp_path, f".model{PART_MARK}{dead_pid}")
    os.mkdir(dead_dir)
    remove_stale_parts(target)
    remove_stale_parts(str(tmp_path / "model"))
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in (live, stale_dir))


def test_a_replaced_folder_left_aside_by_a_killed_run_is_removed(tmp_path):
    old = tmp_path / ".model.old-999999999"
    old.mkdir()
    (old / "model.json").write_text("{}")
    assert remove_stale_parts(str(tmp_path / "model")) == [str(old)]
    assert not old.exists()
