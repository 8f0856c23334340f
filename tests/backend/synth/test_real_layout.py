"""Layouts with real shapes cut from real label maps (backend/synth/real_layout.py), and their rendering
through the unchanged parametric renderer."""

import os

import numpy as np
import pytest

from backend.synth import real_layout as rl
from backend.synth import spectra
from backend.synth.heights import HeightTable, shared_data_dir
from backend.synth.layout import LOW_VEG, PAVEMENT, ROOF, SOIL, TREE, WATER, Layout
from backend.synth.scene import band_centres, dominant_class, render

DATA = shared_data_dir()
needs_data = pytest.mark.skipif(DATA is None or not os.path.isdir(DATA),
                                reason="real data folder not found (../shared/data beside the checkout, or "
                                       "LANDFUSE_SHARED_DATA): needs real label maps and LiDAR")


@pytest.fixture(scope="module")
def maps():
    return rl.real_label_maps(DATA)


# ---------------------------------------------------------------------------------------------------
# without the real data


def test_class_table_maps_onto_the_generic_scheme():
    for name, spec in rl.LABEL_MAPS.items():
        assert set(spec["classes"].values()) <= {ROOF, PAVEMENT, LOW_VEG, TREE, SOIL, WATER}, name
        assert spec["pixel_m"] > 0 and spec["held_out"][0] in ("rows", "cols") and 0 < spec["held_out"][1] < 1
    raw = np.array([[0, 3, 7], [10, 11, 2]], dtype=np.uint8)
    out = rl.map_classes(raw, rl.LABEL_MAPS["muufl"]["classes"])
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 0, 0], [0, 0, LOW_VEG]]      # excluded classes become unknown


def test_fill_near_only_fills_close_to_labels():
    lab = np.zeros((30, 30), np.uint8)
    lab[10:20, 5:8] = ROOF
    lab[10:20, 9:12] = TREE
    out = rl._fill_near(lab, 2)
    assert np.array_equal(out[lab > 0], lab[lab > 0])         # labels are kept
    assert out[15, 8] in (ROOF, TREE)                         # the one-pixel gap is closed
    assert out[15, 13] == TREE and out[15, 14] == 0           # two pixels away, then nothing
    assert out[0, 0] == 0


# ---------------------------------------------------------------------------------------------------
# the real maps


@needs_data
def test_every_map_is_read_with_its_pixel_size_and_enough_classes(maps):
    assert [m["name"] for m in maps] == list(rl.LABEL_MAPS)
    assert rl.real_label_maps(DATA) is maps                   # cached
    for m in maps:
        lab, known = m["labels"], m["labelled"]
        assert lab.dtype == np.uint8 and lab.ndim == 2 and known.dtype == bool and known.shape == lab.shape
        assert lab.max() <= 6 and np.all(lab[known] > 0)
        assert m["pixel_m"] == rl.LABEL_MAPS[m["name"]]["pixel_m"]
        present = set(np.unique(lab[known]).tolist())
        assert len(present) >= 3, f"{m['name']}: only classes {present}"
        axis, start = m["held_out"]["axis"], m["held_out"]["start"]
        assert 0 < start < lab.shape[0 if axis == "rows" else 1]
        assert not lab.flags.writeable


@needs_data
def test_berlin_polygon_map_uses_the_level3_colour_table():
    import rasterio
    base = os.path.join(DATA, "enmap_berlin", "raster")
    with rasterio.open(os.path.join(base, "landcover_polygon_1m.tif")) as a, \
            rasterio.open(os.path.join(base, "landcover_map_l3.tif")) as b:
        ca, cb = a.colormap(1), b.colormap(1)
    with rasterio.open(os.path.join(base, "fraction_map_l3.tif")) as f:
        names = f.descriptions
    assert all(ca[v] == cb[v] for v in range(1, 7))
    assert names == ("roof", "pavement", "low vegetation", "tree", "soil", "water")


# ---------------------------------------------------------------------------------------------------
# layouts


def _check_layout(lay, height, width, pixel_size, factor):
    fh, fw = height * factor, width * factor
    assert isinstance(lay, Layout)
    assert lay.factor == factor and lay.fine_px == pytest.approx(pixel_size / factor)
    for name, dtype in (("cls", np.uint8), ("obj", np.int32), ("height", np.float32), ("ground", np.float32),
                        ("building", np.bool_)):
        a = getattr(lay, name)
        assert a.shape == (fh, fw), name
        assert a.dtype == dtype, name
    assert lay.cls.min() >= 1 and lay.cls.max() <= 6            # no unknown pixel reaches the renderer
    assert lay.obj.min() >= 0 and lay.obj.max() < len(lay.objects)
    obj_cls = np.array([o.cls for o in lay.objects])
    assert np.array_equal(obj_cls[lay.obj], lay.cls)
    assert set(np.unique(lay.obj).tolist()) == set(range(len(lay.objects)))   # no empty object
    assert np.array_equal(lay.building, lay.cls == ROOF)
    assert np.all(lay.height >= 0.0) and np.all(np.isfinite(lay.ground))
    for o in lay.objects:
        assert o.kind == "real" and o.variant in spectra.VARIANTS[o.cls] and 0.1 <= o.blend <= 0.5
    flat = ~np.isin(lay.cls, (ROOF, TREE))
    if flat.any():
        assert lay.height[flat].max() < 0.5


