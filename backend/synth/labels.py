"""Sparse and split label rasters made from a dense label raster (0 = unlabelled / nodata).

`sample_labels` imitates a user's few clicks: N pixels per class, spread out, preferably inside
objects rather than on their edges. `split_labels` makes a spatially disjoint train / test pair by
assigning whole blocks to one side, so that neighbouring (correlated) pixels do not end up on both
sides of an evaluation; `split_label_array` is the same split of an array in memory, and `block_ids`
the block grid under it (pixel -> block index), for any other split by whole blocks.
"""

import os
from typing import Dict, NamedTuple, Tuple

import numpy as np
import rasterio
from scipy import ndimage

from .geotiff import write_geotiff


def _read(labels_path):
    with rasterio.open(labels_path) as src:
        lab = src.read(1)
        profile = src.profile.copy()
        try:
            cmap = src.colormap(1)
        except ValueError:
            cmap = None
        tags = src.tags()
    if not np.issubdtype(lab.dtype, np.integer):
        lab = np.nan_to_num(lab, nan=0).astype(np.int64)
    lab = np.where(lab < 0, 0, lab)
    return lab, profile, cmap, tags


def _write(path, lab, profile, cmap, tags, extra_tags):
    """A label raster on the grid of `profile`, keeping the source's class table and colours."""
    profile = dict(profile)
    profile.update(dtype="uint8", count=1, nodata=0, compress="deflate")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    keep = {k: v for k, v in tags.items() if k in ("LANDFUSE_CLASSES", "generator")}
    write_geotiff(path, lab.astype(np.uint8)[None], profile, dataset_tags={**keep, **extra_tags},
                  colormap=cmap or None)


def sample_labels(labels_path: str, out_path: str, per_class: int = 20, seed: int = 0, min_distance: float = 5,
                  interior: bool = True) -> Dict[int, int]:
    """Write a sparse label raster with up to `per_class` pixels of each class (the rest 0).

    Picks are at least `min_distance` pixels apart (from picks of any class). With `interior`,
    pixels whose 3x3 neighbourhood is all the same class are preferred (users click inside objects);
    edge pixels are used only when a class has too few interior ones. Returns {class: count}.
    """
    lab, profile, cmap, tags = _read(labels_path)
    h, w = lab.shape
    rng = np.random.default_rng(seed)
    out = np.zeros_like(lab, dtype=np.uint8)
    blocked = np.zeros((h, w), dtype=bool)
    r = int(np.ceil(max(0, min_distance)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = (yy ** 2 + xx ** 2) < max(min_distance, 0) ** 2
    counts = {}
    for c in sorted(int(v) for v in np.unique(lab) if v > 0):
        mask = lab == c
        pools = []
        if interior:
            inner = ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), border_value=0)
            pools = [np.flatnonzero(inner), np.flatnonzero(mask & ~inner)]
        else:
            pools = [np.flatnonzero(mask)]
        got = 0
        for pool in pools:
            if got >= per_class:
                break
            for p in rng.permutation(pool):
                i, j = divmod(int(p), w)
                if blocked[i, j]:
                    continue
                out[i, j] = c
                got += 1
                if r > 0:
                    i0, i1, j0, j1 = max(0, i - r), min(h, i + r + 1), max(0, j - r), min(w, j + r + 1)
                    blocked[i0:i1, j0:j1] |= disk[i0 - i + r:i1 - i + r, j0 - j + r:j1 - j + r]
                else:
                    blocked[i, j] = True
                if got >= per_class:
                    break
        counts[c] = got
    _write(out_path, out, profile, cmap, tags,
           {"sampling": f"per_class={per_class} seed={seed} min_distance={min_distance} interior={interior}"})
    return counts


