"""Issue #16, untrusted model packages: model.json is checked against the weights' header and sane
bounds before anything is built; NaN/Inf statistics or weights are refused; inputs stay intact."""

import hashlib
import json
import os
import struct
import time

import pytest

from backend.engine import package
from backend.protocol import LandFuseError
from tests.backend.conftest import make_package


def _digest(folder):
    return {n: hashlib.sha256(open(os.path.join(folder, n), "rb").read()).hexdigest() for n in sorted(os.listdir(folder))}


def _edit_manifest(model, change):
    path = os.path.join(model, "model.json")
    with open(path) as f:
        manifest = json.load(f)
    change(manifest)
    with open(path, "w") as f:
        json.dump(manifest, f)   # allow_nan: writes NaN / Infinity as Python's json reads them


def _load_refused(model):
    before = _digest(model)
    with pytest.raises(LandFuseError) as err:
        package.load_model(model)
    assert err.value.code == "bad_model", err.value.message
    assert _digest(model) == before
    return err.value


@pytest.mark.parametrize("dim", [2000, 10 ** 7])
def test_a_huge_dim_is_refused_before_any_allocation(tmp_path, dim):
    model = make_package(tmp_path / "m", [10], arch="tiny")
    _edit_manifest(model, lambda m: m["architecture"]["params"].update(dim=dim))
    started = time.perf_counter()
    err = _load_refused(model)
    assert any(w in err.message for w in ("do not fit", "out of bounds", "parameters"))
    assert len(err.message) < 800 and time.perf_counter() - started < 30


def test_wrong_band_count_or_class_count_is_refused_from_the_header(tmp_path):
    model = make_package(tmp_path / "m", [10], arch="tiny")
    _edit_manifest(model, lambda m: m["modalities"][0].update(bands=12, mean=[0] * 12, std=[1] * 12))
    _load_refused(model)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("key", ["mean", "std"])
def test_nan_or_inf_statistics_are_refused(tmp_path, key, value):
    model = make_package(tmp_path / "m", [4], arch="tiny")
    _edit_manifest(model, lambda m: m["modalities"][0][key].__setitem__(1, value))
    _load_refused(model)


def test_nan_weights_are_refused(tmp_path):
    import safetensors.torch
    import torch

    from backend import nets
    net = nets.build("tiny", {}, [4], 3)
    state = net.state_dict()
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first][...] = float("nan")
    model = make_package(tmp_path / "m", [4], arch="tiny")
    weights = os.path.join(model, "weights.safetensors")
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, weights)
    _edit_manifest(model, lambda m: m["weights"].update(sha256=package.sha256_file(weights)))
    err = _load_refused(model)
    assert "NaN" in err.message
    del torch


def test_a_lying_safetensors_header_is_refused(tmp_path):
    model = make_package(tmp_path / "m", [4], arch="tiny")
    weights = os.path.join(model, "weights.safetensors")
    with open(weights, "wb") as f:
        f.write(struct.pack("<Q", 10 ** 12) + b"{}")
    _edit_manifest(model, lambda m: m["weights"].update(sha256=package.sha256_file(weights)))
    _load_refused(model)


def test_a_deeply_nested_model_json_is_bad_model(tmp_path):
    model = make_package(tmp_path / "m", [4], arch="tiny")
    with open(os.path.join(model, "model.json"), "w") as f:
        f.write("[" * 100_000 + "]" * 100_000)
    with pytest.raises(LandFuseError) as err:
        package.load_manifest_checked(model)
    assert err.value.code == "bad_model"
