"""The versioned JSON-lines protocol between the backend process and its callers (pure Python).

Every line on stdout is one JSON object with "v" (protocol version) and "type":
  progress  {stage, done, total}
  log       {level, message}
  result    {command, outputs, metrics, timings}
  error     {code, message, hint}
stderr is free text for humans (a log file); callers never parse it.
"""

import json
import sys

PROTOCOL_VERSION = 1

EVENT_TYPES = ("progress", "log", "result", "error")

# `classify --tile-size` default: about how many pixels (N×N) go through the network in one forward pass.
# Here, in the pure-Python part, so that the dock and the Processing algorithm offer the very default the
# command line uses.
DEFAULT_TILE_SIZE = 512
# The network's window (`classify --window`): every map is computed on the same grid of windows of this
# side (plus the model's halo), whatever the tile size, so the tile size changes memory and speed but not
# a single pixel of the map. The window itself does change the map: the scans see the whole window, and
# 256 vs 512 vs 1024 px windows disagree on about 1 % of pixels even with a 64 px halo (issue 17).
MAP_WINDOW = 512


# The class map's values: 0 = no data (a nodata or NaN input pixel, outside the scene: the GeoTIFF's
# nodata value, transparent, no legend entry); 1…254 = the model's classes; 255 = "unclassified", a
# valid pixel whose calibrated confidence was below `classify --min-confidence` (drawn, in the legend,
# counted in the areas, and an error for `evaluate`). Two values because they mean different things:
# no data cannot be mapped at all; an unclassified pixel was looked at and the model was unsure.
UNCLASSIFIED = {"value": 255, "name": "unclassified", "color": "#000000"}


class ErrorCode:
    """Stable error codes; the plugin maps each to a message for a person."""

    INPUT_NOT_FOUND = "input_not_found"
    INPUT_UNREADABLE = "input_unreadable"
    NO_CRS = "no_crs"
    CRS_NO_OVERLAP = "crs_no_overlap"
    BAND_MISMATCH = "band_mismatch"
    MODEL_NOT_FOUND = "model_not_found"
    BAD_MODEL = "bad_model"
    MODEL_HASH_MISMATCH = "model_hash_mismatch"
    UNSAFE_WEIGHTS = "unsafe_weights"
    OUTPUT_NOT_WRITABLE = "output_not_writable"
    DISK_FULL = "disk_full"
    OUT_OF_MEMORY = "out_of_memory"
    CUDA_UNAVAILABLE = "cuda_unavailable"
    CLUSTER_UNAVAILABLE = "cluster_unavailable"   # classify-batch: no Dask scheduler, or workers that cannot run the backend
    BAD_LABELS = "bad_labels"
    WAVELENGTHS_UNKNOWN = "wavelengths_unknown"
    BAD_ARGUMENTS = "bad_arguments"
    CANCELLED = "cancelled"
    INTERNAL = "internal"

    @classmethod
    def all(cls):
        return sorted(v for k, v in vars(cls).items() if k.isupper())


class LandFuseError(Exception):
    """An error a person can act on: a code from ErrorCode, a message, and a hint."""

    def __init__(self, code, message, hint=""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


def make_event(event_type, **fields):
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    event = {"v": PROTOCOL_VERSION, "type": event_type}
    event.update(fields)
    return event


def parse_event(line):
    """Parse one stdout line; returns a dict or None for a line that is not a protocol event."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
        return None
    if event.get("v") != PROTOCOL_VERSION:
        return None
    return event


class EventWriter:
    """Writes events as JSON lines, flushing each so a reader sees progress as it happens."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stdout

    def emit(self, event_type, **fields):
        self.stream.write(json.dumps(make_event(event_type, **fields)) + "\n")
        self.stream.flush()

    def progress(self, stage, done, total):
        self.emit("progress", stage=stage, done=int(done), total=int(total))

    def log(self, message, level="info"):
        self.emit("log", level=level, message=message)

    def result(self, command, outputs=None, metrics=None, timings=None, **extra):
        self.emit("result", command=command, outputs=outputs or {}, metrics=metrics or {},
                  timings=timings or {}, **extra)

    def error(self, code, message, hint=""):
        self.emit("error", code=code, message=message, hint=hint)


class NestedEvents:
    """A sub-run's events (a training inside a benchmark, a classify inside an evaluation) forwarded to
    the parent's stream, tagged with the run so a reader can tell whose they are.

    `quiet` drops the sub-run's progress and info logs: evaluations run dozens of sub-runs whose
    step-by-step chatter would bury their own progress; warnings and errors still come through."""

    def __init__(self, parent, tag: str, quiet: bool = False):
        self.parent, self.tag, self.quiet = parent, tag, quiet

    def progress(self, stage, done, total):
        if not self.quiet:
            self.parent.progress(f"{self.tag}:{stage}", done, total)

    def log(self, message, level="info"):
        if not (self.quiet and level == "info"):
            self.parent.log(f"[{self.tag}] {message}", level)
