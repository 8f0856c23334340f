"""`classify`: rasters in, land-cover GeoTIFF (+ legend, + confidence) out, window by window."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from backend.engine import device as devices
from backend.engine import modalities
from backend.engine.package import load_model, model_temperature
from backend.engine.tiles import batches, count_tiles, iter_tiles
from backend.io import output
from backend.io.paths import check_outputs
from backend.manifest import read_manifest
from backend.protocol import DEFAULT_TILE_SIZE, MAP_WINDOW, ErrorCode, LandFuseError

if TYPE_CHECKING:
    import torch

    from backend.engine.modalities import AbsentReader, ModalityReader, SpectralReader
    from backend.engine.tiles import Tile
    from backend.protocol import EventWriter, NestedEvents

# The network runs on windows of MAP_WINDOW px on a grid fixed to the raster's origin, whatever the tile
# size: the map is then the same at every tile size (before issue 17 the window was the tile, and tile 64
# vs 512 changed 1.5 % of the demo's pixels). A 512 px window's halo (recomputed context, 32 px each side
# for m3amba) costs 1.27x its core pixels. The tile size N asks for about N×N core pixels per forward
# pass: round(N² / window²) windows, at least one (below the window, memory is that of one window).


def default_batch_size(tile_size: int, window: int = MAP_WINDOW) -> int:
    return max(1, round(tile_size * tile_size / (window * window)))


def window_logits(net: torch.nn.Module, readers: Sequence[Union[ModalityReader, AbsentReader, SpectralReader]],
                  tile_batch: Sequence[Tile], device: Union[str, torch.device]) -> Tuple[torch.Tensor, List[np.ndarray]]:
    """One batch of windows through the network → (raw logits (windows, classes, h, w), float32 on the
    device, no temperature applied; valid block per window), both over the whole read window (halo too)."""
    import torch
    # One preallocated array per modality for the whole batch: stacking per-tile blocks afterwards
    # would hold the batch twice at the peak.
    batch = [np.empty((len(tile_batch), r.n_inputs) + tile_batch[0].read_shape, np.float32) for r in readers]
    valids = []
    for k, tile in enumerate(tile_batch):
        valid = np.ones(tile.read_shape, dtype=bool)
        for i, reader in enumerate(readers):
            batch[i][k], pixel_valid = reader.read(tile.read)
            valid &= pixel_valid
        valids.append(valid)
    inputs = [torch.from_numpy(b).to(device) for b in batch]
    with torch.inference_mode():
        logits = net(inputs).float()
    return logits, valids


def predict_tiles(net: torch.nn.Module, readers: Sequence[Union[ModalityReader, AbsentReader, SpectralReader]],
                  tile_batch: Sequence[Tile], device: Union[str, torch.device],
                  temperature: Optional[float] = None) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Run one batch of tiles → list of (classes index block, confidence block, valid block) per tile.

    The confidence is the chosen class's probability after dividing the logits by the temperature
    (None: the one the model package records, `package.model_temperature`; 1.0 without calibration).
    The class index is taken from the untempered softmax, exactly as before calibration existed: a
    positive temperature never reorders the classes, and this way not even a rounding tie can."""
    import torch
    logits, valids = window_logits(net, readers, tile_batch, device)
    t = model_temperature(net) if temperature is None else float(temperature)
    with torch.inference_mode():
        probs = torch.softmax(logits, dim=1)
        confidence, index = probs.max(dim=1)
        if t != 1.0:
            confidence = torch.softmax(logits / t, dim=1).gather(1, index[:, None])[:, 0]
    confidence, index = confidence.cpu().numpy(), index.cpu().numpy()
    results = []
    for k, tile in enumerate(tile_batch):
        rows, cols = tile.core_in_read
        results.append((index[k, rows, cols], confidence[k, rows, cols], valids[k][rows, cols]))
    return results


