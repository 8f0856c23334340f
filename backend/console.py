"""A person-readable view of the JSON-lines events, for a shell (`python -m backend --human …`).

The protocol stays what it is: every command still writes JSON lines, and the plugin reads them.
`HumanConsole` is a stream the event writer writes into instead of stdout: it keeps every line
as it came in an optional events file (`--events FILE`) and prints to the terminal only what a
person needs: warnings and errors, one progress line per stage and, at the end, a short summary
of what was written where, the accuracy and the time. Info logs are printed with `--verbose`.
"""

from __future__ import annotations

import json
import os
import sys
import time

# What each output key of a result is, for the summary; unknown keys print under their own name.
_OUTPUT_NAMES = {
    "classes": "land-cover map (GeoTIFF; QGIS loads its legend from the .qml beside it)",
    "confidence": "confidence of each pixel's class (0–1)",
    "qml": "QGIS legend (class names and colours)",
    "report": "accuracy report (JSON)",
    "html": "accuracy report (HTML)",
    "json": "accuracy report (JSON)",
    "preview": "preview: image beside map, with the legend (PNG)",
    "scene_hsi": "demo scene: hyperspectral image",
    "scene_dsm": "demo scene: surface heights (DSM)",
    "reference": "demo scene: reference labels",
    "model": "model package folder",
}
_METRICS = (("oa", "overall accuracy", True), ("aa", "average accuracy", True), ("kappa", "kappa", False),
            ("mean_f1", "mean F1", False))


def _percent(value):
    return f"{100.0 * value:.1f} %"


def _duration(seconds):
    if seconds < 90:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(round(seconds % 60)):02d} s"


def _short(path, base):
    try:
        rel = os.path.relpath(path, base)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


class HumanConsole:
    """A text stream: JSON lines in, readable text out (and the raw lines into `events_file`)."""

    def __init__(self, out=None, events_path=None, verbose=False):
        self.out = out if out is not None else sys.stdout
        self.events_path = events_path
        self.events = None
        if events_path:
            folder = os.path.dirname(os.path.abspath(events_path))
            os.makedirs(folder, exist_ok=True)
            self.events = open(events_path, "w", encoding="utf-8")
        self.verbose = verbose
        self.started = time.monotonic()
        self._buffer = ""
        self._stage = None
        self._tty = hasattr(self.out, "isatty") and self.out.isatty()
        self._progress_open = False

    # --- the stream interface the event writer uses -----------------------------------------
    def write(self, text):
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self):
        self.out.flush()
        if self.events is not None:
            self.events.flush()

    def close(self):
        if self._buffer.strip():
            self._line(self._buffer)
        self._buffer = ""
        self._end_progress()
        if self.events is not None:
            self.events.close()
            self.events = None

    # --- rendering -------------------------------------------------------------------------------
    def _print(self, text=""):
        self._end_progress()
        self.out.write(text + "\n")

    def _end_progress(self):
        if self._progress_open:
            self.out.write("\n")
            self._progress_open = False

    def _line(self, line):
        if self.events is not None:
            self.events.write(line + "\n")
        try:
            event = json.loads(line)
        except ValueError:
            if line.strip():
                self._print(line)
            return
        kind = event.get("type")
        if kind == "progress":
            self._progress(event)
        elif kind == "log":
            level, message = event.get("level", "info"), str(event.get("message", ""))
            if level != "info":
                self._print(f"{level}: {message}")
            elif self.verbose:
                self._print(message)
        elif kind == "error":
            self._print(f"Error ({event.get('code', '?')}): {event.get('message', '')}")
            if event.get("hint"):
                self._print(f"What to do: {event['hint']}")
            self._footer()
        elif kind == "result":
            self._summary(event)

    def _progress(self, event):
        stage, done, total = event.get("stage", ""), int(event.get("done", 0)), int(event.get("total", 0))
        text = f"  {stage}: {done}/{total}" if total else f"  {stage}…"
        if self._tty:
            self.out.write("\r" + text)
            self._progress_open = True
            if total and done >= total:
                self._end_progress()
        elif not total or done >= total:
            self._print(text)
        self._stage = stage

    def _summary(self, event):
        command = event.get("command", "")
        outputs = event.get("outputs") or {}
        metrics = event.get("metrics") or {}
        timings = event.get("timings") or {}
        elapsed = time.monotonic() - self.started
        self._print()
        self._print(f"LandFuse {command}: done in {_duration(elapsed)}"
                    + (f" (classify {_duration(timings['total_s'])})" if isinstance(timings.get("total_s"), (int, float)) else ""))
        paths = [p for p in outputs.values() if isinstance(p, str)]
        base = os.path.commonpath([os.path.abspath(p) for p in paths]) if paths else os.getcwd()
        if paths and os.path.isfile(base):
            base = os.path.dirname(base)
        if outputs:
            self._print(f"Written in {base}:")
            width = max(len(_short(p, base)) for p in paths) if paths else 0
            for key, path in outputs.items():
                if isinstance(path, str):
                    self._print(f"  {_short(path, base):<{width}}  {_OUTPUT_NAMES.get(key, key)}")
        scores = [(label, value, pct) for key, label, pct in _METRICS
                  if isinstance(value := metrics.get(key), (int, float))]
        if scores:
            where = f" against {metrics['n_pixels']:,} reference pixels" if isinstance(metrics.get("n_pixels"), int) else ""
            self._print(f"Accuracy{where}: " + ", ".join(
                f"{label} {_percent(value) if pct else f'{value:.3f}'}" for label, value, pct in scores))
        pixels = metrics.get("pixels_per_class")
        if isinstance(pixels, dict) and pixels:
            total = sum(pixels.values()) or 1
            self._print("Pixels per class: " + ", ".join(f"{name} {100.0 * n / total:.1f} %" for name, n in pixels.items()))
        self._footer()

    def _footer(self):
        if self.events_path:
            self._print(f"Every event (JSON lines, as the QGIS plugin reads them): {self.events_path}")


def run_human(main, argv, out=None):
    """`main(argv, stdout=…)` with its events shown as text; `--events FILE` and `--verbose` are
    taken from the front of `argv`. Returns main's exit status."""
    events_path, verbose = None, False
    argv = list(argv)
    while argv and argv[0] in ("--events", "--verbose"):
        flag = argv.pop(0)
        if flag == "--verbose":
            verbose = True
        elif argv:
            events_path = argv.pop(0)
    console = HumanConsole(out, events_path, verbose)
    try:
        return main(argv, stdout=console)
    finally:
        console.close()
