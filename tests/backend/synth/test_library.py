"""Tests of the real spectral library (backend.synth.library).

The logic tests (resampling, split, sampler) run on small hand-made sets; the data tests read the real
files in ../shared/data (or $LANDFUSE_SHARED_DATA) and the earthlib package, and skip without them.
"""

import importlib.util
import os

import numpy as np
import pytest

from backend.synth import library as L

DATA = L.shared_data_dir()
needs_library = pytest.mark.skipif(
    DATA is None or not os.path.isdir(DATA) or importlib.util.find_spec("earthlib") is None,
    reason="needs ../shared/data (or $LANDFUSE_SHARED_DATA) with the Berlin and Houston files, and the "
           "earthlib package")

ROOF, PAVEMENT, LOWVEG, TREE, SOIL, WATER = 1, 2, 3, 4, 5, 6


def _band(spectra, lo, hi):
    sel = (L.GRID_NM >= lo) & (L.GRID_NM <= hi)
    return spectra[:, sel].mean(axis=1)


def _toy(n_per_group=None):
    """A small SpectrumSet: source 'a' covers the whole grid, source 'b' only 400-1000 nm."""
    n_per_group = n_per_group or {("a", SOIL): 40, ("b", SOIL): 2, ("a", ROOF): 1, ("b", ROOF): 5}
    rows, classes, names, sources = [], [], [], []
    for (src, cls), n in sorted(n_per_group.items()):
        for i in range(n):
            s = np.full(L.GRID_NM.size, 0.1 * cls, dtype=np.float32)
            if src == "b":
                s[(L.GRID_NM < 400) | (L.GRID_NM > 1000)] = np.nan
            rows.append(s)
            classes.append(cls)
            names.append(f"{src}:{cls}:{i}")
            sources.append(src)
    return L.SpectrumSet(L.GRID_NM.copy(), np.stack(rows), np.array(classes), np.array(names),
                         np.array(sources))


# ---------------------------------------------------------------------------------------------------
# logic on hand-made data


def test_grid_and_classes():
    assert L.GRID_NM[0] == 350 and L.GRID_NM[-1] == 2500 and np.all(np.diff(L.GRID_NM) == 5)
    assert [c["value"] for c in L.GENERIC_CLASSES] == [1, 2, 3, 4, 5, 6]
    for _src, _key, value, why in L.CLASS_MAP:
        assert value in (None, 1, 2, 3, 4, 5, 6) and why


def test_resample_interpolates_small_gaps_and_blanks_wide_ones():
    wl = np.array([400.0, 410.0, 430.0, 500.0, 510.0])  # 20 nm gap (kept), 70 nm gap (blanked)
    out = L._resample(wl, np.array([0.1, 0.2, 0.4, 0.5, 0.6]))
    at = dict(zip(L.GRID_NM.tolist(), out.tolist()))
    assert np.isnan(at[395.0]) and np.isnan(at[515.0])  # outside the measured range
    assert at[400.0] == pytest.approx(0.1) and at[405.0] == pytest.approx(0.15)
    assert at[420.0] == pytest.approx(0.3)  # inside the 20 nm gap
    assert at[430.0] == pytest.approx(0.4) and at[500.0] == pytest.approx(0.5)  # gap edges are measured
    assert np.isnan(at[435.0]) and np.isnan(at[495.0])
    assert at[510.0] == pytest.approx(0.6)


def test_split_is_deterministic_stratified_and_order_independent():
    lib = _toy()
    train, held = L.split_library(lib, 0.2, seed=3)
    assert len(train) + len(held) == len(lib)
    assert not set(train.names) & set(held.names)
    counts = held.counts()
    assert counts[("a", SOIL)] == 8 and counts[("b", SOIL)] == 1 and counts[("b", ROOF)] == 1
    assert ("a", ROOF) not in counts  # a single spectrum stays in training
    again = L.split_library(lib, 0.2, seed=3)[1]
    assert sorted(again.names) == sorted(held.names)
    shuffled = lib.subset(np.random.default_rng(0).permutation(len(lib)))
    assert sorted(L.split_library(shuffled, 0.2, seed=3)[1].names) == sorted(held.names)
    assert sorted(L.split_library(lib, 0.2, seed=4)[1].names) != sorted(held.names)


def test_sampler_weights_sources_not_counts_and_respects_coverage():
    lib = _toy()
    rng = np.random.default_rng(0)
    draws = L.sample_class_spectra(lib, SOIL, 400, rng, 450, 950)
    assert draws.shape == (400, L.GRID_NM.size) and draws.dtype == np.float32
    from_b = np.isnan(draws[:, 0]).mean()  # only source b is NaN at 350 nm
    assert 0.4 < from_b < 0.6  # 2 'b' soils drawn about as often as 40 'a' soils
    full = L.sample_class_spectra(lib, SOIL, 50, rng, 350, 2500)
    assert not np.isnan(full).any()
    with pytest.raises(ValueError):
        L.sample_class_spectra(lib, WATER, 1, rng, 450, 950)
    assert lib.covering(350, 2500, skip_nm=[(300, 399), (1001, 2600)]).all()


# ---------------------------------------------------------------------------------------------------
# the real library


@pytest.fixture(scope="module")
def lib():
    return L.load_library(DATA)


