"""Issue #16, silently wrong maps: partial aux coverage, decimal class fields, degenerate spectra and
the reflectance scale guess. Each case checks the map (or the typed error) and that the inputs are
byte-identical afterwards."""

import hashlib
import json
import os

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from backend.engine import canonical, modalities
from backend.engine.classify import classify
from backend.io import rasters
from backend.io.labels import load_labels
from backend.protocol import LandFuseError
from tests.backend.conftest import REPO, SHARED_DATA, make_package, needs_shared, write_raster

GENERIC = os.path.join(REPO, "models", "generic-landcover")


class Recorder:
    def __init__(self):
        self.events = []

    def log(self, message, level="info"):
        self.events.append({"type": "log", "level": level, "message": message})

    def progress(self, stage, done, total):
        pass

    def text(self):
        return " ".join(e["message"] for e in self.events)


def _digests(*paths):
    return {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths}


# ---- 5: an aux raster that covers part of the HSI, without a nodata value --------------------------

@pytest.fixture
def half_dsm(tmp_path):
    rng = np.random.default_rng(0)
    hsi = write_raster(tmp_path / "hsi.tif", rng.normal(0.2, 0.05, (4, 60, 60)).astype(np.float32))
    # 2 m pixels from x = 389000: the DSM covers the west 30 columns only, elevations ~300 m, no nodata
    dsm = write_raster(tmp_path / "dsm.tif", rng.normal(300, 2, (60, 30)).astype(np.float32))
    return hsi, dsm


def test_uncovered_aux_pixels_are_invalid_and_ground_level_comes_from_covered_ones(half_dsm):
    hsi, dsm = half_dsm
    with modalities.open_modalities(hsi, [dsm]) as (_, readers):
        aux = readers[1]
        _, valid = rasters.read_window(aux.ds, [1], Window(0, 0, 60, 60))
        assert valid[0][:, :29].all() and not valid[0][:, 31:].any()
        assert 290 < rasters.low_level(aux.ds, [1])[0] < 300     # never 0 from the uncovered half


def test_zero_filled_corners_of_a_warped_dsm_are_not_height_zero(tmp_path):
    rng = np.random.default_rng(1)
    hsi = write_raster(tmp_path / "hsi.tif", rng.normal(0.2, 0.05, (4, 40, 40)).astype(np.float32))
    dem = rng.normal(300, 2, (40, 40)).astype(np.float32)
    dem[:10, :10] = 0.0                                        # gdalwarp's fill, no nodata declared
    dsm = write_raster(tmp_path / "dsm.tif", dem, transform=from_origin(389000.5, 5819000.5, 2, 2))
    events = Recorder()
    with modalities.open_modalities(hsi, [dsm], None, events.log) as (_, readers):
        assert rasters.low_level(readers[1].ds, [1])[0] > 290
    assert "zero" in events.text()
    # a height model relative to the ground (values near 0) keeps its zeros
    ndsm = rng.uniform(0, 20, (40, 40)).astype(np.float32)
    ndsm[:10, :10] = 0.0
    with rasterio.open(write_raster(tmp_path / "ndsm.tif", ndsm)) as ds:
        assert not rasters.zero_fill_suspected(ds)


def test_classify_gives_nodata_where_a_required_aux_is_missing(half_dsm, tmp_path):
    hsi, dsm = half_dsm
    model = make_package(tmp_path / "m", [4, 1], mean=0.2, std=0.05)
    before = _digests(hsi, dsm)
    classify(hsi, [dsm], model, str(tmp_path / "o.tif"), Recorder(), window=32)
    out = rasterio.open(tmp_path / "o.tif").read(1)
    assert (out[:, :29] > 0).all() and (out[:, 31:] == 0).all()
    assert _digests(hsi, dsm) == before


