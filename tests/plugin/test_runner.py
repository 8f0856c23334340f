"""The runner against a scripted backend (a real `backend` package in a temporary plugin root):
events, error codes, crash tail, protocol violations, clean environment, cancel within 2 s."""

import os
import threading
import time

import pytest
from conftest import wait_for
from landfuse.qgis_plugin import errors
from landfuse.qgis_plugin.backend_api import ErrorCode
from landfuse.qgis_plugin.errors import BackendError
from landfuse.qgis_plugin.runner import BackendTask, EventCollector, run_blocking_process, run_subprocess
from qgis.core import QgsApplication, QgsProcessingFeedback


def test_events_progress_log_result(fake_backend):
    fake_backend.script(["progress", {"stage": "tiles", "done": 1, "total": 4}],
                        ["stdout", "not json: ignored"],
                        ["log", {"level": "warning", "message": "3 bad bands"}],
                        ["progress", {"stage": "tiles", "done": 4, "total": 4}],
                        ["result", {"outputs": {"classes": "/x.tif"}, "class_table": [{"value": 1, "name": "a", "color": "#ff0000"}]}])
    seen = []
    result = run_subprocess(fake_backend.call("classify", ["--hsi", "a b.tif"]), seen.append)
    assert result["type"] == "result" and result["outputs"]["classes"] == "/x.tif"
    assert result["args"] == ["--hsi", "a b.tif"]  # an argument list, spaces intact, no shell
    assert [e["type"] for e in seen] == ["progress", "log", "progress", "result"]
    assert seen[2]["done"] == 4


@pytest.mark.parametrize("code", ErrorCode.all())
def test_error_codes_map_to_messages(code):
    collector = EventCollector()
    collector.feed_stdout(('{"v":1,"type":"error","code":"%s","message":"boom","hint":"do this"}\n' % code).encode())
    with pytest.raises(BackendError) as info:
        collector.outcome(1)
    err = info.value
    assert err.code == code and err.title == errors.TITLES[code]
    assert "boom" in err.user_message() and "do this" in err.user_message()


def test_error_event_from_process(fake_backend):
    fake_backend.script(["stderr", "reading cube"],
                        ["error", {"code": "band_mismatch", "message": "HSI has 48 bands, model wants 144", "hint": "retrain"}],
                        ["exit", 1])
    with pytest.raises(BackendError) as info:
        run_subprocess(fake_backend.call())
    assert info.value.code == ErrorCode.BAND_MISMATCH
    assert info.value.title == "Band counts do not match the model"
    assert "reading cube" in info.value.log_tail


def test_crash_reports_log_tail(fake_backend):
    fake_backend.script(*[["stderr", f"line {i}"] for i in range(100)], ["stderr", "Segmentation fault"], ["exit", 139])
    with pytest.raises(BackendError) as info:
        run_subprocess(fake_backend.call())
    err = info.value
    assert err.code == errors.CRASHED and "139" in err.message
    assert err.log_tail.splitlines()[-1] == "Segmentation fault"
    assert "line 99" in err.log_tail and "line 10\n" not in err.log_tail  # only the tail


def test_exit_zero_without_result_is_an_error(fake_backend):
    fake_backend.script(["progress", {"stage": "x", "done": 1, "total": 1}])
    with pytest.raises(BackendError) as info:
        run_subprocess(fake_backend.call())
    assert info.value.code == errors.PROTOCOL


def test_missing_python():
    from landfuse.qgis_plugin.runner import BackendCall
    with pytest.raises(BackendError) as info:
        run_subprocess(BackendCall("/nonexistent/python", "diagnostics"))
    assert info.value.code == errors.NO_BACKEND


def test_clean_environment_and_cwd(fake_backend, monkeypatch):
    for key, value in {"PYTHONPATH": "/qgis/python", "PYTHONHOME": "/qgis", "QGIS_PREFIX_PATH": "/usr",
                       "GDAL_DATA": "/qgis/gdal", "PROJ_LIB": "/qgis/proj", "PROJ_DATA": "/qgis/proj",
                       "CUDA_VISIBLE_DEVICES": "0", "LANDFUSE_KEEP": "yes"}.items():
        monkeypatch.setenv(key, value)
    fake_backend.script(["env", None])
    result = run_subprocess(fake_backend.call("diagnostics"))
    env = result["env"]
    for key in ("PYTHONPATH", "PYTHONHOME", "QGIS_PREFIX_PATH", "GDAL_DATA", "PROJ_LIB", "PROJ_DATA"):
        assert key not in env
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["LANDFUSE_KEEP"] == "yes"
    assert os.path.samefile(result["cwd"], fake_backend.root)
    assert "/qgis/python" not in result["path"]


