"""Sparse and split label rasters made from a dense label raster (0 = unlabelled / nodata).

`sample_labels` imitates a user's few clicks: N pixels per class, spread out, preferably inside
objects rather than on their edges. `split_labels` makes a spatially disjoint train / test pair by
assigning whole blocks to one side, so that neighbouring (correlated) pixels do not end up on both
sides of an evaluation.
"""

import os

import numpy as np
import rasterio
from scipy import ndimage

from backend.synth.scene import _atomic_write


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
    profile = dict(profile)
    profile.update(dtype="uint8", count=1, nodata=0, compress="deflate")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    keep = {k: v for k, v in tags.items() if k in ("LANDFUSE_CLASSES", "generator")}
    _atomic_write(path, lab.astype(np.uint8)[None], profile, dataset_tags={**keep, **extra_tags},
                  colormap=cmap or None)


def sample_labels(labels_path, out_path, per_class=20, seed=0, min_distance=5, interior=True):
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


def split_labels(labels_path, train_out, test_out, block=32, test_fraction=0.5, seed=0, buffer=0):
    """Split labelled pixels into spatially disjoint train and test rasters by whole blocks.

    Blocks (block x block pixels) holding labels are shuffled and about `test_fraction` of them go
    to test; then blocks are moved between sides, where possible, until every class appears on both.
    `buffer` > 0 also drops test pixels within that many pixels of a train block (a guard band).
    Returns {"train": {class: n}, "test": {class: n}, "test_blocks": n, "train_blocks": n}.
    """
    lab, profile, cmap, tags = _read(labels_path)
    h, w = lab.shape
    rng = np.random.default_rng(seed)
    by, bx = -(-h // block), -(-w // block)
    bid = (np.arange(h)[:, None] // block) * bx + (np.arange(w)[None, :] // block)
    classes = sorted(int(v) for v in np.unique(lab) if v > 0)
    # per-block class counts
    table = np.zeros((by * bx, len(classes)), dtype=np.int64)
    for k, c in enumerate(classes):
        table[:, k] = np.bincount(bid[lab == c], minlength=by * bx)
    used = np.flatnonzero(table.sum(axis=1) > 0)
    order = rng.permutation(used)
    n_test = int(round(test_fraction * used.size))
    if used.size >= 2:
        n_test = min(max(n_test, 1), used.size - 1)
    is_test = np.zeros(by * bx, dtype=bool)
    is_test[order[:n_test]] = True

    # repair: make every class present on both sides where the blocks allow it
    for _ in range(4 * len(classes)):
        changed = False
        for k in range(len(classes)):
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
                side_blocks = (~is_test) if move_to_test else is_test
                losing = False
                for k2 in range(len(classes)):
                    if table[b, k2] > 0 and (table[side_blocks, k2] > 0).sum() <= 1:
                        losing = True
                        break
                if not losing:
                    is_test[b] = move_to_test
                    changed = True
                    break
        if not changed:
            break

    test_mask = is_test[bid] & (lab > 0)
    train_mask = ~is_test[bid] & (lab > 0)
    if buffer > 0:
        near_train = ndimage.binary_dilation(~is_test[bid], iterations=int(buffer))
        test_mask &= ~near_train
    train = np.where(train_mask, lab, 0)
    test = np.where(test_mask, lab, 0)
    note = {"split": f"block={block} test_fraction={test_fraction} seed={seed} buffer={buffer}"}
    _write(train_out, train, profile, cmap, tags, dict(note, side="train"))
    _write(test_out, test, profile, cmap, tags, dict(note, side="test"))

    def _counts(a):
        return {c: int((a == c).sum()) for c in classes}

    return {"train": _counts(train), "test": _counts(test),
            "train_blocks": int((~is_test[used]).sum()), "test_blocks": int(is_test[used].sum())}