def test_an_optional_aux_that_is_missing_reads_as_absent_not_as_zero(half_dsm, tmp_path):
    hsi, dsm = half_dsm
    model = make_package(tmp_path / "m", [4, 2], mean=0.2, std=0.05)
    manifest = json.load(open(os.path.join(model, "model.json")))
    manifest["modalities"][1].update(bands=1, mean=[0.0], std=[1.0], optional=True, scene_offset="p2")
    json.dump(manifest, open(os.path.join(model, "model.json"), "w"))
    with modalities.open_modalities(hsi, [dsm], manifest["modalities"]) as (_, readers):
        block, valid = readers[1].read(Window(0, 0, 60, 60))
    assert valid.all()
    assert (block[1][:, :29] == 1).all() and (block[1][:, 31:] == 0).all()     # presence channel
    assert (block[0][:, 31:] == 0).all() and np.abs(block[0][:, :29]).mean() < 10  # heights above ground


# ---- 6: decimal class fields are class numbers ---------------------------------------------------------

def _points(path, values, field="class"):
    import pyogrio.raw
    import shapely
    geoms = np.array([shapely.to_wkb(shapely.box(389000 + 10 * i, 5818900, 389008 + 10 * i, 5818908))
                      for i in range(len(values))], dtype=object)
    pyogrio.raw.write(str(path), geoms, [np.asarray(values)], fields=[field], geometry_type="Polygon",
                      crs="EPSG:32633", driver="GPKG")
    return str(path)


def test_integral_floats_in_a_class_field_are_class_values(tmp_path):
    hsi = write_raster(tmp_path / "h.tif", np.zeros((2, 60, 60), np.float32))
    gpkg = _points(tmp_path / "l.gpkg", np.array([1.0, 2.0, 4.0, 4.0]))
    before = _digests(hsi, gpkg)
    with rasterio.open(hsi) as ref:
        labels, classes = load_labels(gpkg, ref)
        assert [c["value"] for c in classes] == [1, 2, 4]
        assert set(np.unique(labels)) == {0, 1, 2, 4}
        six = [{"value": v, "name": f"c{v}", "color": "#112233"} for v in range(1, 7)]
        _, with_table = load_labels(gpkg, ref, class_table=six)
        assert [c["name"] for c in with_table] == ["c1", "c2", "c4"]       # no new classes
        text = _points(tmp_path / "t.gpkg", np.array(["1.0", "2", "4.0", "4"], dtype=object))
        assert [c["value"] for c in load_labels(text, ref)[1]] == [1, 2, 4]
        with pytest.raises(LandFuseError) as err:
            load_labels(_points(tmp_path / "f.gpkg", np.array([1.5, 2.0])), ref)
        assert err.value.code == "bad_labels"
    assert _digests(hsi, gpkg) == before


def test_more_than_255_class_names_is_bad_labels(tmp_path):
    hsi = write_raster(tmp_path / "h.tif", np.zeros((1, 20, 20), np.float32))
    names = np.array([f"name{i}" for i in range(300)], dtype=object)
    gpkg = _points(tmp_path / "l.gpkg", names)
    with rasterio.open(hsi) as ref, pytest.raises(LandFuseError) as err:
        load_labels(gpkg, ref)
    assert err.value.code == "bad_labels"


# ---- 7: degenerate spectra --------------------------------------------------------------------------------

def _generic_scene(tmp_path, name, data, wavelengths):
    tags = {b + 1: {"wavelength": str(w), "wavelength_units": "nm"} for b, w in enumerate(wavelengths)}
    return write_raster(tmp_path / name, data.astype(np.float32), band_tags=tags, nodata=-9999.0)


@pytest.mark.skipif(not os.path.isdir(GENERIC), reason="the bundled generic model is not in models/")
@pytest.mark.parametrize("case", ["one_band", "all_550", "nir_nan_everywhere"])
def test_a_spectral_coverage_too_poor_to_classify_is_a_typed_error(tmp_path, case):
    rng = np.random.default_rng(0)
    if case == "one_band":
        wl, data = [550.0], rng.uniform(0.05, 0.3, (1, 32, 32))
    elif case == "all_550":
        wl, data = [550.0] * 20, rng.uniform(0.05, 0.3, (20, 32, 32))
    else:
        wl = list(np.linspace(420, 980, 40))
        data = rng.uniform(0.05, 0.3, (40, 32, 32))
        data[np.asarray(wl) > 700] = np.nan
    hsi = _generic_scene(tmp_path, "h.tif", data, wl)
    before = _digests(hsi)
    with pytest.raises(LandFuseError) as err:
        classify(hsi, [], GENERIC, str(tmp_path / "o.tif"), Recorder())
    assert err.value.code == "band_mismatch" and "too poor" in err.value.message
    assert not os.path.exists(tmp_path / "o.tif") and _digests(hsi) == before