def block_ids(shape: Tuple[int, int], block: int) -> np.ndarray:
    """(h, w) int64: the index of the block x block px block each pixel lies in, row by row over the
    ceil(h / block) x ceil(w / block) grid of blocks anchored at the top-left pixel."""
    h, w = shape
    return (np.arange(h)[:, None] // block) * (-(-w // block)) + (np.arange(w)[None, :] // block)


class BlockChoice(NamedTuple):
    """Which blocks of a label array go to test (`split_label_array`, `choose_test_blocks`)."""
    ids: np.ndarray        # (h, w) block of each pixel (block_ids)
    is_test: np.ndarray    # (n_blocks,) bool, True for a test block
    used: np.ndarray       # indices of the blocks holding labels
    classes: list          # the classes (> 0) present, ascending


def _block_class_counts(labels, ids, n_blocks, classes):
    """(n_blocks, len(classes)) count of each class's pixels in each block."""
    table = np.zeros((n_blocks, len(classes)), dtype=np.int64)
    for k, c in enumerate(classes):
        table[:, k] = np.bincount(ids[labels == c], minlength=n_blocks)
    return table


def _draw_test_blocks(table, test_fraction, rng):
    """About `test_fraction` of the blocks holding labels, drawn at random (at least one on each side
    when there are two or more). Returns the blocks holding labels and the (n_blocks,) test flags."""
    used = np.flatnonzero(table.sum(axis=1) > 0)
    order = rng.permutation(used)
    n_test = int(round(test_fraction * used.size))
    if used.size >= 2:
        n_test = min(max(n_test, 1), used.size - 1)
    is_test = np.zeros(table.shape[0], dtype=bool)
    is_test[order[:n_test]] = True
    return used, is_test


def _would_lose_a_class(table, is_test, b, move_to_test):
    """True when moving block `b` would take from its side the last block of one of its classes."""
    side_blocks = (~is_test) if move_to_test else is_test
    for k in range(table.shape[1]):
        if table[b, k] > 0 and (table[side_blocks, k] > 0).sum() <= 1:
            return True
    return False


def _balance_classes(table, is_test):
    """Move blocks between sides (in place), where the blocks allow it, until every class appears on
    both: a class held by two or more blocks that are all on one side gets one of them moved over."""
    n_classes = table.shape[1]
    for _ in range(4 * n_classes):
        changed = False
        for k in range(n_classes):
            holders = np.flatnonzero(table[:, k] > 0)
            if holders.size < 2:
                continue
            te = holders[is_test[holders]]
            tr = holders[~is_test[holders]]
            if te.size == 0:
                src = tr[np.argsort(table[tr, k], kind="stable")[::-1]]
                move_to_test = True
            elif tr.size == 0:
                src = te[np.argsort(table[te, k], kind="stable")[::-1]]
                move_to_test = False
            else:
                continue
            # move the smallest-impact block that holds the class: the one with the fewest pixels of
            # classes that would lose their last block on the other side
            for b in src[::-1]:
                if not _would_lose_a_class(table, is_test, b, move_to_test):
                    is_test[b] = move_to_test
                    changed = True
                    break
        if not changed:
            break


def choose_test_blocks(labels: np.ndarray, block: int = 32, test_fraction: float = 0.5,
                       seed: int = 0) -> BlockChoice:
    """Choose the test blocks of a label array (0 = unlabelled): the blocks holding labels are shuffled
    and about `test_fraction` of them go to test; then blocks are moved between sides, where possible,
    until every class appears on both. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    h, w = labels.shape
    ids = block_ids((h, w), block)
    n_blocks = (-(-h // block)) * (-(-w // block))
    classes = sorted(int(v) for v in np.unique(labels) if v > 0)
    table = _block_class_counts(labels, ids, n_blocks, classes)
    used, is_test = _draw_test_blocks(table, test_fraction, rng)
    _balance_classes(table, is_test)
    return BlockChoice(ids, is_test, used, classes)


def split_label_array(labels: np.ndarray, block: int = 32, test_fraction: float = 0.5, seed: int = 0,
                      buffer: int = 0) -> Tuple[np.ndarray, np.ndarray, dict]:
    """Split the labelled pixels (> 0) of an array into spatially disjoint train and test arrays by
    whole blocks (`choose_test_blocks`); `buffer` > 0 also drops test pixels within that many pixels of
    a train block (a guard band). Returns (train, test, info): both arrays of `labels`' dtype, 0 where
    unlabelled or on the other side, and info as `split_labels` returns it."""
    chosen = choose_test_blocks(labels, block, test_fraction, seed)
    test_pixel = chosen.is_test[chosen.ids]
    test_mask = test_pixel & (labels > 0)
    train_mask = ~test_pixel & (labels > 0)
    if buffer > 0:
        near_train = ndimage.binary_dilation(~test_pixel, iterations=int(buffer))
        test_mask &= ~near_train
    train = np.where(train_mask, labels, 0)
    test = np.where(test_mask, labels, 0)

    def _counts(a):
        return {c: int((a == c).sum()) for c in chosen.classes}

    info = {"train": _counts(train), "test": _counts(test),
            "train_blocks": int((~chosen.is_test[chosen.used]).sum()),
            "test_blocks": int(chosen.is_test[chosen.used].sum())}
    return train, test, info


def split_labels(labels_path: str, train_out: str, test_out: str, block: int = 32, test_fraction: float = 0.5,
                 seed: int = 0, buffer: int = 0) -> dict:
    """Split labelled pixels into spatially disjoint train and test rasters by whole blocks.

    Blocks (block x block pixels) holding labels are shuffled and about `test_fraction` of them go
    to test; then blocks are moved between sides, where possible, until every class appears on both.
    `buffer` > 0 also drops test pixels within that many pixels of a train block (a guard band).
    Returns {"train": {class: n}, "test": {class: n}, "test_blocks": n, "train_blocks": n}.
    """
    lab, profile, cmap, tags = _read(labels_path)
    train, test, info = split_label_array(lab, block, test_fraction, seed, buffer)
    note = {"split": f"block={block} test_fraction={test_fraction} seed={seed} buffer={buffer}"}
    _write(train_out, train, profile, cmap, tags, dict(note, side="train"))
    _write(test_out, test, profile, cmap, tags, dict(note, side="test"))
    return info
