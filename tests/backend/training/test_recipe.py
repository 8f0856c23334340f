"""The few-label recipe (backend/training/recipe.py, fewlabel.py) and the spectral path (nets/spectral.py)."""

import json

import numpy as np
import pytest
import torch

from backend import nets
from backend.training import recipe
from tests.backend.conftest import run_cli
from tests.backend.training.test_train import make_scene


def test_schedule_grows_with_the_labels_within_bounds():
    steps = [recipe.schedule_for(n).steps for n in (1, 60, 120, 1000, 100_000)]
    assert steps == sorted(steps) and steps[0] == 200 and steps[-1] == 800
    assert recipe.schedule_for(120, finetune=True).steps == recipe.schedule_for(120).steps // 2
    assert recipe.schedule_for(120, scale=recipe.CV_SCALE).steps < recipe.schedule_for(120).steps


def test_blocked_folds_keep_whole_blocks_together_and_share_the_labels():
    from backend.synth.labels import block_ids
    rng = np.random.default_rng(0)
    targets = np.full((60, 60), -1)
    idx = rng.choice(3600, 400, replace=False)
    targets.flat[idx] = rng.integers(0, 3, 400)
    fold = recipe.blocked_folds(targets, 10, 3, seed=0)
    assert ((fold >= 0) == (targets >= 0)).all()
    ids = block_ids(targets.shape, 10)
    for b in np.unique(ids[targets >= 0]):
        assert len(np.unique(fold[(ids == b) & (targets >= 0)])) == 1
    sizes = np.bincount(fold[fold >= 0])
    assert len(sizes) == 3 and sizes.min() > 0.6 * sizes.max()


@pytest.mark.parametrize("arch", ["m3amba", "bdgf"])
def test_spectral_path_is_off_for_packages_made_before_it(arch):
    params = nets.default_params(arch)
    assert params["spectral_dim"] == 0
    plain = nets.build(arch, params, [6, 1], 4)
    assert not any(k.startswith("spectral.") for k in plain.state_dict())
    with_path = nets.build(arch, dict(params, spectral_dim=16), [6, 1], 4)
    assert any(k.startswith("spectral.") for k in with_path.state_dict())
    assert with_path([torch.zeros(1, 6, 16, 16), torch.zeros(1, 1, 16, 16)]).shape == (1, 4, 16, 16)


def test_light_spectral_network_tiles_like_the_whole_image():
    torch.manual_seed(0)
    net = nets.build("spectral", {"conv1d": 4}, [12], 3).eval()
    x = np.random.default_rng(0).standard_normal((12, 40, 52)).astype(np.float32)
    with torch.no_grad():
        whole = net([torch.from_numpy(x)[None]]).argmax(1)[0].numpy()
    tiled = recipe.predict(net, [x], tile=16, halo=nets.halo("spectral"))
    assert (whole == tiled).all()


def test_train_reports_a_blocked_cross_validated_estimate_beside_a_forest(tmp_path):
    s = make_scene(tmp_path)
    model = tmp_path / "model"
    code, events, err = run_cli("train", "--hsi", s["hsi"], "--aux", s["dsm"], "--labels", s["sparse"],
                                "--arch", "spectral", "--out", model, "--epochs", "4", "--tile-size", "32",
                                "--self-training")
    assert code == 0, err
    cv = events[-1]["metrics"]["cross_validation"]
    assert cv["folds"] == 3 and cv["pixels"] == events[-1]["metrics"]["train_pixels"]
    assert 0 <= cv["recipe"]["oa"] <= 1 and 0 <= cv["random_forest"]["oa"] <= 1
    manifest = json.load(open(model / "model.json"))
    training = manifest["training"]
    assert training["recipe"] == "fewlabel" and training["steps"] + training["self_training_steps"] == 64
    assert training["self_training"] and training["pseudo_labels"] > 0 and "without_self_training" in cv
    card = open(model / "README.md").read()
    assert "cross-validation" in card and "random forest" in card and "from scratch" in card
    assert "self-training" in card and "--self-training" in manifest["training"]["command"]


def test_pseudo_labels_add_confident_field_interiors_and_never_replace_a_label():
    pred = np.zeros((20, 20), np.int64)
    pred[:, 10:] = 1                              # two fields, an edge between columns 9 and 10
    confidence = np.full(pred.shape, 0.9, np.float32)
    confidence[0:5, :] = 0.3                      # unsure rows: never taken
    targets = np.full(pred.shape, -1)
    targets[10, 2] = 0
    targets[10, 15] = 1
    targets[12, 5] = 1                            # a real label the map disagrees with stays as it is
    out = recipe.pseudo_labels(pred, confidence, targets, per_label=4)
    added = (out >= 0) & (targets < 0)
    assert (out[targets >= 0] == targets[targets >= 0]).all()
    assert added.sum() == 4 + 8                   # per_label × labels of each class: 1 of class 0, 2 of class 1
    assert (out[added] == pred[added]).all()
    assert not added[:, 9:11].any() and not added[0:5].any()


def test_self_training_fits_again_on_the_real_and_pseudo_labels():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 24, 24)).astype(np.float32)
    x[:3, :, 12:] += 3                            # class 1 on the right half: easy to map
    targets = np.full((24, 24), -1)
    targets[rng.integers(0, 24, 6), rng.integers(0, 12, 6)] = 0
    targets[rng.integers(0, 24, 6), rng.integers(12, 24, 6)] = 1
    net = nets.build("spectral", {"context_layers": 1}, [6], 2)
    schedule = recipe.Schedule(60, 3e-3, 1e-2)
    recipe.fit(net, [x], targets, schedule, seed=0)
    done = recipe.self_train(net, [x], targets, schedule, seed=0, per_label=5)
    assert done["steps"] == int(60 * recipe.SELF_TRAIN_SHARE) and 0 < done["pseudo_labels"] <= 5 * (targets >= 0).sum()
    assert (recipe.predict(net, [x])[:, 14:] == 1).mean() > 0.9
