"""Tests of the synthetic scene generator (backend.synth)."""

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from backend.synth import DEMO_CLASSES, generate_scene, sample_labels, spectra, split_labels
from backend.synth.labels import block_ids, choose_test_blocks, split_label_array
from backend.synth.scene import BAD_BAND_WINDOWS_NM

REPO = Path(__file__).resolve().parents[3]
SHARED_DATA = Path(os.environ.get("LANDFUSE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The demo configuration (256 x 256 x 64, seed 0) with SAR and fractions."""
    out = tmp_path_factory.mktemp("scene")
    return generate_scene(str(out), seed=0, with_sar=True, with_fractions=True)


@pytest.fixture(scope="module")
def arrays(scene):
    with rasterio.open(scene["hsi"]) as src:
        hsi = src.read()
    with rasterio.open(scene["labels"]) as src:
        labels = src.read(1)
    with rasterio.open(scene["dsm"]) as src:
        dsm = src.read(1)
    return hsi, labels, dsm


def _read_all(res):
    out = {}
    for key in ("hsi", "dsm", "sar", "labels", "fractions"):
        if res.get(key):
            with rasterio.open(res[key]) as src:
                out[key] = src.read()
    return out


# ---------------------------------------------------------------------------------------------------
# determinism, files


def test_same_seed_gives_identical_arrays_and_other_seed_differs(tmp_path):
    kw = dict(height=64, width=80, n_bands=24, with_sar=True, with_fractions=True)
    a = _read_all(generate_scene(str(tmp_path / "a"), seed=7, **kw))
    b = _read_all(generate_scene(str(tmp_path / "b"), seed=7, **kw))
    c = _read_all(generate_scene(str(tmp_path / "c"), seed=8, **kw))
    assert a.keys() == b.keys() == {"hsi", "dsm", "sar", "labels", "fractions"}
    for k in a:
        assert a[k].dtype == b[k].dtype
        assert a[k].tobytes() == b[k].tobytes(), k
    assert a["hsi"].tobytes() != c["hsi"].tobytes()
    assert a["labels"].tobytes() != c["labels"].tobytes()


def test_returned_dict(scene):
    assert set(scene) >= {"hsi", "dsm", "sar", "labels", "classes", "wavelengths_nm"}
    assert scene["classes"] == DEMO_CLASSES
    assert [(c["value"], c["name"], c["color"]) for c in DEMO_CLASSES] == [
        (1, "roof", "#d7301f"), (2, "pavement", "#969696"), (3, "low vegetation", "#a1d99b"),
        (4, "tree", "#238b45"), (5, "soil", "#c2a36b"), (6, "water", "#2171b5")]
    wl = scene["wavelengths_nm"]
    assert len(wl) == 64 and wl[0] == pytest.approx(420.0) and wl[-1] == pytest.approx(2450.0)
    assert all(np.diff(wl) > 0)
    for key in ("hsi", "dsm", "sar", "labels"):
        assert os.path.isfile(scene[key])
    leftovers = [p for p in os.listdir(os.path.dirname(scene["hsi"])) if "tmp" in p or p.startswith(".")]
    assert leftovers == []


def test_hsi_georeference_and_band_metadata(scene):
    with rasterio.open(scene["hsi"]) as src:
        assert src.crs.to_epsg() == 32633
        assert src.transform.c == pytest.approx(389000.0) and src.transform.f == pytest.approx(5819000.0)
        assert src.res == (2.0, 2.0)
        assert (src.height, src.width, src.count) == (256, 256, 64)
        assert src.dtypes[0] == "uint16" and src.nodata == 0
        assert src.profile["tiled"] and src.compression.name.lower() == "deflate"
        bbl = []
        for i in range(1, 65):
            tags = src.tags(i)
            wl = float(tags["wavelength"])
            assert wl == pytest.approx(scene["wavelengths_nm"][i - 1], abs=0.05)
            assert tags["wavelength_units"] == "Nanometers"
            assert 2.0 <= float(tags["fwhm"]) < 100.0
            assert src.descriptions[i - 1] == f"band {i} ({wl:.1f} Nanometers)"
            assert re.fullmatch(r"band \d+ \(\d+\.\d Nanometers\)", src.descriptions[i - 1])
            bbl.append(int(tags["bbl"]))
            assert float(src.tags(i, ns="IMAGERY")["CENTRAL_WAVELENGTH_UM"]) == pytest.approx(wl / 1000, abs=1e-4)
        envi = src.tags(ns="ENVI")
        assert envi["wavelength_units"] == "Nanometers" and envi["bbl"].startswith("{")
    bbl = np.array(bbl)
    wl = np.array(scene["wavelengths_nm"])
    in_window = np.zeros(wl.shape, bool)
    for lo, hi in BAD_BAND_WINDOWS_NM:
        in_window |= (wl >= lo) & (wl <= hi)
    assert 2 <= (bbl == 0).sum() <= 12
    assert np.array_equal(bbl == 0, in_window)
    assert list(np.flatnonzero(bbl == 0)) == scene["bad_bands"]
    assert all(1300 < wl[i] < 2000 for i in scene["bad_bands"])


def test_other_rasters_share_the_grid(scene):
    with rasterio.open(scene["hsi"]) as ref:
        grid = (ref.crs, ref.transform, ref.width, ref.height)
    for key, dtype in (("dsm", "float32"), ("sar", "float32"), ("labels", "uint8"), ("fractions", "float32")):
        with rasterio.open(scene[key]) as src:
            assert (src.crs, src.transform, src.width, src.height) == grid, key
            assert src.dtypes[0] == dtype
            assert src.profile["tiled"]
    with rasterio.open(scene["labels"]) as src:
        assert src.nodata == 0
        cmap = src.colormap(1)
        assert cmap[1][:3] == (0xd7, 0x30, 0x1f) and cmap[6][:3] == (0x21, 0x71, 0xb5)


def test_float_reflectance_mode(tmp_path):
    res = generate_scene(str(tmp_path), seed=2, height=48, width=48, n_bands=16, reflectance_scale=1)
    with rasterio.open(res["hsi"]) as src:
        assert src.dtypes[0] == "float32" and np.isnan(src.nodata)
        cube = src.read()
    with rasterio.open(res["labels"]) as src:
        labels = src.read(1)
    nodata = np.isnan(cube).all(axis=0)
    assert nodata.any() and not np.isnan(cube[:, ~nodata]).any()
    assert np.array_equal(nodata, labels == 0)
    good = cube[:, ~nodata]
    assert good.min() >= 0.0 and good.max() < 1.0 and 0.02 < np.median(good) < 0.5


# ---------------------------------------------------------------------------------------------------
# content


def test_class_proportions(arrays):
    _, labels, _ = arrays
    counts = np.bincount(labels.ravel(), minlength=7)[1:]
    frac = counts / counts.sum()
    assert (frac > 0.01).all(), frac
    assert frac.max() < 0.6, frac


def test_nodata_strip(arrays):
    hsi, labels, _ = arrays
    nodata = (hsi == 0).all(axis=0)
    assert nodata.any()
    assert not (hsi[:, ~nodata] == 0).any()          # valid pixels never collide with nodata
    assert np.array_equal(nodata, labels == 0)        # labels are 0 exactly there
    widths = nodata.sum(axis=1)
    assert widths.min() >= 1 and widths.max() <= 32 and len(set(widths.tolist())) > 1   # ragged
    on_left = nodata[:, 0].all()
    on_right = nodata[:, -1].all()
    assert on_left != on_right                        # a strip along one edge
    edge = 0 if on_left else labels.shape[1] - 1
    cols = np.flatnonzero(nodata.any(axis=0))
    assert abs(cols - edge).max() < 32


def test_mixed_pixels_at_edges(scene, arrays):
    hsi, labels, _ = arrays
    with rasterio.open(scene["fractions"]) as src:
        frac = src.read()
    valid = labels > 0
    top = np.nanmax(frac[:, valid], axis=0)
    assert np.allclose(np.nansum(frac, axis=0)[valid], 1.0, atol=1e-5)
    assert 0.05 < (top < 0.999).mean() < 0.7           # plenty of mixed pixels, not all mixed
    assert np.array_equal(np.nanargmax(np.nan_to_num(frac, nan=-1), axis=0)[valid] + 1, labels[valid])
    # and the mixing shows in the spectra: water pixels on the shore have more NIR than open water
    wl = np.array(scene["wavelengths_nm"])
    nir = hsi[int(np.argmin(abs(wl - 850)))].astype(float) / 10000
    water = labels == 6
    pad = np.pad(water, 1, constant_values=True)
    interior = water & pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    shore = water & ~interior
    assert nir[shore].mean() > nir[interior].mean() + 0.01


def test_dsm_heights(arrays):
    _, labels, dsm = arrays
    assert np.isfinite(dsm).all()
    ground = dsm[labels == 3]
    assert 29.0 < np.median(ground) < 41.0
    assert dsm[labels == 1].mean() > ground.mean() + 4.0
    assert dsm[labels == 4].mean() > ground.mean() + 3.0
    assert dsm.max() < 40.0 + 31.0


def test_sar_band(scene, arrays):
    _, labels, _ = arrays
    with rasterio.open(scene["sar"]) as src:
        sar = src.read(1)
    assert np.isfinite(sar).all()
    assert sar[labels == 1].mean() > sar[labels == 6].mean() + 10.0
    assert sar[labels == 4].mean() > sar[labels == 2].mean()


def test_classes_separable_but_not_trivially(scene, arrays):
    """Nearest mean on noise-free material means (one prototype per roof / pavement / ... variant),
    allowing an illumination factor so shade is not fatal: good but not perfect, because of mixed
    pixels, shade, within-class variability and noise."""
    hsi, labels, _ = arrays
    good = np.ones(hsi.shape[0], bool)
    good[scene["bad_bands"]] = False
    values, _, protos = spectra.variant_mean_spectra(scene["wavelengths_nm"], scene.get("fwhm_nm"))
    p = protos[:, good]
    valid = labels > 0
    x = hsi[good][:, valid].T.astype(np.float64) / 10000
    s = np.clip((x @ p.T) / (p * p).sum(1), 0.15, 1.3)
    d = (x * x).sum(1)[:, None] - 2 * s * (x @ p.T) + s * s * (p * p).sum(1)
    acc = (values[d.argmin(1)] == labels[valid]).mean()
    assert 0.8 < acc < 0.99, acc
    # each class is recognised on its own too
    pred = values[d.argmin(1)]
    for c in range(1, 7):
        assert (pred[labels[valid] == c] == c).mean() > 0.4, c


def test_spectra_shapes():
    wl = spectra.fine_grid()
    rng = np.random.default_rng(0)
    at = lambda s, w: s[int(np.argmin(abs(wl - w)))]  # noqa: E731
    for _ in range(20):
        _, veg = spectra.sample_spectrum(3, rng, wl, "green_grass")
        assert at(veg, 550) > at(veg, 450) and at(veg, 550) > at(veg, 675)   # green peak
        assert at(veg, 800) > 3 * at(veg, 675)                               # red edge
        assert at(veg, 1450) < at(veg, 1650) and at(veg, 1940) < at(veg, 2200)  # water bands
        _, wat = spectra.sample_spectrum(6, rng, wl)
        assert at(wat, 500) > at(wat, 900) > at(wat, 1600) and wat.max() < 0.1
        _, soil = spectra.sample_spectrum(5, rng, wl, "dry_soil")
        assert at(soil, 450) < at(soil, 700) < at(soil, 1200) < at(soil, 1700)
        _, tile = spectra.sample_spectrum(1, rng, wl, "red_tile")
        assert at(tile, 650) > 1.8 * at(tile, 520)                            # iron-oxide rise
        _, asph = spectra.sample_spectrum(2, rng, wl, "asphalt")
        assert asph.max() < 0.2 and at(asph, 450) <= at(asph, 1500)


def _library():
    lib = SHARED_DATA / "enmap_berlin"
    if not (lib / "library_berlin.sli").is_file():
        pytest.skip(f"real spectral library not available ({lib} is absent); it is only needed to check "
                    "the parametric spectra against real ones")
    hdr = (lib / "library_berlin.hdr").read_text()
    wl = np.array([float(v) for v in re.search(r"wavelength = \{([^}]*)\}", hdr).group(1).split(",")]) * 1000
    fwhm = np.array([float(v) for v in re.search(r"fwhm = \{([^}]*)\}", hdr).group(1).split(",")]) * 1000
    spec = np.fromfile(lib / "library_berlin.sli", dtype="<f8").reshape(-1, wl.size) / 10000.0
    with open(lib / "library_berlin.csv", newline="") as fh:
        level3 = [row["level_3"] for row in csv.DictReader(fh)]
    return wl, fwhm, spec, np.array(level3)


def test_parametric_spectra_are_in_the_ballpark_of_a_real_library():
    """Class means of the parametric spectra against the class means of the Berlin urban library
    (EnMAP-resampled, water-vapour bands already removed). Low vegetation, tree, soil and water must be
    nearest (spectral angle) to their own class. Roof and pavement must be nearest to one of the two
    impervious classes: the library's own roof and pavement means are only ~4 degrees apart (its pavement
    class holds red cinder courts and tartan tracks as well as asphalt and concrete)."""
    wl, fwhm, spec, level3 = _library()
    names = [c["name"] for c in DEMO_CLASSES]
    lib = np.array([spec[level3 == n].mean(0) for n in names])
    par = spectra.class_mean_spectra(wl, fwhm)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    ang = np.degrees(np.arccos(np.clip(unit(par) @ unit(lib).T, -1, 1)))
    nearest = ang.argmin(1)
    for k in (2, 3, 4, 5):
        assert nearest[k] == k, (names[k], ang[k].round(1))
    for k in (0, 1):
        assert nearest[k] in (0, 1), (names[k], ang[k].round(1))
    assert (np.diag(ang)[:5] < 8.0).all(), np.diag(ang).round(1)
    # the library's two water spectra are ~30 degrees apart (one is bright: shallow or sun-glinted
    # water), so their mean is a poor target: the parametric water must be close to one of them
    water = spec[level3 == "water"]
    to_each = np.degrees(np.arccos(np.clip(unit(par[5:6]) @ unit(water).T, -1, 1)))
    assert to_each.min() < 15.0, to_each.round(1)
    # brightness in the right range too (mean reflectance within a factor 1.6 of the library's)
    ratio = par.mean(1) / lib.mean(1)
    for k in (0, 1, 2, 3, 4):
        assert 1 / 1.6 < ratio[k] < 1.6, (names[k], ratio[k])


# ---------------------------------------------------------------------------------------------------
# sparse labels and splits


def test_sample_labels(scene, tmp_path):
    out = tmp_path / "sparse.tif"
    counts = sample_labels(scene["labels"], str(out), per_class=20, seed=1, min_distance=5)
    assert counts == {c: 20 for c in range(1, 7)}
    with rasterio.open(scene["labels"]) as src:
        dense = src.read(1)
        grid = (src.crs, src.transform)
    with rasterio.open(out) as src:
        sparse_ = src.read(1)
        assert (src.crs, src.transform) == grid and src.dtypes[0] == "uint8" and src.nodata == 0
    picked = np.argwhere(sparse_ > 0)
    assert len(picked) == 120
    assert (sparse_[sparse_ > 0] == dense[sparse_ > 0]).all()
    d = np.hypot(*(picked[:, None, :] - picked[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    assert d.min() >= 5
    again = tmp_path / "again.tif"
    sample_labels(scene["labels"], str(again), per_class=20, seed=1, min_distance=5)
    with rasterio.open(again) as src:
        assert np.array_equal(src.read(1), sparse_)


def test_split_labels_disjoint_by_blocks(scene, tmp_path):
    tr, te = tmp_path / "train.tif", tmp_path / "test.tif"
    info = split_labels(scene["labels"], str(tr), str(te), block=32, test_fraction=0.5, seed=0)
    with rasterio.open(scene["labels"]) as src:
        dense = src.read(1)
    with rasterio.open(tr) as src:
        train = src.read(1)
    with rasterio.open(te) as src:
        test = src.read(1)
    assert not ((train > 0) & (test > 0)).any()
    assert np.array_equal(np.where(train > 0, train, test), dense)      # nothing lost, nothing new
    for c in range(1, 7):
        assert (train == c).any() and (test == c).any(), c
        assert info["train"][c] == (train == c).sum() and info["test"][c] == (test == c).sum()
    # no 32 x 32 block holds both train and test pixels
    h, w = dense.shape
    for i in range(0, h, 32):
        for j in range(0, w, 32):
            assert not ((train[i:i + 32, j:j + 32] > 0).any() and (test[i:i + 32, j:j + 32] > 0).any())
    frac_test = info["test_blocks"] / (info["test_blocks"] + info["train_blocks"])
    assert 0.3 < frac_test < 0.7


def test_split_of_sparse_labels_with_buffer(scene, tmp_path):
    sparse_path = tmp_path / "sparse.tif"
    sample_labels(scene["labels"], str(sparse_path), per_class=30, seed=3, min_distance=3)
    info = split_labels(str(sparse_path), str(tmp_path / "tr.tif"), str(tmp_path / "te.tif"), block=64,
                        test_fraction=0.5, seed=1, buffer=2)
    assert sum(info["train"].values()) > 0 and sum(info["test"].values()) > 0
    assert all(info["train"][c] > 0 for c in range(1, 7))


def test_block_ids_number_blocks_row_by_row():
    ids = block_ids((5, 7), 3)
    assert ids.shape == (5, 7) and ids.dtype == np.int64
    assert ids[0, 0] == 0 and ids[0, 3] == 1 and ids[0, 6] == 2 and ids[3, 0] == 3 and ids[4, 6] == 5
    assert (ids[:3, :3] == 0).all() and len(np.unique(ids)) == 6    # partial blocks at the edges count


def test_split_label_array_is_the_raster_split(scene, tmp_path):
    tr, te = tmp_path / "train.tif", tmp_path / "test.tif"
    info = split_labels(scene["labels"], str(tr), str(te), block=24, test_fraction=0.4, seed=5, buffer=1)
    with rasterio.open(scene["labels"]) as src:
        dense = src.read(1)
    train, test, info_array = split_label_array(dense, block=24, test_fraction=0.4, seed=5, buffer=1)
    assert info_array == info and train.dtype == test.dtype == dense.dtype
    with rasterio.open(tr) as src:
        assert np.array_equal(src.read(1), train)
    with rasterio.open(te) as src:
        assert np.array_equal(src.read(1), test)
    chosen = choose_test_blocks(dense, block=24, test_fraction=0.4, seed=5)
    assert np.array_equal(chosen.ids, block_ids(dense.shape, 24))
    assert chosen.is_test[chosen.used].sum() == info["test_blocks"] and chosen.classes == list(range(1, 7))
    # test pixels lie only in test blocks, train pixels only in the others
    assert chosen.is_test[chosen.ids[test > 0]].all() and not chosen.is_test[chosen.ids[train > 0]].any()


def test_split_moves_a_block_so_that_every_class_is_on_both_sides():
    labels = np.ones((16, 16), np.uint8)
    labels[0, 0] = labels[0, 8] = 2     # class 2 in two of the four 8 x 8 blocks
    for seed in range(10):              # the shuffle alone puts both on one side for some of these seeds
        train, test, info = split_label_array(labels, block=8, test_fraction=0.5, seed=seed)
        assert info["train"][2] == info["test"][2] == 1, seed
        assert info["train"][1] > 0 and info["test"][1] > 0
        assert info["train_blocks"] + info["test_blocks"] == 4


def test_synth_does_not_import_torch():
    code = "import sys, backend.synth; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(REPO))