@pytest.mark.skipif(not os.path.isdir(GENERIC), reason="the bundled generic model is not in models/")
def test_pixels_missing_the_nir_in_a_patch_are_nodata(tmp_path):
    rng = np.random.default_rng(0)
    wl = list(np.linspace(420, 980, 40))
    data = rng.uniform(0.05, 0.3, (40, 48, 48))
    data[np.asarray(wl) > 700, :16, :16] = np.nan
    hsi = _generic_scene(tmp_path, "h.tif", data, wl)
    classify(hsi, [], GENERIC, str(tmp_path / "o.tif"), Recorder())
    out = rasterio.open(tmp_path / "o.tif").read(1)
    assert (out[:16, :16] == 0).all() and (out[16:, :] > 0).all()


def test_masked_band_features_renormalise_and_flag_lost_bins():
    wl = np.arange(420.0, 990.0, 10.0)          # 10 nm bands: two per canonical bin
    weights, covered = canonical.resampling(wl)
    data = np.full((wl.size, 2, 2), 0.3, np.float32)
    valid = np.ones(data.shape, bool)
    valid[wl % 20 == 10, 0, 0] = False          # every band between two bin centres missing: still measured
    valid[wl > 700, 1, 1] = False               # the NIR missing: not measured
    data[~valid] = 0.0
    feats, ok = canonical.band_features_masked(data, valid, weights, covered)
    full = canonical.band_features(np.full((wl.size, 1, 1), 0.3, np.float32), weights, covered)[:, 0, 0]
    assert ok.tolist() == [[True, True], [True, False]]
    assert np.allclose(feats[:, 0, 1], full, atol=1e-5) and np.allclose(feats[:, 0, 0], full, atol=1e-4)
    assert canonical.coverage_problem(covered) is None
    assert "near infrared" in canonical.coverage_problem(covered & (canonical.GRID_NM < 700))


# ---- 8: the reflectance scale: declared first, then a guess brightness cannot fool ------------------------

@pytest.fixture
def scale_model(tmp_path):
    model = make_package(tmp_path / "m", [4], mean=0.2, std=0.1)
    manifest = json.load(open(os.path.join(model, "model.json")))
    manifest["modalities"][0]["typical_magnitude"] = 0.2
    json.dump(manifest, open(os.path.join(model, "model.json"), "w"))
    return manifest["modalities"][0]


@pytest.mark.parametrize("brightness", [0.3, 1.0, 2.5])
def test_a_dark_or_bright_x10000_scene_is_scaled_by_1e_4(tmp_path, scale_model, brightness):
    rng = np.random.default_rng(0)
    refl = rng.uniform(0.05, 0.4, (4, 32, 32)) * brightness
    path = write_raster(tmp_path / "x.tif", np.round(refl * 10000), dtype="uint16")
    events = Recorder()
    with rasterio.open(path) as ds:
        scale = modalities.detect_scale(scale_model, ds, [1, 2, 3, 4], "hsi", events.log)
    assert scale == pytest.approx(1e-4)
    assert "guessed" in events.text() or "guess" in events.text()


def test_a_dark_x1_scene_is_left_alone(tmp_path, scale_model):
    rng = np.random.default_rng(0)
    path = write_raster(tmp_path / "x.tif", rng.uniform(0.005, 0.04, (4, 32, 32)).astype(np.float32))
    with rasterio.open(path) as ds:
        assert modalities.detect_scale(scale_model, ds, [1, 2, 3, 4], "hsi", Recorder().log) == 1.0


