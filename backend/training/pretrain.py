"""`pretrain`: the generic, sensor-agnostic land-cover model, from synthetic scenes of real ingredients.

    scenes   backend.synth.library_scene, split "train" (training spectra, map parts and sensors only)
    input    HSI → canonical grid features (backend.engine.canonical); DSM (optional) relative to the scene's
             2nd percentile, plus a presence channel
    training random 64 px crops, flips/turns, a random brightness per crop (illumination, unknown
             radiometric scale), the radiometric residuals of atmospheric correction on most crops
             (residual_correction), the DSM dropped from half the crops (modality dropout: the model
             must be good with the HSI alone and better with a DSM), cosine schedule, fixed step count
Deterministic for a seed: scenes, crops and initial weights all follow from it.
"""

import math
import os
import shlex
import time
from dataclasses import dataclass

import numpy as np

from backend import nets
from backend.engine import canonical, modalities
from backend.engine import device as devices
from backend.engine.package import save_package, sha256_file
from backend.io.paths import check_model_folder
from backend.protocol import ErrorCode, LandFuseError
from backend.synth import library
from backend.synth.library_scene import render_library_scene
from backend.training.config import PretrainConfig
from backend.training.optimisation import augment_batch, class_weights, train_step

DSM_DROPOUT = 0.5
GAIN_RANGE = (0.6, 1.6)
# Radiometric residuals that a real reflectance product keeps after atmospheric correction, drawn per
# crop (residual_correction): a smooth spectral gain error (calibration, water-vapour and aerosol
# models), adjacency (a pixel's signal blended with its surroundings' mean) and a haze residual (an
# offset falling with wavelength, as path radiance does). The synthetic scenes are perfect reflectance;
# real ones are not, and without these the model learnt spectral details no real file keeps (issue 18,
# with litter left out of the library too: Samson zero-shot 36.7 / 38.0 → 76.2 / 62.9 % OA for
# pretraining seeds 0 / 1, held-out synthetic scenes not worse; docs/REPRODUCIBILITY.md).
RESIDUAL_SHARE = 0.7       # of the crops
CURVE_SIGMA = 0.06         # std of each of the three low-frequency terms of the log gain curve
ADJACENCY_SHARE = 0.5      # of those crops get adjacency, …
ADJACENCY_MAX = 0.25       # … up to this share of the crop's mean reflectance in every pixel
HAZE_SHARE = 0.3           # of those crops get haze, …
HAZE_MAX = 0.015           # … up to this offset (reflectance) at 550 nm, ∝ λ^-2


def residual_correction(x: np.ndarray, f_mean: np.ndarray, f_std: np.ndarray, rng) -> None:
    """Give one normalised crop of canonical features (N_FEATURES, h, w) a drawn radiometric residual,
    in place: back to reflectance per bin (shape × brightness), distort, then shape and log brightness
    again exactly as canonical.features computes them. Uncovered bins and invalid pixels stay as they are."""
    nb = canonical.N_BINS
    covered = x[nb + 1:] > 0.5                      # (bins, h, w): invalid pixels have nothing covered
    pixel = covered.any(axis=0)
    if not pixel.any():
        return
    shape = x[:nb] * f_std[:nb, None, None] + f_mean[:nb, None, None]
    log_b = x[nb] * f_std[nb] + f_mean[nb]
    refl = np.where(covered, shape * (10.0 ** log_b)[None], 0.0)
    t = (canonical.GRID_NM - canonical.GRID_START_NM) / (canonical.GRID_STOP_NM - canonical.GRID_START_NM)
    log_gain = sum(rng.normal(0.0, CURVE_SIGMA) * np.cos(np.pi * k * t + rng.uniform(0.0, np.pi)) for k in (1, 2, 3))
    refl = refl * np.exp(log_gain)[:, None, None]
    if rng.random() < ADJACENCY_SHARE:
        share = rng.uniform(0.0, ADJACENCY_MAX)
        refl = (1.0 - share) * refl + share * refl[:, pixel].mean(axis=1)[:, None, None]
    if rng.random() < HAZE_SHARE:
        refl = refl + rng.uniform(0.0, HAZE_MAX) * (canonical.GRID_NM / 550.0)[:, None, None] ** -2.0
    in_core = (canonical.GRID_NM >= canonical.BRIGHTNESS_NM[0]) & (canonical.GRID_NM <= canonical.BRIGHTNESS_NM[1])
    core = covered & in_core[:, None, None]
    if not core[:, pixel].any():   # a sensor without 450–900 nm: all covered bins, as canonical.features does
        core = covered
    brightness = np.maximum((refl * core).sum(0) / np.maximum(core.sum(0), 1), canonical.MIN_BRIGHTNESS)
    x[:nb] = np.where(covered, (refl / brightness - f_mean[:nb, None, None]) / f_std[:nb, None, None], x[:nb])
    x[nb] = np.where(pixel, (np.log10(brightness) - f_mean[nb]) / f_std[nb], x[nb])


