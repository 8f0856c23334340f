"""Running the backend: argument lists (never a shell), JSON-lines events, cancel, crash reports.

Three ways to run one `BackendCall`:
- `run_subprocess(call, ...)`: a plain blocking run that polls a cancel callback (used by the
  dock's QgsTask and the Diagnostics dialog through `BackendTask`);
- `run_blocking_process(call, feedback)`: through QgsBlockingProcess, for Processing algorithms,
  so Processing's Cancel button stops the backend;
- `BackendTask`: a QgsTask wrapping `run_subprocess`, with a `backendEvent` signal delivered on the main
  thread and an `on_finished` callback that runs on the main thread (add layers there).
"""

import codecs
import collections
import json
import os
import queue
import signal
import subprocess
import threading
import time

from qgis.core import QgsBlockingProcess, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from .backend_api import ErrorCode, parse_event
from .backend_launch import clean_environment
from .errors import CRASHED, NO_BACKEND, PROTOCOL, START_FAILED, BackendError
from .paths import LAUNCHER, PLUGIN_ROOT

LOG_TAIL_LINES = 40
TERMINATE_GRACE_S = 1.2  # after terminate(), wait this long before kill(): cancel ends within 2 s


class BackendCall:
    """One backend command: `python -E -s backend_launch.py ROOT COMMAND ARGS...`."""

    def __init__(self, python, command, args=(), root=None):
        self.python = python
        self.command = command
        self.args = [str(a) for a in args]
        self.root = root or PLUGIN_ROOT

    def argv(self):
        return [self.python, "-E", "-s", LAUNCHER, self.root, self.command] + self.args

    def env(self):
        return clean_environment(os.environ)

    def __repr__(self):
        return f"BackendCall({self.command} {' '.join(self.args)})"


class EventCollector:
    """Turns stdout/stderr chunks into events; remembers the result, the error and the log tail."""

    def __init__(self, on_event=None):
        self.on_event = on_event
        self.result = None
        self.error = None
        self.progress = None
        self.pid = None
        self.events = []
        self.stray_lines = collections.deque(maxlen=LOG_TAIL_LINES)
        self.stderr_tail = collections.deque(maxlen=LOG_TAIL_LINES)
        self._out_decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._err_decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._out_buf = ""
        self._err_buf = ""
        self._lock = threading.Lock()

    def feed_stdout(self, data):
        text = self._out_decoder.decode(data) if isinstance(data, bytes) else data
        self._out_buf += text
        *lines, self._out_buf = self._out_buf.split("\n")
        for line in lines:
            self.feed_line(line)

    def feed_stderr(self, data):
        text = self._err_decoder.decode(data) if isinstance(data, bytes) else data
        with self._lock:
            self._err_buf += text
            *lines, self._err_buf = self._err_buf.split("\n")
            for line in lines:
                self.stderr_tail.append(line.rstrip("\r"))

    def feed_line(self, line):
        event = parse_event(line)
        if event is None:
            if line.startswith('{"landfuse_launcher"'):
                try:
                    self.pid = int(json.loads(line)["landfuse_launcher"]["pid"])
                except (ValueError, KeyError, TypeError):
                    pass
                return
            if line.strip():
                self.stray_lines.append(line.rstrip())
            return
        self.events.append(event)
        kind = event["type"]
        if kind == "result":
            self.result = event
        elif kind == "error":
            self.error = event
        elif kind == "progress":
            self.progress = event
        if self.on_event is not None:
            self.on_event(event)

    def close(self):
        if self._out_buf.strip():
            self.feed_line(self._out_buf)
        self._out_buf = ""
        with self._lock:
            if self._err_buf.strip():
                self.stderr_tail.append(self._err_buf.rstrip())
            self._err_buf = ""

    def log_tail(self):
        with self._lock:
            lines = list(self.stderr_tail)
        if not lines:
            lines = list(self.stray_lines)
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def outcome(self, returncode, cancelled=False):
        """The result event, or raise BackendError for a cancel, an error event or a crash."""
        self.close()
        if cancelled:
            raise BackendError(ErrorCode.CANCELLED, "The run was cancelled; no output was written.")
        if self.error is not None:
            raise BackendError(self.error.get("code"), self.error.get("message", ""),
                               self.error.get("hint", ""), self.log_tail())
        if returncode == 0 and self.result is not None:
            return self.result
        if returncode != 0:
            raise BackendError(CRASHED, f"The backend process exited with code {returncode} "
                                        "without reporting an error.", "", self.log_tail())
        raise BackendError(PROTOCOL, "The backend finished without a result.", "", self.log_tail())


