import copy
import json

import pytest

from backend import manifest as mf
from backend.protocol import LandFuseError

GOOD = {
    "format": "landfuse-model", "format_version": 1, "id": "m", "name": "m",
    "architecture": {"name": "tiny", "params": {}},
    "modalities": [{"name": "hsi", "kind": "hsi", "bands": 2, "mean": [0, 0], "std": [1, 1]},
                   {"name": "dsm", "kind": "aux", "bands": 1, "mean": [0], "std": [1]}],
    "classes": [{"value": 1, "name": "roof", "color": "#ff0000"}],
    "halo": 8, "weights": {"file": "weights.safetensors", "sha256": "a" * 64},
}


def test_good_manifest_validates_and_summarizes():
    mf.validate_manifest(copy.deepcopy(GOOD))
    s = mf.summarize(GOOD)
    assert s["modalities"][0]["bands"] == 2 and s["classes"][0]["name"] == "roof"


@pytest.mark.parametrize("mutate, words", [
    (lambda m: m.update(format="x"), "format"),
    (lambda m: m.update(format_version=7), "format_version"),
    (lambda m: m["modalities"][0].update(mean=[0]), "mean"),
    (lambda m: m["modalities"][0].update(std=[1, 0]), "std"),
    (lambda m: m["modalities"][0].update(kind="aux"), "first modality"),
    (lambda m: m["classes"].append({"value": 1, "name": "x", "color": "#000000"}), "duplicate"),
    (lambda m: m["classes"][0].update(value=0), "nodata"),
    (lambda m: m["classes"][0].update(color="red"), "colour"),
    (lambda m: m["weights"].update(file="../w.safetensors"), "inside"),
    (lambda m: m["weights"].update(sha256="xyz"), "sha256"),
    (lambda m: m.pop("classes"), "classes"),
    (lambda m: m["modalities"][0].update(used_bands=[1, 9], source_bands=3), "used_bands"),
])
def test_each_defect_is_reported_as_bad_model(mutate, words):
    m = copy.deepcopy(GOOD)
    mutate(m)
    with pytest.raises(LandFuseError) as err:
        mf.validate_manifest(m)
    assert err.value.code == "bad_model"
    assert words in err.value.message


def test_read_manifest_missing_folder_file_and_bad_json(tmp_path):
    with pytest.raises(LandFuseError) as err:
        mf.read_manifest(str(tmp_path / "nope"))
    assert err.value.code == "model_not_found"
    with pytest.raises(LandFuseError) as err:
        mf.read_manifest(str(tmp_path))
    assert err.value.code == "bad_model" and "model.json" in err.value.message
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(LandFuseError) as err:
        mf.read_manifest(str(tmp_path))
    assert err.value.code == "bad_model" and "JSON" in err.value.message
    (tmp_path / "model.json").write_text(json.dumps(GOOD))
    assert mf.read_manifest(str(tmp_path))["id"] == "m"


def test_manifest_module_does_not_import_torch():
    import subprocess
    import sys
    code = "import sys, backend.manifest, backend.protocol; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=mf.__file__.rsplit("/backend/", 1)[0]).stdout.strip()
    assert out == "False False"
