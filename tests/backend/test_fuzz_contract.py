"""`make fuzz` in miniature: a few seeded damaged-file cases through the real commands, so the
harness itself (and the contract it checks) cannot rot between fuzz runs."""

import importlib.util
import os

from tests.backend.conftest import REPO


def _fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_contract", os.path.join(REPO, "scripts", "fuzz_contract.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_few_damaged_files_keep_the_protocol_contract():
    done, failures = _fuzz().run(seed=5, cases=3, budget_s=240, log=lambda *a: None)
    assert done >= 1 and failures == []


def test_the_contract_check_catches_an_internal_error(tmp_path):
    fuzz = _fuzz()
    problems = fuzz.check_case(["info", "--model", str(tmp_path / "missing")], [], [])
    assert problems == []                     # model_not_found: a typed error
    out = tmp_path / "o.json"
    out.write_text("{}")
    problems = fuzz.check_case(["info", "--model", str(tmp_path / "missing")], [], [str(out)])
    assert any("left outputs" in p for p in problems)