@needs_library
def test_loads_all_sources_and_classes(lib):
    assert L.load_library(DATA) is lib  # cached
    assert lib.spectra.shape == (len(lib), L.GRID_NM.size) and lib.spectra.dtype == np.float32
    assert np.array_equal(lib.wavelengths_nm, L.GRID_NM)
    assert len(set(lib.names)) == len(lib)
    assert set(np.unique(lib.sources)) == {"berlin", "houston", "earthlib"}
    counts = lib.counts()
    for cls in range(1, 7):
        assert counts.get(("berlin", cls), 0) > 0
    for cls in (ROOF, PAVEMENT, LOWVEG, TREE, SOIL, WATER):
        assert counts.get(("houston", cls), 0) > 0
    for cls in (ROOF, PAVEMENT, SOIL):
        assert counts.get(("earthlib", cls), 0) > 0
    assert ("earthlib", TREE) not in counts  # simulated canopies are excluded
    assert ("earthlib", LOWVEG) not in counts  # litter alone looks like soil: excluded (issue 18)
    assert counts[("berlin", ROOF)] == 23 and counts[("berlin", WATER)] == 2
    assert counts[("earthlib", SOIL)] > 4000


@needs_library
def test_scaling_and_wavelengths_are_sane(lib):
    s = lib.spectra
    assert np.nanmin(s) >= 0 and np.nanmax(s) <= 1
    assert not np.isnan(s).all(axis=1).any()
    trees = s[lib.classes == TREE]
    assert np.all(_band(trees, 800, 850) > 2 * _band(trees, 660, 680))
    water = s[lib.classes == WATER]
    assert np.all(_band(water, 800, 850) < 0.1)
    # Berlin was stored x 10000: its vegetation NIR must look like reflectance, not 1000s or 0.0001s
    veg = s[(lib.sources == "berlin") & (lib.classes == LOWVEG)]
    assert 0.15 < np.median(_band(veg, 800, 850)) < 0.7


@needs_library
def test_nan_outside_measured_ranges_and_in_absorption_gaps(lib):
    at = {w: i for i, w in enumerate(L.GRID_NM.tolist())}
    houston = lib.spectra[lib.sources == "houston"]
    assert np.isnan(houston[:, at[1600.0]]).all() and np.isnan(houston[:, at[375.0]]).all()
    assert not np.isnan(houston[:, at[380.0]:at[1050.0] + 1]).any()
    berlin = lib.spectra[lib.sources == "berlin"]
    assert np.isnan(berlin[:, at[455.0]]).all() and not np.isnan(berlin[:, at[460.0]]).any()
    assert np.isnan(berlin[:, at[1400.0]]).all() and np.isnan(berlin[:, at[1900.0]]).all()
    assert not np.isnan(berlin[:, at[900.0]]).any()  # the 19 nm detector joint is bridged
    earth = lib.spectra[lib.sources == "earthlib"]
    assert np.isnan(earth[:, at[1400.0]]).all() and np.isnan(earth[:, at[1900.0]]).all()
    assert np.isnan(lib.spectra[:, at[350.0]]).all() and np.isnan(lib.spectra[:, at[2500.0]]).all()


@needs_library
def test_real_split_is_disjoint_stratified_and_covers_every_class(lib):
    train, held = L.split_library(lib)
    assert len(train) + len(held) == len(lib)
    assert not set(train.names) & set(held.names)
    for key, n in lib.counts().items():
        if n >= 2:
            assert held.counts().get(key, 0) >= 1 and train.counts().get(key, 0) >= 1
    assert set(held.classes.tolist()) == set(range(1, 7)) == set(train.classes.tolist())
    assert 0.15 < len(held) / len(lib) < 0.25
    assert sorted(L.split_library(lib)[1].names) == sorted(held.names)


@needs_library
def test_real_sampler_respects_coverage(lib):
    rng = np.random.default_rng(1)
    vnir = L.sample_class_spectra(lib, TREE, 200, rng, 460, 1000)
    assert vnir.shape == (200, L.GRID_NM.size)
    # trees come from Berlin and Houston, both measured over 460-1000 nm; only Houston is NaN at 1600 nm,
    # and sources are drawn evenly, so both must appear
    houston_like = np.isnan(vnir[:, L.GRID_NM == 1600.0]).ravel()
    assert houston_like.any() and not houston_like.all()
    # a full-range request crosses the unmeasured water-absorption regions: nothing covers it...
    with pytest.raises(ValueError):
        L.sample_class_spectra(lib, SOIL, 10, rng, 400, 2400)
    # ... unless those are skipped, and then Houston (VNIR only) is never drawn
    gaps = L.LIBRARY_GAPS_NM
    assert lib.covering(460, 2400, skip_nm=gaps)[lib.sources == "berlin"].all()
    full = L.sample_class_spectra(lib, ROOF, 300, rng, 460, 2400, skip_nm=gaps)
    inside = (L.GRID_NM >= 460) & (L.GRID_NM <= 2400)
    for a, b in gaps:
        inside &= ~((L.GRID_NM >= a) & (L.GRID_NM <= b))
    assert not np.isnan(full[:, inside]).any()
    pool = lib.covering(460, 2400, skip_nm=gaps) & (lib.classes == ROOF)
    assert "houston" not in set(lib.sources[pool].tolist())
    assert {"berlin", "earthlib"} <= set(lib.sources[pool].tolist())
