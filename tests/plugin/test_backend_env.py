"""Finding the backend interpreter, the stamp, the install plan, and a real (small) install run."""

import os
import sys

import pytest
from conftest import make_executable, wait_for
from landfuse.qgis_plugin import backend_env
from landfuse.qgis_plugin.backend_env import (
    CPU,
    CUDA,
    EnvInstallTask,
    Step,
    env_state,
    find_backend_python,
    install_plan,
    read_stamp,
    requirements_hash,
    venv_python,
    write_stamp,
)
from qgis.core import QgsApplication


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv(backend_env.ENV_VAR, raising=False)
    backend_env.set_configured_python("")
    monkeypatch.setattr(backend_env, "profile_venv_dir", lambda: str(tmp_path / "profile" / "landfuse" / "venv"))
    yield
    backend_env.set_configured_python("")


def test_search_order(no_env, tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    assert find_backend_python(str(root)) == (None, "not found")
    profile_py = venv_python(backend_env.profile_venv_dir())
    os.makedirs(os.path.dirname(profile_py))
    make_executable(profile_py, "#!/bin/sh\n")
    assert find_backend_python(str(root))[0] == profile_py
    bundled = venv_python(str(root / ".venv"))
    os.makedirs(os.path.dirname(bundled))
    make_executable(bundled, "#!/bin/sh\n")
    assert find_backend_python(str(root))[0] == bundled
    chosen = make_executable(tmp_path / "chosen", "#!/bin/sh\n")
    backend_env.set_configured_python(chosen)
    assert find_backend_python(str(root)) == (chosen, "LandFuse setting")
    override = make_executable(tmp_path / "override", "#!/bin/sh\n")
    monkeypatch.setenv(backend_env.ENV_VAR, override)
    assert find_backend_python(str(root))[0] == override
    # a setting pointing at a missing file is skipped, not used
    monkeypatch.delenv(backend_env.ENV_VAR)
    backend_env.set_configured_python(str(tmp_path / "gone"))
    assert find_backend_python(str(root))[0] == bundled


def test_stamp_marks_stale_when_requirements_change(tmp_path, no_env):
    root = tmp_path / "root"
    (root / "backend").mkdir(parents=True)
    req = root / "backend" / "requirements.txt"
    req.write_text("torch==2.13.0\nnumpy\n")
    (root / "backend" / "requirements-gpu.txt").write_text("mamba-ssm\n")
    venv = tmp_path / "venv"
    py = venv_python(str(venv))
    os.makedirs(os.path.dirname(py))
    make_executable(py, "#!/bin/sh\n")
    assert env_state(py, str(root)) == "external"
    assert requirements_hash(str(root), CPU) != requirements_hash(str(root), CUDA)
    write_stamp(str(venv), str(root), CPU)
    assert read_stamp(str(venv))["variant"] == CPU
    assert env_state(py, str(root)) == "current"
    req.write_text("torch==2.13.0\nnumpy\nscipy\n")
    assert env_state(py, str(root)) == "stale"


def test_install_plan_commands(tmp_path, plugin_root):
    venv = str(tmp_path / "venv")
    cpu = install_plan("/usr/bin/python3", venv, str(plugin_root), CPU)
    argv = [s.argv for s in cpu]
    assert argv[0] == ["/usr/bin/python3", "-m", "venv", "--clear", venv]
    py = venv_python(venv)
    torch_step = next(s for s in cpu if "PyTorch" in s.label)
    assert torch_step.argv[:4] == [py, "-m", "pip", "install"]
    assert any(a.startswith("torch") for a in torch_step.argv)
    if sys.platform.startswith("linux"):
        assert torch_step.argv[-2:] == ["--index-url", backend_env.TORCH_CPU_INDEX]
    req_step = next(s for s in cpu if s.label == "Install the backend requirements")
    assert req_step.argv[-2:] == ["-r", str(plugin_root / "backend" / "requirements.txt")]
    assert not any("requirements-gpu.txt" in " ".join(a) for a in argv)
    assert cpu[-1].argv[-1] == "diagnostics"
    assert all(isinstance(a, str) for s in cpu for a in s.argv)
    gpu = install_plan("/usr/bin/python3", venv, str(plugin_root), CUDA)
    extra = [s for s in gpu if "GPU extras" in s.label]
    assert extra and extra[0].optional and extra[0].argv[-1].endswith("requirements-gpu.txt")


def test_install_task_runs_steps_and_writes_stamp(tmp_path, plugin_root):
    """A real run of the installer machinery with cheap steps (a venv without pip)."""
    venv = str(tmp_path / "venv")
    steps = [Step("Create", [sys.executable, "-m", "venv", "--without-pip", venv]),
             Step("Optional failure", [sys.executable, "-c", "import sys; sys.exit(3)"], optional=True),
             Step("Check", [venv_python(venv), "-c", "print('hello from the venv')"])]
    done = []
    task = EnvInstallTask(steps, venv, str(plugin_root), CPU, on_finished=lambda t, ok: done.append(ok))
    QgsApplication.taskManager().addTask(task)
    wait_for(lambda: done, 60)
    assert done == [True], task.log
    assert any("hello from the venv" in line for line in task.log)
    assert read_stamp(venv)["requirements_sha256"] == requirements_hash(str(plugin_root), CPU)


def test_install_task_stops_on_failure_without_stamp(tmp_path, plugin_root):
    venv = str(tmp_path / "venv")
    os.makedirs(venv)
    steps = [Step("Fails", [sys.executable, "-c", "import sys; sys.exit(2)"]), Step("Never", [sys.executable, "-c", "pass"])]
    done = []
    task = EnvInstallTask(steps, venv, str(plugin_root), CPU, on_finished=lambda t, ok: done.append(ok))
    QgsApplication.taskManager().addTask(task)
    wait_for(lambda: done, 30)
    assert done == [False] and task.failed_step is steps[0]
    assert read_stamp(venv) is None
