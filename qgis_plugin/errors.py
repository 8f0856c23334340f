"""Backend error codes → what a person reads in the message bar or the Processing log."""

from .backend_api import ErrorCode

# Codes the plugin itself produces (the backend never sends these).
CRASHED = "crashed"
PROTOCOL = "protocol"
NO_BACKEND = "no_backend"
START_FAILED = "start_failed"
PREFLIGHT = "preflight"

TITLES = {
    ErrorCode.INPUT_NOT_FOUND: "An input file was not found",
    ErrorCode.INPUT_UNREADABLE: "An input raster could not be read",
    ErrorCode.NO_CRS: "A layer has no coordinate reference system",
    ErrorCode.CRS_NO_OVERLAP: "The layers do not overlap",
    ErrorCode.BAND_MISMATCH: "Band counts do not match the model",
    ErrorCode.MODEL_NOT_FOUND: "Model folder not found",
    ErrorCode.BAD_MODEL: "The model package is invalid",
    ErrorCode.MODEL_HASH_MISMATCH: "The model weights are corrupt or were changed",
    ErrorCode.UNSAFE_WEIGHTS: "The model weights use an unsafe format",
    ErrorCode.OUTPUT_NOT_WRITABLE: "The output cannot be written",
    ErrorCode.DISK_FULL: "The disk is full",
    ErrorCode.OUT_OF_MEMORY: "Out of memory",
    ErrorCode.CUDA_UNAVAILABLE: "CUDA is not available",
    ErrorCode.CLUSTER_UNAVAILABLE: "The Dask cluster cannot be used",
    ErrorCode.BAD_LABELS: "The training labels cannot be used",
    ErrorCode.WAVELENGTHS_UNKNOWN: "The hyperspectral raster has no band wavelengths",
    ErrorCode.BAD_ARGUMENTS: "The backend rejected the arguments",
    ErrorCode.CANCELLED: "Cancelled",
    ErrorCode.INTERNAL: "Internal error in the LandFuse backend",
    CRASHED: "The LandFuse backend stopped unexpectedly",
    PROTOCOL: "The LandFuse backend gave no result",
    NO_BACKEND: "No LandFuse backend environment",
    START_FAILED: "The LandFuse backend could not be started",
    PREFLIGHT: "The inputs cannot be used",
}

DEFAULT_HINTS = {
    ErrorCode.OUT_OF_MEMORY: ("Run on the CPU if the GPU ran out of memory, or close other programs; when training, "
                              "a smaller tile size also helps."),
    ErrorCode.DISK_FULL: "Free some disk space or choose an output folder on another disk; no half-written file was left.",
    ErrorCode.CUDA_UNAVAILABLE: "Choose device 'auto' or 'cpu', or install the CUDA backend environment.",
    ErrorCode.CRS_NO_OVERLAP: "Check that the auxiliary rasters cover the hyperspectral scene.",
    ErrorCode.INTERNAL: "Please report it with the text from LandFuse ▸ Diagnostics and the log below.",
    CRASHED: "Please report it with the text from LandFuse ▸ Diagnostics and the log below.",
    NO_BACKEND: "Open LandFuse ▸ Backend environment… to create one, or set the backend Python in its settings.",
}

ALL_BACKEND_CODES = tuple(ErrorCode.all())


def title_for(code):
    return TITLES.get(code, f"LandFuse backend error ({code})")


class BackendError(Exception):
    """A failed backend run: a code (ErrorCode or one of the plugin's own), message, hint, log tail."""

    def __init__(self, code, message, hint="", log_tail=""):
        super().__init__(message)
        self.code = code or ErrorCode.INTERNAL
        self.message = message or ""
        self.hint = hint or DEFAULT_HINTS.get(self.code, "")
        self.log_tail = log_tail or ""

    @property
    def title(self):
        return title_for(self.code)

    @property
    def cancelled(self):
        return self.code == ErrorCode.CANCELLED

    def user_message(self, with_log=True):
        parts = [f"{self.title}: {self.message}" if self.message else self.title]
        if self.hint:
            parts.append(self.hint)
        text = " — ".join(parts)
        if with_log and self.log_tail:
            text += "\n\nLast lines of the backend log:\n" + self.log_tail
        return text

    def __str__(self):
        return self.user_message(with_log=False)