@needs_data
@pytest.mark.parametrize("height,width,pixel_size,factor,split", [
    (32, 32, 2.0, 4, "train"), (24, 40, 1.0, 2, "held_out"), (40, 24, 10.0, 2, "train"), (16, 16, 30.0, 2, "held_out")])
def test_layout_shapes_dtypes_and_objects(maps, height, width, pixel_size, factor, split):
    for seed in range(3):
        lay = rl.sample_real_layout(np.random.default_rng(seed), height, width, pixel_size, factor, split=split,
                                    data_dir=DATA)
        _check_layout(lay, height, width, pixel_size, factor)


@needs_data
def test_roofs_and_trees_stand_up(maps):
    tall = {ROOF: [], TREE: []}
    for seed in range(8):
        lay = rl.sample_real_layout(np.random.default_rng(seed), 48, 48, 2.0, 2, data_dir=DATA)
        for c in tall:
            if (lay.cls == c).any():
                tall[c].append(float(np.median(lay.height[lay.cls == c])))
    assert tall[ROOF] and np.median(tall[ROOF]) >= 3.0
    assert tall[TREE] and np.median(tall[TREE]) >= 2.0


@needs_data
def test_layout_is_deterministic_for_a_seed(maps):
    a = rl.sample_real_layout(np.random.default_rng(42), 32, 48, 2.0, 2, data_dir=DATA)
    b = rl.sample_real_layout(np.random.default_rng(42), 32, 48, 2.0, 2, data_dir=DATA)
    for name in ("cls", "obj", "height", "ground", "building"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.objects == b.objects
    others = [rl.sample_real_layout(np.random.default_rng(s), 32, 48, 2.0, 2, data_dir=DATA) for s in (43, 44)]
    assert any(not np.array_equal(a.cls, o.cls) for o in others)


@needs_data
def test_custom_height_table_is_used(maps):
    q = {c: np.full(101, 7.5) for c in (ROOF, TREE)}
    table = HeightTable(quantiles=q, sources={})
    for seed in range(10):
        lay = rl.sample_real_layout(np.random.default_rng(seed), 32, 32, 2.0, 2, data_dir=DATA, heights=table)
        for o in lay.objects:
            if o.cls in (ROOF, TREE):
                assert o.height == 7.5
        if (lay.cls == ROOF).any():
            assert np.allclose(lay.height[lay.cls == ROOF], 7.5)
            assert lay.height[lay.cls == TREE].max(initial=0.0) <= 7.5
            return
    pytest.fail("no roof in 10 layouts")


@needs_data
def test_train_and_held_out_crops_come_from_disjoint_parts(maps):
    seen = {"train": set(), "held_out": set()}
    for split in rl.SPLITS:
        for size, px in ((32, 2.0), (24, 10.0)):
            for seed in range(40):
                crop = rl.sample_real_crop(np.random.default_rng(seed), size, size, px, split, DATA)
                m = maps[crop.index]
                assert m["name"] == crop.name and crop.split == split
                axis, start = m["held_out"]["axis"], m["held_out"]["start"]
                lo, hi = crop.rows if axis == "rows" else crop.cols
                if split == "train":
                    assert hi <= start, crop
                else:
                    assert lo >= start, crop
                h, w = m["labels"].shape
                assert 0 <= crop.rows[0] < crop.rows[1] <= h and 0 <= crop.cols[0] < crop.cols[1] <= w
                win = (slice(*crop.rows), slice(*crop.cols))
                assert m["labelled"][win].mean() >= rl.MIN_LABELLED
                assert 0.5 <= crop.scale <= 1.0
                seen[split].add(crop.name)
    assert len(seen["train"]) >= 3 and len(seen["held_out"]) >= 3


@needs_data
def test_impossible_requests_are_refused(maps):
    with pytest.raises(ValueError, match="split"):
        rl.sample_real_crop(np.random.default_rng(0), 32, 32, 2.0, "test", DATA)
    with pytest.raises(ValueError, match="no real label map"):
        rl.sample_real_crop(np.random.default_rng(0), 4000, 4000, 30.0, "train", DATA)


@needs_data
def test_real_layout_renders_through_the_parametric_renderer(maps):
    h = w = 32
    lay = rl.sample_real_layout(np.random.default_rng(3), h, w, 2.0, 4, data_dir=DATA)
    centres = band_centres(6, 450.0, 2300.0)
    fwhm = spectra.band_fwhm(centres)
    rngs = [np.random.default_rng(s) for s in (1, 2, 3)]
    noisy, clean, direct = render(lay, *rngs, centres, fwhm, h, w, np.radians(170.0), np.radians(55.0))
    assert noisy.shape == clean.shape == (h, w, 6) and noisy.dtype == np.float32
    assert direct.shape == lay.cls.shape
    assert np.all(np.isfinite(noisy)) and 0.0 < clean.min() and clean.max() < 1.0
    labels, _ = dominant_class(lay.cls, lay.factor, h, w)
    assert set(np.unique(labels).tolist()) <= set(range(1, 7))