def scene_arrays(scene):
    """(features (N_FEATURES, h, w) unnormalised, dsm (1, h, w) relative to its p2, targets (h, w) int64
    with -1 where unlabelled/nodata) — the same computation SpectralReader does on a raster."""
    good = ~scene["bad"]
    weights, covered = canonical.resampling(scene["centres"][good])
    # stored reflectance is never negative (uint16 products clip at their smallest step): noise on dark
    # water in the SWIR would otherwise give shapes no real file has
    cube = np.clip(np.ascontiguousarray(scene["hsi"][:, :, good].transpose(2, 0, 1)), 1e-4, None)
    feats = canonical.band_features(cube, weights, covered)
    feats[:, ~scene["valid"]] = 0.0
    dsm = scene["dsm"] - np.percentile(scene["dsm"][scene["valid"]], 2)
    targets = scene["labels"].astype(np.int64) - 1
    targets[~scene["valid"]] = -1
    return feats, dsm[None].astype(np.float32), targets


# Smallest std a channel is normalised by: a channel that hardly varied in pretraining must not turn a
# small difference on a new sensor into hundreds of standard deviations.
MIN_STD = 0.05


def _stats(arrays, valids):
    n = sum(int(v.sum()) for v in valids)
    mean = sum(a[:, v].sum(axis=1, dtype=np.float64) for a, v in zip(arrays, valids)) / n
    var = sum(((a[:, v] - mean[:, None]) ** 2).sum(axis=1) for a, v in zip(arrays, valids)) / n
    return mean.astype(np.float32), np.maximum(np.sqrt(var), MIN_STD).astype(np.float32)


def feature_stats(feats, valids):
    """Normalisation of the canonical features: shape and brightness by their pretraining mean/std;
    the coverage mask is kept 0/1 (mean 0, std 1) so a sensor lacking a bin that every pretraining
    sensor had reads as plainly uncovered, not as an extreme value. Also returns the fraction of
    pretraining pixels each bin was covered in: bins (almost) never covered are masked at inference."""
    mean, std = _stats(feats, valids)
    mask = slice(canonical.N_BINS + 1, None)
    coverage = mean[mask].copy()
    mean[mask], std[mask] = 0.0, 1.0
    return mean, std, coverage


def build_training_set(n_scenes, size, seed, log, progress=None, data_dir=None):
    feats, dsms, targets, valids, used, magnitudes = [], [], [], [], [], []
    for i in range(n_scenes):
        scene = render_library_scene(seed * 100_000 + i, "train", size=size, data_dir=data_dir)
        f, d, t = scene_arrays(scene)
        feats.append(f)
        dsms.append(d)
        targets.append(t)
        valids.append(scene["valid"])
        magnitudes.append(float(np.median(np.abs(scene["hsi"][scene["valid"]][:, ~scene["bad"]]))))
        used.append(f"{scene['sensor']} ({scene['layout']} layout, {scene['pixel_size']:g} m)")
        if progress:
            progress("scenes", i + 1, n_scenes)
    log(f"Rendered {n_scenes} pretraining scenes of {size}×{size} px")
    return feats, dsms, targets, valids, used, float(np.median(magnitudes))


@dataclass
class _Normalisation:
    """Per-channel statistics of the pretraining set; the manifest records them for inference."""
    f_mean: np.ndarray
    f_std: np.ndarray
    coverage: np.ndarray
    d_mean: np.ndarray
    d_std: np.ndarray


def _normalise_in_place(feats, dsms, valids) -> _Normalisation:
    """Standardise every scene's features and heights, zero outside valid pixels. In place: the
    training set is the largest thing in memory."""
    f_mean, f_std, coverage = feature_stats(feats, valids)
    d_mean, d_std = _stats(dsms, valids)
    for f, d in zip(feats, dsms):
        f -= f_mean[:, None, None]
        f /= f_std[:, None, None]
        d -= d_mean[:, None, None]
        d /= d_std[:, None, None]
    for f, d, v in zip(feats, dsms, valids):
        f[:, ~v] = 0.0
        d[:, ~v] = 0.0
    return _Normalisation(f_mean, f_std, coverage, d_mean, d_std)