def test_a_declared_scale_wins_over_the_guess(tmp_path, scale_model):
    rng = np.random.default_rng(0)
    path = write_raster(tmp_path / "x.tif", np.round(rng.uniform(0.05, 0.4, (4, 32, 32)) * 100), dtype="uint16")
    with rasterio.open(path, "r+") as ds:       # stored ×100, but the file says ×1/400 (an odd product)
        ds.scales = [0.0025] * 4
    events = Recorder()
    with rasterio.open(path) as ds:
        assert modalities.detect_scale(scale_model, ds, [1, 2, 3, 4], "hsi", events.log) == pytest.approx(0.0025)
    assert "declares" in events.text()


def test_an_envi_reflectance_scale_factor_is_used(tmp_path, scale_model):
    rng = np.random.default_rng(0)
    path = str(tmp_path / "e.img")
    data = np.round(rng.uniform(0.01, 0.05, (4, 16, 16)) * 10000).astype(np.int16)   # dark, ×10000
    with rasterio.open(path, "w", driver="ENVI", width=16, height=16, count=4, dtype="int16") as dst:
        dst.write(data)
    with open(str(tmp_path / "e.hdr"), "a") as f:
        f.write("reflectance scale factor = 10000\n")
    before = _digests(path, str(tmp_path / "e.hdr"))
    events = Recorder()
    with rasterio.open(path) as ds:
        assert modalities.detect_scale(scale_model, ds, [1, 2, 3, 4], "hsi", events.log) == pytest.approx(1e-4)
    assert "ENVI header" in events.text()
    assert _digests(path, str(tmp_path / "e.hdr")) == before


def test_a_scene_model_refuses_a_raster_missing_most_of_its_bands(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(0, 1, (6, 20, 20)).astype(np.float32)
    data[1:5] = -9999.0                                         # 4 of 6 bands empty
    hsi = write_raster(tmp_path / "h.tif", data, nodata=-9999.0)
    model = make_package(tmp_path / "m", [6])
    with pytest.raises(LandFuseError) as err:
        classify(hsi, [], model, str(tmp_path / "o.tif"), Recorder())
    assert err.value.code == "band_mismatch" and not os.path.exists(tmp_path / "o.tif")


def test_a_raster_classified_with_the_model_trained_on_it_is_not_rescaled(tmp_path, scale_model):
    """Raw DN whose median (~120) reads as ×100 but whose 99th percentile (~1000) reads as ×10000."""
    rng = np.random.default_rng(0)
    values = np.round(rng.lognormal(np.log(120), 0.9, (4, 32, 32)))
    path = write_raster(tmp_path / "dn.tif", values, dtype="uint16")
    with rasterio.open(path) as ds:
        spec = dict(scale_model, typical_magnitude=rasters.typical_magnitude(ds, [1, 2, 3, 4]))
        assert modalities.detect_scale(spec, ds, [1, 2, 3, 4], "hsi", Recorder().log) == 1.0


@pytest.mark.skipif(not os.path.isdir(GENERIC), reason="the bundled generic model is not in models/")
@needs_shared
def test_the_generic_model_says_when_an_image_looks_like_at_sensor_radiance(tmp_path):
    from backend.evaluation import datasets
    shared = SHARED_DATA
    radiance = datasets.prepare("indian_pines_crop", os.path.join(shared, "indian_pines_crop"), str(tmp_path / "ip"),
                                seed=0, strict=False)["hsi"]        # AVIRIS at-sensor radiance, exact centres
    events = Recorder()
    classify(radiance, [], GENERIC, str(tmp_path / "ip.tif"), events)
    warnings = [e["message"] for e in events.events if e["level"] == "warning"]
    assert any("at-sensor radiance" in w and "oxygen 760 nm" in w for w in warnings), warnings
    assert os.path.isfile(tmp_path / "ip.tif")                       # a warning, the map is still made
    wavelengths = [float(line.split()[0]) for line in open(os.path.join(REPO, "resources", "wavelengths",
                                                                        "casi1500_dfc2018_48.txt"))
                   if line.strip() and not line.startswith("#")]
    events = Recorder()
    classify(os.path.join(shared, "dfc2018_hsi_tile", "testHSI.tif"), [], GENERIC, str(tmp_path / "tile.tif"), events,
             wavelengths=wavelengths)                                # surface reflectance
    assert "radiance" not in events.text()
