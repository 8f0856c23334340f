"""Loaders of the real single-sensor scenes (backend/evaluation/datasets.py): salinas_a,
indian_pines_crop, dfc2018_houston_crop, samson and the block re-split of indian_pines_msi."""

import os

import numpy as np
import pytest
import rasterio

from backend.evaluation import datasets
from backend.io.spectral import band_wavelengths
from tests.backend.conftest import SHARED_DATA, needs_shared

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

SCENES = {"salinas_a": ("salinas_a", 204, 6, True), "indian_pines_crop": ("indian_pines_crop", 200, 4, True),
          "dfc2018_houston_crop": ("dfc2018_houston_crop", 48, 12, False), "samson": ("samson", 156, 3, True),
          "indian_pines_msi_blocks": ("indian_pines_msi", 10, 16, False)}


def _read(path):
    with rasterio.open(path) as src:
        return src.read(1)


def test_majority_labels_keeps_a_cell_only_when_one_class_covers_half_of_it():
    fine = np.zeros((4, 8), np.int64)
    fine[:, :4] = 3                     # first cell: all class 3
    fine[:2, 4:] = 2                    # second cell: 8 of 16 class 2 (half: kept)
    fine[2, 4:] = 1
    assert datasets.majority_labels(fine, 4).tolist() == [[3, 2]]
    fine[1, 4:] = 1                     # now 4 × class 2, 8 × class 1: class 1 holds half
    assert datasets.majority_labels(fine, 4).tolist() == [[3, 1]]
    fine[3, 4:] = 0
    fine[2, 4:] = 0                     # 4 × class 2, 4 × class 1, 8 unlabelled: no class reaches half
    assert datasets.majority_labels(fine, 4).tolist() == [[3, 0]]


@needs_shared
@pytest.mark.parametrize("dataset", sorted(SCENES))
def test_real_scene_loads_with_a_seeded_spatially_disjoint_split(dataset, tmp_path):
    folder, bands, n_classes, has_wavelengths = SCENES[dataset]
    out = datasets.prepare(dataset, os.path.join(SHARED_DATA, folder), str(tmp_path / "s0"), seed=0)
    assert out["hsi_bands"] == bands and out["wavelengths"] == has_wavelengths
    assert len(out["classes"]) == n_classes
    train, test = _read(out["train"]), _read(out["test"])
    assert not ((train > 0) & (test > 0)).any()
    assert set(np.unique(train[train > 0])) <= set(range(1, n_classes + 1))
    with rasterio.open(out["hsi"]) as src:
        centres, fwhm, _ = band_wavelengths(src)
        assert src.count == bands and np.isfinite(src.read(1)).all()
    assert (centres is not None) == has_wavelengths
    if dataset == "indian_pines_crop":   # the exact calibration: centre and FWHM of the first band
        assert centres[0] == pytest.approx(400.02) and fwhm[0] == pytest.approx(9.78)
    # no test pixel has a train pixel in its own block: the split is by whole blocks
    from backend.synth.labels import block_ids
    ids = block_ids(train.shape, datasets.SCENE_BLOCKS[dataset])
    assert not set(np.unique(ids[train > 0])) & set(np.unique(ids[test > 0]))
    other = datasets.prepare(dataset, os.path.join(SHARED_DATA, folder), str(tmp_path / "s1"), seed=1)
    assert not np.array_equal(_read(other["train"]), train)   # the seed draws the split