def test_blocking_process_env_is_cleaned_by_the_launcher(fake_backend, monkeypatch):
    """QgsBlockingProcess inherits QGIS's environment: the launcher (-E + clean-up) must fix it."""
    monkeypatch.setenv("PYTHONPATH", "/qgis/python")
    monkeypatch.setenv("GDAL_DATA", "/qgis/gdal")
    fake_backend.script(["env", None])
    result = run_blocking_process(fake_backend.call("diagnostics"), QgsProcessingFeedback())
    assert "PYTHONPATH" not in result["env"] and "GDAL_DATA" not in result["env"]
    assert "/qgis/python" not in result["path"]
    assert os.path.samefile(result["cwd"], fake_backend.root)


@pytest.mark.parametrize("ignore_term", [False, True])
def test_cancel_within_two_seconds(fake_backend, tmp_path, ignore_term):
    out = tmp_path / "out.tif"
    steps = [["ignore_term", None]] if ignore_term else []
    steps += [["progress", {"stage": "tiles", "done": 1, "total": 100}], ["sleep", 30], ["touch", str(out)],
              ["result", {}]]
    fake_backend.script(*steps)
    cancel = threading.Event()
    started = {}

    def on_event(event):
        if event["type"] == "progress":
            started["t"] = time.monotonic()
            cancel.set()

    t0 = time.monotonic()
    with pytest.raises(BackendError) as info:
        run_subprocess(fake_backend.call(), on_event, cancel.is_set)
    assert info.value.cancelled
    assert time.monotonic() - started["t"] < 2.0
    assert time.monotonic() - t0 < 10
    assert not out.exists()


@pytest.mark.parametrize("ignore_term", [False, True])
def test_blocking_process_progress_and_cancel(fake_backend, tmp_path, ignore_term):
    """Processing path (the algorithm runs in a worker thread): feedback gets progress, and
    feedback.cancel() from the main thread stops the backend within 2 s, leaving no output —
    also when the backend does not react to SIGTERM (stuck in native code)."""
    out = tmp_path / "out.tif"
    steps = [["ignore_term", None]] if ignore_term else []
    fake_backend.script(*steps, ["progress", {"stage": "tiles", "done": 1, "total": 4}], ["sleep", 30],
                        ["touch", str(out)], ["result", {}])
    feedback = QgsProcessingFeedback()
    outcome = {}

    def work():
        try:
            run_blocking_process(fake_backend.call(), feedback)
        except BackendError as exc:
            outcome["error"] = exc
        outcome["t"] = time.monotonic()

    worker = threading.Thread(target=work)
    worker.start()
    wait_for(lambda: feedback.progress() > 0, 20)
    assert feedback.progress() == 25.0
    t0 = time.monotonic()
    feedback.cancel()
    worker.join(5)
    assert not worker.is_alive()
    assert outcome["t"] - t0 < 2.0
    assert outcome["error"].cancelled
    assert not out.exists()


def test_blocking_process_result_and_error(fake_backend):
    fake_backend.script(["log", {"level": "info", "message": "hello"}], ["result", {"metrics": {"oa": 0.9}}])
    result = run_blocking_process(fake_backend.call("evaluate"), QgsProcessingFeedback())
    assert result["metrics"]["oa"] == 0.9
    fake_backend.script(["error", {"code": "out_of_memory", "message": "CUDA OOM", "hint": ""}], ["exit", 1])
    with pytest.raises(BackendError) as info:
        run_blocking_process(fake_backend.call(), QgsProcessingFeedback())
    assert info.value.code == "out_of_memory" and "smaller tile" in info.value.hint


def test_backend_task_events_on_main_thread(fake_backend):
    fake_backend.script(["progress", {"stage": "tiles", "done": 1, "total": 2}],
                        ["progress", {"stage": "tiles", "done": 2, "total": 2}], ["result", {}])
    done, events = [], []
    task = BackendTask("test", fake_backend.call(), done.append)
    task.backendEvent.connect(events.append)
    QgsApplication.taskManager().addTask(task)
    wait_for(lambda: done)
    assert done[0].error is None and done[0].result["type"] == "result"
    wait_for(lambda: len(events) == 3, 5)
    assert [e["type"] for e in events] == ["progress", "progress", "result"]


def test_backend_task_cancel(fake_backend):
    fake_backend.script(["progress", {"stage": "tiles", "done": 1, "total": 100}], ["sleep", 30], ["result", {}])
    done = []
    task = BackendTask("test", fake_backend.call(), done.append)
    task.backendEvent.connect(lambda e: task.cancel())
    QgsApplication.taskManager().addTask(task)
    t0 = time.monotonic()
    wait_for(lambda: done, 10)
    assert time.monotonic() - t0 < 4
    assert done[0].error is not None and done[0].error.cancelled