def progress_fraction(event):
    total = event.get("total") or 0
    if total <= 0:
        return None
    return max(0.0, min(1.0, float(event.get("done", 0)) / float(total)))


def check_python(python):
    if not python:
        raise BackendError(NO_BACKEND, "No Python interpreter for the LandFuse backend is configured.")
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise BackendError(NO_BACKEND, f"The backend Python does not exist or is not executable: {python}")


def _popen_kwargs():
    if os.name == "nt":
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
                | getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {"start_new_session": True}


def _stop(proc):
    """terminate, then kill after a grace period; the whole process group on POSIX."""
    def send(sig):
        try:
            if os.name != "nt":
                os.killpg(proc.pid, sig)
            elif sig == signal.SIGTERM:
                proc.terminate()
            else:
                proc.kill()
        except (ProcessLookupError, PermissionError, OSError):
            pass
    send(signal.SIGTERM)
    try:
        proc.wait(TERMINATE_GRACE_S)
    except subprocess.TimeoutExpired:
        send(getattr(signal, "SIGKILL", signal.SIGTERM))
        proc.wait(2)


def _kill_pid(pid):
    try:
        if os.name == "nt":
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False)
        else:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def run_subprocess(call, on_event=None, is_cancelled=None, poll_s=0.05, on_started=None):
    """Run `call` to its end; returns the result event or raises BackendError.
    `on_started(pid)` is called once the process exists."""
    check_python(call.python)
    collector = EventCollector(on_event)
    try:
        proc = subprocess.Popen(call.argv(), cwd=call.root, env=call.env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, **_popen_kwargs())
    except OSError as exc:
        raise BackendError(START_FAILED, f"{exc}", "Check the backend Python in LandFuse ▸ Backend environment.") from exc

    if on_started is not None:
        on_started(proc.pid)
    lines = queue.Queue()

    def pump_stdout():
        for raw in iter(proc.stdout.readline, b""):
            lines.put(raw)
        lines.put(None)

    def pump_stderr():
        for raw in iter(proc.stderr.readline, b""):
            collector.feed_stderr(raw)

    readers = [threading.Thread(target=pump_stdout, daemon=True),
               threading.Thread(target=pump_stderr, daemon=True)]
    for t in readers:
        t.start()
    cancelled = False
    try:
        while True:
            if is_cancelled is not None and is_cancelled():
                cancelled = True
                _stop(proc)
                break
            try:
                raw = lines.get(timeout=poll_s)
            except queue.Empty:
                continue
            if raw is None:
                break
            collector.feed_stdout(raw)
        returncode = proc.wait()
    finally:
        if proc.poll() is None:
            _stop(proc)
    for t in readers:
        t.join(1.0)
    if not cancelled:
        while True:
            try:
                raw = lines.get_nowait()
            except queue.Empty:
                break
            if raw is not None:
                collector.feed_stdout(raw)
    for stream in (proc.stdout, proc.stderr):
        try:
            stream.close()
        except OSError:
            pass
    return collector.outcome(returncode, cancelled)


def feedback_event_handler(feedback):
    """Maps events to a QgsProcessingFeedback: progress bar, progress text, log lines."""
    def handle(event):
        kind = event["type"]
        if kind == "progress":
            fraction = progress_fraction(event)
            if fraction is not None:
                feedback.setProgress(100.0 * fraction)
            feedback.setProgressText(f"{event.get('stage', '')} {event.get('done', 0)}/{event.get('total', 0)}")
        elif kind == "log":
            level, message = event.get("level", "info"), str(event.get("message", ""))
            if level == "error":
                feedback.reportError(message, False)
            elif level == "warning" and hasattr(feedback, "pushWarning"):
                feedback.pushWarning(message)
            else:
                feedback.pushInfo(message)
    return handle


