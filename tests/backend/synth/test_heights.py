"""Heights above ground per generic class, measured on the real Trento and MUUFL LiDAR
(backend/synth/heights.py)."""

import os

import numpy as np
import pytest

from backend.synth import heights
from backend.synth.layout import LOW_VEG, PAVEMENT, ROOF, SOIL, TREE, WATER

DATA = heights.shared_data_dir()
needs_data = pytest.mark.skipif(DATA is None or not os.path.isdir(DATA),
                                reason="real data folder not found (../shared/data beside the checkout, or "
                                       "LANDFUSE_SHARED_DATA): needs real LiDAR and label maps")


@pytest.fixture(scope="module")
def table():
    return heights.measured_height_table(DATA)


# ---------------------------------------------------------------------------------------------------
# without the real data


def test_ground_level_recovers_a_sloping_ground_under_a_building():
    rows, cols = np.mgrid[0:80, 0:120]
    ground = 200.0 + 0.02 * cols + 0.01 * rows     # a 2 % slope
    dsm = ground.copy()
    dsm[20:50, 30:70] += 12.0                       # a 30 x 40 m building: wider than a block window
    on_ground = np.ones(dsm.shape, bool)
    on_ground[18:52, 28:72] = False                 # labels say where the ground is
    est = heights.ground_level(dsm, on_ground, pixel_m=1.0)
    above = dsm - est
    assert np.median(np.abs(above[on_ground])) < 0.2
    assert abs(np.median(above[25:45, 35:65]) - 12.0) < 0.3


def test_ground_level_ignores_missing_values_and_needs_ground():
    dsm = np.full((40, 40), 5.0)
    dsm[::7, ::5] = np.nan
    est = heights.ground_level(dsm, np.ones(dsm.shape, bool))
    assert np.allclose(est, 5.0)
    with pytest.raises(ValueError):
        heights.ground_level(dsm, np.zeros(dsm.shape, bool))


def test_sample_is_inverse_cdf_reproducible_and_unknown_class_is_zero():
    q = {ROOF: np.linspace(2.0, 22.0, 101)}
    t = heights.HeightTable(quantiles=q, sources={ROOF: ["x"]})
    a = t.sample(ROOF, np.random.default_rng(5), n=1000)
    b = t.sample(ROOF, np.random.default_rng(5), n=1000)
    assert a.shape == (1000,) and np.array_equal(a, b)
    assert a.min() >= 2.0 and a.max() <= 22.0 and abs(np.median(a) - 12.0) < 1.0
    one = t.sample(ROOF, np.random.default_rng(5))
    assert isinstance(one, float) and one == a[0]
    assert t.sample(WATER, np.random.default_rng(0)) == 0.0
    assert np.array_equal(t.sample(WATER, np.random.default_rng(0), n=3), np.zeros(3))


def test_shared_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LANDFUSE_SHARED_DATA", str(tmp_path))
    assert heights.shared_data_dir() == str(tmp_path)


def test_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="shared data"):
        heights.measured_height_table(str(tmp_path / "nowhere"))


# ---------------------------------------------------------------------------------------------------
# on the real LiDAR


@needs_data
def test_measured_medians_are_physical(table):
    med = {c: float(table.quantiles[c][50]) for c in table.quantiles}
    assert med[ROOF] >= 3.0
    assert med[TREE] >= 3.0
    assert med[PAVEMENT] < 1.0
    assert med[LOW_VEG] < 1.0
    assert med[SOIL] < 1.0 and med[WATER] < 1.0
    # per source too: the ground estimate works on both rasters
    for name in ("trento", "muufl"):
        assert table.source_medians[ROOF][name] >= 3.0
        assert table.source_medians[PAVEMENT][name] < 1.0


@needs_data
def test_table_covers_every_class_with_monotone_non_negative_quantiles(table):
    assert set(table.quantiles) == {ROOF, PAVEMENT, LOW_VEG, TREE, SOIL, WATER}
    for c, q in table.quantiles.items():
        assert q.shape == (101,)
        assert np.all(q >= 0.0) and np.all(np.diff(q) >= 0.0)
        assert table.sources[c], f"class {c} was measured nowhere"
    assert table.sources[ROOF] == ["trento", "muufl"]
    assert table.sources[WATER] == ["muufl"]        # Trento has no water class


@needs_data
def test_measured_table_is_cached_and_sampling_reproducible(table):
    assert heights.measured_height_table(DATA) is table
    a = table.sample(TREE, np.random.default_rng(11), n=50)
    b = table.sample(TREE, np.random.default_rng(11), n=50)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, table.sample(TREE, np.random.default_rng(12), n=50))
    assert a.min() >= table.quantiles[TREE][0] and a.max() <= table.quantiles[TREE][100]