class _CropSampler:
    """Random crops of random scenes, with radiometric residuals (residual_correction) and a random
    brightness per crop (illumination and unknown radiometric scale), and the DSM dropped from a share
    of them (the model must do without)."""

    def __init__(self, feats, dsms, targets, norm: _Normalisation, config: PretrainConfig, rng, dev):
        self.feats, self.dsms, self.targets = feats, dsms, targets
        self.f_mean, self.f_std = norm.f_mean, norm.f_std
        self.config, self.rng, self.dev = config, rng, dev
        self.crop = min(config.crop, config.size)

    def batch(self):
        import torch
        rng, crop, size = self.rng, self.crop, self.config.size
        log_b = canonical.N_BINS   # the log-brightness channel
        xs, ds, ys = [], [], []
        for _ in range(self.config.batch):
            k = int(rng.integers(len(self.feats)))
            r, c = (int(rng.integers(size - crop + 1)) for _ in range(2))
            x = self.feats[k][:, r:r + crop, c:c + crop].copy()
            if rng.random() < RESIDUAL_SHARE:
                residual_correction(x, self.f_mean, self.f_std, rng)
            x[log_b] += math.log10(rng.uniform(*GAIN_RANGE)) / self.f_std[log_b]
            d = self.dsms[k][:, r:r + crop, c:c + crop]
            present = rng.random() >= DSM_DROPOUT
            d = np.concatenate([d, np.full_like(d, 1.0)]) if present else np.zeros((2, crop, crop), np.float32)
            xs.append(x)
            ds.append(d)
            ys.append(self.targets[k][r:r + crop, c:c + crop])
        xb = [torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ds))]
        xb, yb = augment_batch(xb, torch.from_numpy(np.stack(ys)), rng, torch)
        return [x.to(self.dev) for x in xb], yb.to(self.dev)


def _optimiser(net, steps: int):
    """AdamW with a 50-step warm-up into a cosine decay over the fixed step count."""
    import torch
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    return optimiser, schedule


def _require_data_dir() -> str:
    data_dir = library.shared_data_dir()
    if data_dir is None:
        raise LandFuseError(ErrorCode.INPUT_NOT_FOUND, "Pretraining needs the real spectra and maps in ../shared/data.",
                            "Put the shared data folder beside the repository or set LANDFUSE_SHARED_DATA.")
    return data_dir


def run_pretraining(config: PretrainConfig, events) -> dict:
    """Render the synthetic set, fit the generic model for a fixed number of steps, write the package.
    Deterministic for the seed: the order of every random draw below is part of the recipe."""
    import torch
    config.validate()
    started = time.perf_counter()
    log = events.log
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    rng = np.random.default_rng(config.seed)
    out_dir = check_model_folder(config.out, [], log)   # before any work: see io.paths
    data_dir = _require_data_dir()
    feats, dsms, targets, valids, used, magnitude = build_training_set(config.scenes, config.size, config.seed, log,
                                                                       events.progress, data_dir)
    norm = _normalise_in_place(feats, dsms, valids)
    classes = [dict(c) for c in library.GENERIC_CLASSES]
    arch = config.arch
    params = nets.default_params(arch)
    net = nets.build(arch, params, [canonical.N_FEATURES, 2], len(classes))
    dev = devices.resolve_device(config.device)
    net.to(dev)
    counts = np.bincount(np.concatenate([t[t >= 0] for t in targets]), minlength=len(classes)).astype(np.float64)
    weights = class_weights(counts, dev)
    optimiser, schedule = _optimiser(net, config.steps)
    sampler = _CropSampler(feats, dsms, targets, norm, config, rng, dev)

    net.train()
    losses = []
    for step in range(config.steps):
        losses.append(train_step(net, optimiser, schedule, *sampler.batch(), weights))
        if (step + 1) % 20 == 0 or step + 1 == config.steps:
            events.progress("pretrain", step + 1, config.steps)
        if (step + 1) % 100 == 0:
            log(f"step {step + 1}/{config.steps}: loss {np.mean(losses[-100:]):.4f}")
    seconds = round(time.perf_counter() - started, 1)
    manifest = _manifest(config, arch, params, classes, norm, used, losses, seconds, dev, data_dir, magnitude)
    save_package(out_dir, manifest, net.state_dict(), model_card(manifest))
    return {"outputs": {"model": out_dir}, "metrics": {"final_loss": manifest["training"]["final_loss"]},
            "timings": {"total_s": seconds}, "class_table": classes}