def run_blocking_process(call, feedback=None):
    """Run `call` with QgsBlockingProcess (Processing): feedback's cancel terminates the backend."""
    check_python(call.python)
    collector = EventCollector(feedback_event_handler(feedback) if feedback is not None else None)
    argv = call.argv()
    process = QgsBlockingProcess(argv[0], argv[1:])

    # The handlers must stay referenced until run() returns: sip keeps no reference to them.
    def on_stdout(ba):
        collector.feed_stdout(ba.data())

    def on_stderr(ba):
        collector.feed_stderr(ba.data())

    process.setStdOutHandler(on_stdout)
    process.setStdErrHandler(on_stderr)
    # QgsBlockingProcess answers cancel with SIGTERM only; a backend stuck in native code would
    # ignore it for a long time, so the launcher's pid gets a SIGKILL after the grace period.
    killer = {}

    def on_canceled():
        if collector.pid and "timer" not in killer:
            killer["timer"] = threading.Timer(TERMINATE_GRACE_S, _kill_pid, (collector.pid,))
            killer["timer"].daemon = True
            killer["timer"].start()

    if feedback is not None:
        feedback.canceled.connect(on_canceled)
    try:
        returncode = process.run(feedback)
    finally:
        if "timer" in killer:
            killer["timer"].cancel()
        if feedback is not None:
            try:
                feedback.canceled.disconnect(on_canceled)
            except (TypeError, RuntimeError):
                pass
    del on_stdout, on_stderr
    cancelled = feedback is not None and feedback.isCanceled()
    if returncode != 0 and collector.result is None and collector.error is None and not cancelled \
            and not collector.events and not collector.log_tail():
        raise BackendError(START_FAILED, f"{argv[0]} could not be started (exit code {returncode}).")
    return collector.outcome(returncode, cancelled)


class BackendTask(QgsTask):
    """A backend run as a QgsTask. `backendEvent` is emitted for every protocol event (queued to the main
    thread); `on_finished(task)` runs on the main thread; `task.result` / `task.error` hold the outcome."""

    backendEvent = pyqtSignal(object)

    def __init__(self, description, call, on_finished=None, flags=QgsTask.CanCancel):
        super().__init__(description, flags)
        self.call = call
        self.on_finished = on_finished
        self.result = None
        self.error = None
        self.started_at = None
        self.elapsed_s = None
        self.pid = None

    def _on_event(self, event):
        if event["type"] == "progress":
            fraction = progress_fraction(event)
            if fraction is not None:
                self.setProgress(100.0 * fraction)
        self.backendEvent.emit(event)

    def run(self):
        self.started_at = time.monotonic()
        try:
            self.result = run_subprocess(self.call, self._on_event, self.isCanceled,
                                         on_started=lambda pid: setattr(self, "pid", pid))
            return True
        except BackendError as exc:
            self.error = exc
            return False
        except Exception as exc:  # noqa: BLE001 - a task must not raise: report it instead
            self.error = BackendError(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
            return False
        finally:
            self.elapsed_s = time.monotonic() - self.started_at

    def finished(self, ok):
        if self.error is None and not ok:
            self.error = BackendError(ErrorCode.CANCELLED, "The run was cancelled; no output was written.")
        if self.on_finished is not None:
            self.on_finished(self)


def run_now(call, timeout_s=None):
    """A short synchronous run with no cancel (tests, `info`); returns the result or raises."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    return run_subprocess(call, None, (lambda: deadline is not None and time.monotonic() > deadline))


__all__ = ["BackendCall", "BackendError", "BackendTask", "EventCollector", "run_blocking_process",
           "run_subprocess", "run_now", "progress_fraction"]