def class_values(manifest: Dict[str, Any], unclassified: bool = False) -> np.ndarray:
    """Output value of each network class index + 1 (index 0: nodata); with `unclassified`, one more
    slot at the end for the pixels a confidence threshold rejects (`output.UNCLASSIFIED`)."""
    extra = [output.UNCLASSIFIED["value"]] if unclassified else []
    return np.array([0] + [c["value"] for c in manifest["classes"]] + extra, dtype=np.uint8)


def window_batches(height: int, width: int, window: int, halo: int, batch_size: int) -> Iterator[List[Tile]]:
    """The scene's windows in the batches `classify` feeds the network, in its order (classify-batch
    cuts this same sequence into its Dask tasks, so each forward pass sees the very same batch)."""
    return batches(iter_tiles(height, width, window, halo), batch_size)


def classify_windows(net: torch.nn.Module, readers: Sequence[Union[ModalityReader, AbsentReader, SpectralReader]],
                     tile_batch: Sequence[Tile], device: Union[str, torch.device], values: np.ndarray,
                     window: int, min_confidence: float = 0.0) -> List[Tuple[Tile, np.ndarray, np.ndarray, np.ndarray]]:
    """The per-window work of `classify` and `classify-batch`: one batch of windows → per window
    (tile, class block (uint8 values, 0 = nodata), confidence block (-1 = nodata), pixels per value).

    With `min_confidence` > 0 a valid pixel whose (calibrated) confidence is below it gets the last
    of `values`, which must then be the "unclassified" value (`class_values(…, unclassified=True)`)."""
    if min_confidence > 0 and values[-1] != output.UNCLASSIFIED["value"]:
        raise ValueError("a confidence threshold needs class_values(manifest, unclassified=True)")
    try:
        results = predict_tiles(net, readers, tile_batch, device)
    except Exception as exc:
        if devices.is_out_of_memory(exc):
            raise devices.out_of_memory_error(window, len(tile_batch)) from exc
        raise
    out = []
    for tile, (index, conf, valid) in zip(tile_batch, results):
        code = index + 1
        if min_confidence > 0:
            code = np.where(conf < min_confidence, len(values) - 1, code)
        code = np.where(valid, code, 0)
        counts = np.bincount(code.ravel(), minlength=len(values))
        out.append((tile, values[code], np.where(valid, conf, -1.0), counts))
    return out


def scene_logits(hsi: str, aux: Optional[Sequence[str]], model_dir: str, device: Optional[str] = "cpu",
                 window: int = MAP_WINDOW, wavelengths: Optional[Sequence[float]] = None,
                 log: Any = None) -> Tuple[Dict[str, Any], np.ndarray, np.ndarray]:
    """The network's raw logits (no temperature) over a whole scene, through the very readers and
    windows `classify` uses: (manifest, logits (classes, h, w) float32, valid (h, w) bool). For
    calibration and checks on scenes that fit in memory; writes nothing."""
    log = log or (lambda message, level="info": None)
    specs = read_manifest(model_dir)["modalities"]
    dev = devices.resolve_device(device)
    with modalities.open_modalities(hsi, aux, specs, log, wavelengths) as (ref, readers):
        manifest, net = load_model(model_dir, dev)
        logits = np.zeros((len(manifest["classes"]), ref.height, ref.width), np.float32)
        valid = np.zeros((ref.height, ref.width), bool)
        plan = window_batches(ref.height, ref.width, window, int(manifest.get("halo", 0)), 1)
        for tile_batch in plan:
            block, valids = window_logits(net, readers, tile_batch, dev)
            block = block.cpu().numpy()
            for k, tile in enumerate(tile_batch):
                rows, cols = tile.core_in_read
                logits[(slice(None), *tile.core_slices)] = block[k, :, rows, cols]
                valid[tile.core_slices] = valids[k][rows, cols]
    return manifest, logits, valid


