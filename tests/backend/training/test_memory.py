"""A fine-tune remembers the base model's classes that no label uses (backend.training.memory)."""

import json

import numpy as np
import torch

from backend.training.memory import classes_to_remember, unlabelled_class_memory
from tests.backend.conftest import run_cli, write_raster
from tests.backend.training.test_train import make_scene


class _Fixed(torch.nn.Module):
    """A 'base model' whose logits are its input (so the test chooses the base's probabilities)."""

    def forward(self, xs):
        return xs[0]


def test_only_classes_the_base_knew_no_label_uses_and_it_does_not_confuse_are_remembered():
    counts = np.array([20, 0, 0, 5, 0])
    base_index = [0, 1, None, 2, 3]            # class 2 is new to the base
    # The base calls 3 of the 25 labelled pixels its class 3 (12 %): confused; its class 1 once (4 %): kept.
    base_on_labels = np.array([0] * 18 + [2] * 3 + [3] * 3 + [1])
    assert classes_to_remember(base_index, counts, base_on_labels) == ([1], [4])
    assert unlabelled_class_memory(_Fixed(), base_index, [1], 0.0, "cpu") is None
    assert unlabelled_class_memory(_Fixed(), base_index, [], 1.0, "cpu") is None


def test_the_labelled_classes_share_their_probability_freely():
    # Base classes 0..2; the fine-tune keeps them and labels 0 and 1 only, so class 2 is remembered.
    loss = unlabelled_class_memory(_Fixed(), [0, 1, 2], [2], 1.0, "cpu")
    base_logits = torch.tensor([[2.0, 0.0, 1.0]]).reshape(1, 3, 1, 1)
    inputs = [base_logits]
    same_bucket = torch.tensor([[0.0, 2.0, 1.0]]).reshape(1, 3, 1, 1)   # labelled classes swapped
    assert torch.isclose(loss(base_logits, inputs), loss(same_bucket, inputs))
    forgets = torch.tensor([[2.0, 0.0, -6.0]]).reshape(1, 3, 1, 1)     # class 2 faded away
    assert loss(forgets, inputs) > loss(base_logits, inputs) + 0.1
    # The gradient pushes the faded class back up.
    forgets.requires_grad_(True)
    loss(forgets, inputs).backward()
    assert forgets.grad[0, 2, 0, 0] < 0


def test_finetune_on_some_classes_keeps_the_others_and_says_so(tmp_path):
    s = make_scene(tmp_path)
    base = tmp_path / "base"
    code, _, err = run_cli("train", "--hsi", s["hsi"], "--aux", s["dsm"], "--labels", s["sparse"], "--arch", "tiny",
                           "--recipe", "legacy", "--out", base, "--epochs", "6", "--tile-size", "32")
    assert code == 0, err
    with __import__("rasterio").open(s["sparse"]) as src:
        sparse = src.read(1)
    only_two = write_raster(tmp_path / "two.tif", np.where(sparse <= 2, sparse, 0).astype(np.uint8),
                            dtype="uint8", nodata=0)
    recall = {}
    for weight in ("0", "1"):
        tuned = tmp_path / f"tuned{weight}"
        code, _, err = run_cli("finetune", "--model", base, "--hsi", s["hsi"], "--aux", s["dsm"], "--labels", only_two,
                               "--out", tuned, "--epochs", "8", "--tile-size", "32", "--remember-unlabelled", weight)
        assert code == 0, err
        training = json.load(open(tuned / "model.json"))["training"]
        out = tmp_path / f"map{weight}.tif"
        assert run_cli("classify", "--hsi", s["hsi"], "--aux", s["dsm"], "--model", tuned, "--out", out)[0] == 0
        report = run_cli("evaluate", "--prediction", out, "--reference", s["ref"])[1][-1]["metrics"]
        recall[weight] = [report["per_class"][f"class_{v}"]["recall"] for v in (3, 4)]
        if weight == "1":
            assert training["remembered_from_base"] == {"weight": 1.0, "classes": ["class_3", "class_4"]}
            assert "kept as the base model base predicts them" in open(tuned / "README.md").read()
        else:
            assert "remembered_from_base" not in training
    assert min(recall["1"]) > 0.5, recall
    assert sum(recall["1"]) > sum(recall["0"]) + 0.3, recall


def test_remember_unlabelled_is_refused_where_it_cannot_apply(tmp_path):
    s = make_scene(tmp_path)
    common = ["--hsi", s["hsi"], "--labels", s["sparse"], "--out", tmp_path / "m"]
    for argv, says in ((["finetune", "--model", "models/demo-tiny", "--remember-unlabelled", "-1"], "between 0 and 100"),
                       (["finetune", "--model", "models/demo-tiny", "--remember-unlabelled", "nan"], "between 0 and 100"),
                       (["finetune", "--model", "models/demo-tiny", "--recipe", "fewlabel",
                         "--remember-unlabelled", "1"], "legacy loop")):
        code, events, _ = run_cli(*argv, *common)
        assert code == 2 and events[-1]["code"] == "bad_arguments" and says in events[-1]["message"], events[-1]
        assert not (tmp_path / "m").exists()
