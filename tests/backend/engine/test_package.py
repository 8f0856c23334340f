import json
import os
import shutil

import pytest

from backend.engine import package
from backend.protocol import LandFuseError
from tests.backend.conftest import make_package


def test_saved_package_loads_with_matching_hash(tmp_path):
    model = make_package(tmp_path / "m", [3, 1])
    manifest = json.load(open(os.path.join(model, "model.json")))
    assert manifest["weights"]["sha256"] == package.sha256_file(os.path.join(model, "weights.safetensors"))
    loaded, net = package.load_model(model)
    assert not net.training and loaded["id"] == "test"
    assert os.path.isfile(os.path.join(model, "README.md"))


def test_missing_weights_file(tmp_path):
    model = make_package(tmp_path / "m", [3])
    os.remove(os.path.join(model, "weights.safetensors"))
    with pytest.raises(LandFuseError) as err:
        package.load_model(model)
    assert err.value.code == "bad_model" and "weights" in err.value.message


def test_hash_mismatch(tmp_path):
    model = make_package(tmp_path / "m", [3])
    with open(os.path.join(model, "weights.safetensors"), "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(LandFuseError) as err:
        package.load_model(model)
    assert err.value.code == "model_hash_mismatch"


def test_pickle_weights_are_refused_by_name_and_by_content(tmp_path):
    model = make_package(tmp_path / "m", [3])
    # A .pt file offered as the weights in the manifest.
    manifest = json.load(open(os.path.join(model, "model.json")))
    shutil.copy(os.path.join(model, "weights.safetensors"), os.path.join(model, "weights.pt"))
    manifest["weights"]["file"] = "weights.pt"
    json.dump(manifest, open(os.path.join(model, "model.json"), "w"))
    with pytest.raises(LandFuseError) as err:
        package.load_model(model)
    assert err.value.code == "unsafe_weights"
    # A pickle renamed to weights.safetensors: refused from its first bytes, never unpickled.
    manifest["weights"]["file"] = "weights.safetensors"
    json.dump(manifest, open(os.path.join(model, "model.json"), "w"))
    with open(os.path.join(model, "weights.safetensors"), "wb") as f:
        f.write(b"\x80\x04\x95" + b"\x00" * 64)
    with pytest.raises(LandFuseError) as err:
        package.load_model(model)
    assert err.value.code == "unsafe_weights"


def test_folder_with_only_a_pt_file(tmp_path):
    model = make_package(tmp_path / "m", [3])
    os.rename(os.path.join(model, "weights.safetensors"), os.path.join(model, "model.pt"))
    with pytest.raises(LandFuseError) as err:
        package.load_model(model)
    assert err.value.code == "unsafe_weights"


def test_weights_that_do_not_fit_the_architecture(tmp_path):
    small = make_package(tmp_path / "small", [3])
    big = make_package(tmp_path / "big", [5])
    shutil.copy(os.path.join(big, "weights.safetensors"), os.path.join(small, "weights.safetensors"))
    manifest = json.load(open(os.path.join(small, "model.json")))
    manifest["weights"]["sha256"] = package.sha256_file(os.path.join(small, "weights.safetensors"))
    json.dump(manifest, open(os.path.join(small, "model.json"), "w"))
    with pytest.raises(LandFuseError) as err:
        package.load_model(small)
    assert err.value.code == "bad_model" and "architecture" in err.value.message


def test_truncated_safetensors(tmp_path):
    model = make_package(tmp_path / "m", [3])
    path = os.path.join(model, "weights.safetensors")
    data = open(path, "rb").read()[:40]
    open(path, "wb").write(data)
    manifest = json.load(open(os.path.join(model, "model.json")))
    manifest["weights"]["sha256"] = package.sha256_file(path)
    json.dump(manifest, open(os.path.join(model, "model.json"), "w"))
    with pytest.raises(LandFuseError) as err:
        package.load_model(model)
    assert err.value.code == "bad_model"