def check_min_confidence(value: float) -> float:
    """`--min-confidence` must be a probability the top class can fall below: 0 ≤ P < 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise LandFuseError(ErrorCode.BAD_ARGUMENTS, f"--min-confidence must be at least 0 and below 1 (got {value!r})",
                            "0 turns the threshold off; e.g. 0.5 leaves pixels the model is less sure of unclassified.")
    return float(value)


def classify(hsi: str, aux: Optional[Sequence[str]], model_dir: str, out: str, events: Union[EventWriter, NestedEvents],
             confidence: Optional[str] = None, device: Optional[str] = "auto", tile_size: int = DEFAULT_TILE_SIZE,
             batch_size: Optional[int] = None, wavelengths: Optional[Sequence[float]] = None,
             min_confidence: float = 0.0, window: int = MAP_WINDOW) -> Dict[str, Any]:
    """`min_confidence` (0 ≤ P < 1; 0: off): valid pixels whose calibrated confidence is below P are
    written as "unclassified" (`output.UNCLASSIFIED`, its own legend entry), not as a class.
    `tile_size` sets how many windows of `window` px go through the network at once (unless
    `batch_size` says so itself): memory and speed, never the map."""
    started = time.perf_counter()
    check_min_confidence(min_confidence)
    batch_size = batch_size or default_batch_size(tile_size, window)
    check_outputs([hsi, *(aux or []), model_dir],
                  {"class map": out, "confidence raster": confidence,
                   "legend (.qml beside the class map)": output.sidecar(out, ".qml"),
                   "category names (.aux.xml beside the class map)": out + ".aux.xml"}, events.log)
    specs = read_manifest(model_dir)["modalities"]  # structural check before any raster is opened
    dev = devices.resolve_device(device)
    with modalities.open_modalities(hsi, aux, specs, events.log, wavelengths) as (ref, readers):
        manifest, net = load_model(model_dir, dev)
        reject = min_confidence > 0
        class_table = output.with_unclassified(manifest["classes"]) if reject else manifest["classes"]
        values = class_values(manifest, unclassified=reject)
        halo = int(manifest.get("halo", 0))
        total = count_tiles(ref.height, ref.width, window)
        events.log(f"Classifying {ref.width}×{ref.height} px with {manifest['architecture']['name']} on {dev}: "
                   f"{total} window(s) of {window} px, halo {halo}, {batch_size} per forward pass")
        if reject:
            events.log(f"Pixels below {min_confidence:g} confidence (temperature {model_temperature(net):g}) are "
                       f"left unclassified (value {output.UNCLASSIFIED['value']})")
        writer = output.ClassificationWriter(out, output.reference_profile(ref), class_table, confidence)
        done = 0
        counts = np.zeros(len(values), dtype=np.int64)
        try:
            events.progress("classify", 0, total)
            for tile_batch in window_batches(ref.height, ref.width, window, halo, batch_size):
                for tile, classes, conf, tile_counts in classify_windows(net, readers, tile_batch, dev, values, window,
                                                                         min_confidence):
                    counts += tile_counts
                    writer.write(tile.core, classes, conf)
                done += len(tile_batch)
                devices.release_free_host_memory()  # between windows: see its docstring
                events.progress("classify", done, total)
            outputs = writer.commit()
        except BaseException:
            writer.abort()
            raise
    pixels = {c["name"]: int(n) for c, n in zip(class_table, counts[1:])}
    return {
        "outputs": outputs,
        "class_table": class_table,
        "metrics": {"pixels_per_class": pixels, "nodata_pixels": int(counts[0]),
                    "pixels_per_second": round(ref.width * ref.height / max(time.perf_counter() - started, 1e-9), 1),
                    "temperature": model_temperature(net),
                    **({"min_confidence": min_confidence, "unclassified_pixels": int(counts[-1])} if reject else {})},
        "timings": {"total_s": round(time.perf_counter() - started, 3)},
        "device": dev,
    }