def _versions():
    from importlib import metadata

    import torch
    out = {"torch": torch.__version__, "numpy": np.__version__}
    for pkg in ("scipy", "rasterio", "earthlib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _data_files(data_dir):
    files = library.SOURCE_FILES if hasattr(library, "SOURCE_FILES") else ()
    return [{"file": os.path.relpath(p, data_dir), "sha256": sha256_file(p)}
            for p in (os.path.join(data_dir, f) for f in files) if os.path.isfile(p)]


def _manifest(config: PretrainConfig, arch: str, params: dict, classes: list, norm: _Normalisation, used: list,
              losses: list, seconds: float, dev: str, data_dir: str, magnitude: float) -> dict:
    from backend import __version__
    name = config.name or os.path.basename(os.path.abspath(config.out))
    command = "python -m backend " + shlex.join(config.cli_argv())
    rounded = lambda a: [round(float(v), 6) for v in a]  # noqa: E731
    return {
        "format": "landfuse-model", "format_version": 1, "id": name, "name": name, "generic": True,
        "architecture": {"name": arch, "params": params},
        "modalities": [
            {"name": "hsi", "kind": "hsi", "bands": canonical.N_FEATURES, "spectral_grid": canonical.GRID_ID,
             "mean": rounded(norm.f_mean), "std": rounded(norm.f_std), "typical_magnitude": round(magnitude, 5),
             "trained_coverage": rounded(norm.coverage)},
            {"name": "dsm", "kind": "aux", "bands": 1, "source_bands": 1, "used_bands": [1], "optional": True,
             "scene_offset": modalities.SCENE_OFFSET, "mean": rounded(norm.d_mean), "std": rounded(norm.d_std)},
        ],
        "classes": classes, "halo": nets.halo(arch),
        "weights": {"file": "weights.safetensors", "sha256": "0" * 64},
        "training": {"landfuse": __version__, "command": command, "seed": config.seed, "scenes": config.scenes,
                     "scene_size": config.size, "steps": config.steps, "crop": config.crop, "batch": config.batch,
                     "seconds": seconds, "device": dev, "versions": _versions(),
                     "final_loss": round(float(np.mean(losses[-100:])), 4),
                     "sensors_seen": sorted(set(u.split(" (")[0] for u in used if not u.startswith("random"))),
                     "random_sensors": sum(u.startswith("random") for u in used),
                     "data": _data_files(data_dir)},
        "metrics": {},
    }


def model_card(manifest, evaluation_md=""):
    t = manifest["training"]
    lines = [
        f"# {manifest['name']} — generic land-cover model", "",
        f"Architecture `{manifest['architecture']['name']}`; classes: "
        + ", ".join(c["name"] for c in manifest["classes"]) + ".", "",
        "## What it is for",
        "A first map on any imaging spectrometer whose band wavelengths are known (band metadata, ENVI header "
        "or `--wavelengths`), before a single label is drawn; a DSM improves it but is optional. Fine-tune it "
        "with a few labels per class (`finetune --model` this folder) for your scene and classes.", "",
        "## Input: canonical spectral grid",
        f"Bands are resampled onto `{canonical.GRID_ID}`: {canonical.N_BINS} Gaussian bins of "
        f"{canonical.GRID_STEP_NM:g} nm from {canonical.GRID_START_NM:g} to {canonical.GRID_STOP_NM:g} nm, with a "
        "coverage mask (bins a sensor lacks or loses to bad bands are marked, not zero-filled), per-pixel "
        "spectral shape and log brightness. Chosen over a wavelength-conditioned input layer because the mapping "
        "is fixed and inspectable and the network behind it stays a plain fixed-width network (see "
        "backend/canonical.py).", "",
        "## How it was trained", "```", t["command"], "```", "",
        f"- {t['scenes']} synthetic scenes of {t['scene_size']}×{t['scene_size']} px (backend/synth/library_scene.py, "
        "split `train`): real spectra (EnMAP Berlin library, Houston 2013 CASI training spectra, earthlib) "
        "mapped to the six classes (backend/synth/library.py), real map shapes (Berlin, Trento, MUUFL, Houston, "
        "Augsburg label maps) or generated towns, heights from real LiDAR (Trento, MUUFL), sun/shade, "
        "sub-pixel mixing, sensor band responses, noise, bad bands; earthlib's litter spectra are left out "
        "(alone they look like soil, not like any of the six classes)",
        f"- sensors: {', '.join(t['sensors_seen'])} and {t['random_sensors']} scenes of random sensors",
        f"- {t['steps']} steps of {t['batch']} crops of {t['crop']} px, seed {t['seed']}; DSM dropped from half "
        f"the crops; on {round(100 * RESIDUAL_SHARE)} % of the crops the radiometric residuals of atmospheric "
        "correction (a smooth spectral gain error, adjacency, haze); "
        f"{t['seconds']} s on {t['device']}; final loss {t['final_loss']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in t["versions"].items()), "",
    ]
    if evaluation_md:
        lines += [evaluation_md.strip(), ""]
    lines += ["## Classes", "| value | name | colour |", "|---|---|---|"]
    lines += [f"| {c['value']} | {c['name']} | {c['color']} |" for c in manifest["classes"]]
    return "\n".join(lines) + "\n"
