"""`train` and `finetune`: a dense network learns from sparse labels.

The loss is masked to labelled pixels; tiles are sampled around labels, class by class (stratified);
a spatially disjoint validation split (whole blocks of pixels) drives early stopping, so validation
pixels never sit next to training pixels they would trivially copy.

`run_training(config, events)` reads the scene (`_read_scene`), turns labels into class indices and
splits them (`_targets`), builds the network (from a base package when fine-tuning), fits it
(`_fit`), scores the validation blocks and writes the package (`_manifest`, `_card`).
"""

from __future__ import annotations

import math
import os
import shlex
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from backend import nets
from backend.engine import device as devices
from backend.engine import modalities
from backend.engine.package import load_model, save_package, sha256_file
from backend.engine.tiles import iter_tiles
from backend.evaluation.metrics import confusion_matrix, summarize_confusion
from backend.io.labels import load_labels
from backend.io.paths import check_model_folder
from backend.io.spectral import band_wavelengths
from backend.protocol import ErrorCode, LandFuseError
from backend.synth.labels import block_ids
from backend.training import fewlabel, memory
from backend.training.config import TrainConfig
from backend.training.optimisation import augment_batch, class_weights, predict_scene, train_step

DEFAULT_EPOCHS = {"tiny": 40, "m3amba": 40, "bdgf": 40}
STEPS_PER_EPOCH = 16
BATCH_TILES = 8
VAL_FRACTION = 0.2
PATIENCE = 8
MAX_SCENE_BYTES = 6 * 1024 ** 3


def load_scene(readers, height: int, width: int, log):
    """Every modality as a normalised in-memory array (C, H, W) + the pixel validity (H, W)."""
    need = sum(r.n_inputs for r in readers) * height * width * 4
    if need > MAX_SCENE_BYTES:
        raise LandFuseError(ErrorCode.OUT_OF_MEMORY,
                            f"The training scene needs {need / 1024 ** 3:.1f} GiB in memory.",
                            "Clip the rasters to the labelled area before training.")
    arrays = [np.zeros((r.n_inputs, height, width), np.float32) for r in readers]
    valid = np.ones((height, width), bool)
    for tile in iter_tiles(height, width, 512, 0):
        rows = slice(int(tile.core.row_off), int(tile.core.row_off + tile.core.height))
        cols = slice(int(tile.core.col_off), int(tile.core.col_off + tile.core.width))
        for array, reader in zip(arrays, readers):
            block, pixel_valid = reader.read(tile.core)
            array[:, rows, cols] = block
            valid[rows, cols] &= pixel_valid
    log(f"Loaded the scene: {width}×{height} px, {100 * valid.mean():.1f} % valid")
    return arrays, valid


def set_normalisation(reader) -> Optional[float]:
    """Per-band mean/std of valid pixels (decimated read), and the value magnitude for scale checks.

    Aux modalities are first made relative to the scene's low level (see modalities.SCENE_OFFSET).
    """
    from backend.io import rasters
    data, ok = rasters.overview(reader.ds, reader.read_bands)
    if reader.kind == "aux":
        reader.offset = rasters.low_level(reader.ds, reader.read_bands)
        data = data - reader.offset[:, None, None]
    means, stds = [], []
    for band, band_ok in zip(data, ok):
        values = band[band_ok]
        means.append(float(values.mean()) if values.size else 0.0)
        stds.append(max(float(values.std()) if values.size else 1.0, 1e-6))
    reader.mean = np.asarray(means, np.float32)
    reader.std = np.asarray(stds, np.float32)
    return rasters.typical_magnitude(reader.ds, reader.read_bands)


def balanced_accuracy(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Mean per-class recall: the early-stopping score. Overall accuracy would pick the epoch that best
    predicts the dominant class (one class is 70 % of the DFC2018 crop's labels) at the minority ones' cost."""
    recalls = [float((prediction[reference == k] == k).mean()) for k in np.unique(reference)]
    return float(np.mean(recalls)) if recalls else 0.0


def spatial_split(targets: np.ndarray, num_classes: int, block: int, seed: int):
    """Split labelled pixels into train/val by whole blocks, aiming at VAL_FRACTION of each class."""
    rng = np.random.default_rng(seed)
    block_id = block_ids(targets.shape, block)
    val_blocks = set()
    for k in range(num_classes):
        ids = block_id[targets == k]
        if ids.size == 0:
            continue
        blocks, counts = np.unique(ids, return_counts=True)
        if len(blocks) < 2:
            continue  # a class seen in one block only stays whole in training
        order = rng.permutation(len(blocks))
        taken = sum(counts[i] for i in range(len(blocks)) if blocks[i] in val_blocks)
        for i in order:
            if taken >= VAL_FRACTION * ids.size:
                break
            if blocks[i] not in val_blocks and taken + counts[i] <= 0.5 * ids.size:
                val_blocks.add(int(blocks[i]))
                taken += counts[i]
    is_val = np.isin(block_id, list(val_blocks)) & (targets >= 0)
    train = np.where(is_val, -1, targets)
    val = np.where(is_val, targets, -1)
    return train, val


class TileSampler:
    """Random training tiles centred near a labelled pixel of a class drawn uniformly (stratified)."""

    def __init__(self, train_targets: np.ndarray, tile: int, seed: int):
        self.rng = np.random.default_rng(seed)
        self.tile = tile
        self.h, self.w = train_targets.shape
        self.pixels = [np.argwhere(train_targets == k) for k in range(int(train_targets.max()) + 1)]
        self.pixels = [p for p in self.pixels if len(p)]

    def window(self):
        pixels = self.pixels[self.rng.integers(len(self.pixels))]
        r, c = pixels[self.rng.integers(len(pixels))]
        r0 = int(np.clip(r - self.rng.integers(self.tile), 0, self.h - self.tile))
        c0 = int(np.clip(c - self.rng.integers(self.tile), 0, self.w - self.tile))
        return r0, c0


def transfer_weights(net, base_state, base_index, old_k: int, log) -> None:
    """Load a base model's weights. Tensors whose first dim is the base class count are rebuilt row by
    row: new class i takes base row base_index[i] (None: a class the base did not know keeps its fresh
    initialisation), so classes can be added, dropped or reordered."""
    own = net.state_dict()
    new_k = len(base_index)
    identity = base_index == list(range(old_k))
    remapped = 0
    for key, value in base_state.items():
        if key not in own:
            continue
        is_head = value.ndim > 0 and value.shape[0] == old_k and own[key].ndim > 0 \
            and own[key].shape[0] == new_k and own[key].shape[1:] == value.shape[1:]
        if is_head and not identity:
            merged = own[key].clone()
            for i, j in enumerate(base_index):
                if j is not None:
                    merged[i] = value[j]
            own[key] = merged
            remapped += 1
        elif own[key].shape == value.shape:
            own[key] = value
    net.load_state_dict(own)
    if remapped:
        log(f"Class head rebuilt from {old_k} to {new_k} classes ({remapped} tensors)")


def merged_class_table(base_classes, label_classes) -> list:
    """The base model's classes (in their order) followed by the labels' new ones; labels' alone, sorted."""
    if not base_classes:
        return sorted(label_classes, key=lambda c: c["value"])
    table = list(base_classes)
    known = {c["value"] for c in table}
    table += [c for c in label_classes if c["value"] not in known]
    return table


@dataclass
class _Base:
    """What fine-tuning starts from (nothing for `train`)."""
    manifest: Optional[dict] = None
    state: Optional[dict] = None

    @property
    def classes(self):
        return self.manifest["classes"] if self.manifest else None


@dataclass
class _Scene:
    """The scene in memory, and what the manifest needs to know of how it was read."""
    arrays: list
    valid: np.ndarray
    labels: np.ndarray
    label_classes: list
    modalities: list          # manifest entries, one per modality
    wavelengths: Optional[list]


@dataclass
class _Split:
    targets: np.ndarray       # class index per pixel, -1 unlabelled
    train: np.ndarray
    val: np.ndarray
    block: int


@dataclass
class _Fit:
    epochs_run: int
    best_epoch: int
    recipe: Optional[dict] = None   # the few-label recipe's schedule (steps, warm-up); None: the legacy loop
    remembered: list = field(default_factory=list)   # class indices kept from the base (training.memory)


def _modality_entries(readers, magnitudes, wavelengths) -> list:
    """The manifest's description of each modality of a model trained from scratch."""
    out = []
    for i, reader in enumerate(readers):
        mod = {"name": "hsi" if i == 0 else f"aux{i}", "kind": "hsi" if i == 0 else "aux",
               "bands": reader.n_inputs, "source_bands": reader.source_count, "used_bands": list(reader.used_bands),
               "mean": [round(float(v), 6) for v in reader.mean], "std": [round(float(v), 6) for v in reader.std],
               "typical_magnitude": magnitudes[i], "source_file": os.path.basename(reader.path)}
        if reader.kind == "aux":
            mod["scene_offset"] = modalities.SCENE_OFFSET
        if i == 0 and wavelengths:
            mod["wavelengths_nm"] = wavelengths
        out.append(mod)
    return out


def _read_scene(config: TrainConfig, base: _Base, log) -> _Scene:
    specs = base.manifest["modalities"] if base.manifest else None
    with modalities.open_modalities(config.hsi, list(config.aux), specs, log,
                                    list(config.wavelengths) if config.wavelengths else None) as (ref, readers):
        magnitudes = [None] * len(readers)
        if specs is None:   # a new model: its normalisation comes from this scene
            magnitudes = [set_normalisation(r) for r in readers]
        labels, label_classes = load_labels(config.labels, ref, config.class_field, base.classes)
        arrays, valid = load_scene(readers, ref.height, ref.width, log)
        centres, _, _ = band_wavelengths(ref)
        wavelengths = [round(centres[b - 1], 3) for b in readers[0].used_bands] if centres else None
        if specs is not None:   # a fine-tuned model keeps its base's description of each input
            entries = [dict(specs[i]) for i in range(len(readers))]
        else:
            entries = _modality_entries(readers, magnitudes, wavelengths)
    return _Scene(arrays, valid, labels, label_classes, entries, wavelengths)


def _class_table(config: TrainConfig, base: _Base, scene: _Scene, log) -> list:
    classes = merged_class_table(base.classes, scene.label_classes)
    if config.finetune and config.only_labelled_classes:
        present = set(np.unique(scene.labels).tolist())
        dropped = [c["name"] for c in classes if c["value"] not in present]
        classes = [c for c in classes if c["value"] in present]
        if dropped:
            log(f"Dropped {len(dropped)} class(es) no label uses: {', '.join(dropped)}")
    return classes


def _targets(scene: _Scene, classes: list, seed: int, log, holds_out: bool = True) -> _Split:
    """Class indices of the labelled valid pixels, split into train and validation blocks."""
    targets = np.full(scene.labels.shape, -1, np.int64)
    for i, c in enumerate(classes):
        targets[(scene.labels == c["value"]) & scene.valid] = i
    n_labelled = int((targets >= 0).sum())
    if n_labelled == 0:
        raise LandFuseError(ErrorCode.BAD_LABELS, "Every labelled pixel falls on nodata in the image.")
    labelled_classes = np.unique(targets[targets >= 0])
    if labelled_classes.size < 2:
        log(f"Only one class ({classes[int(labelled_classes[0])]['name']}) is labelled: a model trained on it "
            "can only paint every pixel that class. Label at least two classes.", "warning")
    h, w = targets.shape
    block = max(8, min(32, min(h, w) // 8))
    train, val = spatial_split(targets, len(classes), block, seed)
    if holds_out:
        log(f"{n_labelled} labelled px: {(train >= 0).sum()} train, {(val >= 0).sum()} validation "
            f"(blocks of {block} px); {len(classes)} classes")
    else:   # the few-label recipe trains on every label and cross-validates by blocks instead
        log(f"{n_labelled} labelled px, {len(classes)} classes")
    return _Split(targets, train, val, block)


def _training_tile(tile_size: int, h: int, w: int) -> int:
    """The requested tile, no larger than the scene, a multiple of 8 (the networks downsample by 4)."""
    tile = int(min(tile_size, h, w))
    tile -= tile % 8 if tile >= 16 else 0
    return tile


def _fit(net, arch: str, num_classes: int, config: TrainConfig, scene: _Scene, split: _Split, dev: str,
         events, rng: np.random.Generator, extra_loss=None) -> _Fit:
    """Optimise `net` on the train blocks; keep the weights of the epoch with the best validation score.
    `extra_loss(logits, inputs)` joins the label loss (a fine-tune's memory of unlabelled classes)."""
    import torch
    log = events.log
    h, w = split.targets.shape
    tile = _training_tile(config.tile_size, h, w)
    halo = nets.halo(arch)
    epochs = config.epochs or (DEFAULT_EPOCHS.get(arch, 40) // (2 if config.finetune else 1))
    counts = np.bincount(split.train[split.train >= 0], minlength=num_classes).astype(np.float64)
    weights = class_weights(counts, dev)
    optimiser = torch.optim.AdamW(net.parameters(), lr=5e-4 if config.finetune else 2e-3, weight_decay=1e-4)
    total_steps = epochs * STEPS_PER_EPOCH
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)))
    sampler = TileSampler(split.train, tile, config.seed)
    tensors = [torch.from_numpy(a) for a in scene.arrays]
    target_t = torch.from_numpy(split.train)

    def batch():
        corners = [sampler.window() for _ in range(BATCH_TILES)]
        xs = [torch.stack([t[:, r:r + tile, c:c + tile] for r, c in corners]) for t in tensors]
        ys = torch.stack([target_t[r:r + tile, c:c + tile] for r, c in corners])
        xs, ys = augment_batch(xs, ys, rng, torch)
        return [x.to(dev) for x in xs], ys.to(dev)

    if hasattr(net, "pretrain_step") and not config.finetune:
        _self_supervised_warmup(net, batch, max(20, epochs * 2), events)

    has_val = bool((split.val >= 0).any())
    best = (-1.0, 0, None)
    epoch = 0
    for epoch in range(1, epochs + 1):
        net.train()
        losses = [train_step(net, optimiser, schedule, *batch(), weights, extra_loss=extra_loss)
                  for _ in range(STEPS_PER_EPOCH)]
        if has_val:
            pred = predict_scene(net, scene.arrays, halo, dev, rows=split.val >= 0)
            score = balanced_accuracy(split.val[split.val >= 0], pred[split.val >= 0])
        else:
            score = -float(np.mean(losses))
        if score >= best[0]:  # a tie goes to the later epoch: tiny validation sets saturate early
            best = (score, epoch, {k: v.detach().clone().cpu() for k, v in net.state_dict().items()})
        events.progress("train", epoch, epochs)
        log(f"epoch {epoch}/{epochs}: loss {np.mean(losses):.4f}"
            + (f", validation balanced accuracy {score:.4f}" if has_val else ""))
        if epoch - best[1] >= PATIENCE:
            log(f"Early stop: no validation gain for {PATIENCE} epochs (best epoch {best[1]})")
            break
    net.load_state_dict(best[2])
    net.to(dev)
    return _Fit(epoch, best[1])


def _unlabelled_class_memory(base_net, base_index: list, classes: list, config: TrainConfig, scene: _Scene,
                             split: _Split, halo: int, dev: str, log):
    """(loss term, class indices) keeping the base's predictions for the classes no label uses and the
    base does not confuse with the labelled ones (training.memory); (None, []) when there are none."""
    labelled = split.train >= 0
    counts = np.bincount(split.train[labelled], minlength=len(classes))
    if not memory.unlabelled_base_classes(base_index, counts):
        return None, []     # every class the base knew has labels: nothing to remember, no need to ask it
    base_on_labels = predict_scene(base_net.to(dev).eval(), scene.arrays, halo, dev, rows=labelled)[labelled]
    remembered, confused = memory.classes_to_remember(base_index, counts, base_on_labels)
    for i in confused:
        share = memory.share_of_labels(base_on_labels, base_index[i])
        log(f"Class {classes[i]['name']} has no labels and is not kept from the base model: the base calls "
            f"{share:.0%} of your labelled pixels {classes[i]['name']}, so it confuses it with your classes here.")
    loss = memory.unlabelled_class_memory(base_net, base_index, remembered, config.resolved_memory_weight, dev)
    if loss is None:
        return None, []
    log(f"Classes without labels, kept as the base model predicts them: "
        f"{', '.join(classes[i]['name'] for i in remembered)} (weight {config.resolved_memory_weight:g})")
    return loss, remembered


def _self_supervised_warmup(net, batch, steps: int, events) -> None:
    """The architecture's own unsupervised objective (BDGF's masked multimodal denoising) before labels."""
    import torch
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3)
    net.train()
    for step in range(steps):
        xs, _ = batch()
        loss = net.pretrain_step(xs)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if (step + 1) % 10 == 0 or step + 1 == steps:
            events.progress("pretrain", step + 1, steps)
    events.log(f"Unsupervised pretraining: {steps} steps, last loss {loss.item():.4f}")


def _validation_metrics(net, arch: str, scene: _Scene, split: _Split, classes: list, dev: str) -> dict:
    metrics = {"train_pixels": int((split.train >= 0).sum()), "val_pixels": int((split.val >= 0).sum()),
               "split": f"spatially disjoint blocks of {split.block} px, {int(VAL_FRACTION * 100)} % of each class"}
    mask = split.val >= 0
    if mask.any():
        pred = predict_scene(net, scene.arrays, nets.halo(arch), dev, rows=mask)
        cm = confusion_matrix(split.val[mask], pred[mask], len(classes))
        metrics.update(summarize_confusion(cm, [c["name"] for c in classes]))
    return metrics


def run_training(config: TrainConfig, events) -> dict:
    """Train (or fine-tune) a model package on one scene's labels; returns the result event's fields."""
    import torch
    config.validate()
    started = time.perf_counter()
    log = events.log
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    dev = devices.resolve_device(config.device)
    base, base_net = _Base(), None
    if config.finetune:
        # The base is built (which draws from torch's seeded RNG) before the new net, as it always was:
        # the same seed gives the same model.
        base.manifest, base_net = load_model(config.base_model, "cpu")
        base.state = base_net.state_dict()
        arch = base.manifest["architecture"]["name"]
        params = dict(base.manifest["architecture"]["params"])
    else:
        arch = config.arch
        params = nets.default_params(arch)
        if config.resolved_recipe == fewlabel.RECIPE:
            params.update(fewlabel.arch_params(arch))
    # Refused before any work (io.paths): an input, a folder holding one, or a folder that is no model package.
    out_dir = check_model_folder(config.out, [config.hsi, *config.aux, config.labels, config.base_model], log)
    scene = _read_scene(config, base, log)
    classes = _class_table(config, base, scene, log)
    split = _targets(scene, classes, config.seed, log, holds_out=config.resolved_recipe != fewlabel.RECIPE)

    net = nets.build(arch, params, [a.shape[0] for a in scene.arrays], len(classes))
    base_index = None
    if config.finetune:
        base_values = [c["value"] for c in base.classes]
        base_index = [base_values.index(c["value"]) if c["value"] in base_values else None for c in classes]
        transfer_weights(net, base.state, base_index, len(base_values), log)
    net.to(dev)
    if config.resolved_recipe == fewlabel.RECIPE:
        def make_net():
            fresh = nets.build(arch, params, [a.shape[0] for a in scene.arrays], len(classes))
            if config.finetune:
                transfer_weights(fresh, base.state, base_index, len(base_values), lambda m: None)
            return fresh.to(dev)
        done = fewlabel.fit_and_estimate(net, make_net, scene.arrays, split.targets, split.block, classes,
                                         config.finetune, config.epochs, config.seed, dev, events,
                                         cross_validate=config.cross_validate, self_training=config.self_training)
        fit, metrics = _Fit(done["fit"]["units"], done["fit"]["units"], done["fit"]), done["metrics"]
    else:
        remember, remembered = None, []
        if config.resolved_memory_weight > 0:   # a fine-tune in this loop (TrainConfig.memory_applies)
            remember, remembered = _unlabelled_class_memory(base_net, base_index, classes, config, scene, split,
                                                            nets.halo(arch), dev, log)
        fit = _fit(net, arch, len(classes), config, scene, split, dev, events, rng, remember)
        fit.remembered = remembered
        metrics = _validation_metrics(net, arch, scene, split, classes, dev)
    seconds = round(time.perf_counter() - started, 1)
    command = "python -m backend " + shlex.join(config.cli_argv())
    manifest = _manifest(config, arch, params, scene, classes, metrics, fit, seconds, dev, split.block)
    manifest["training"]["command"] = command
    saved = save_package(out_dir, manifest, net.state_dict(), _card(manifest, command))
    return {"outputs": {"model": out_dir}, "metrics": metrics, "timings": {"total_s": seconds},
            "class_table": saved["classes"]}


def _manifest(config: TrainConfig, arch: str, params: dict, scene: _Scene, classes: list, metrics: dict,
              fit: _Fit, seconds: float, dev: str, block: int) -> dict:
    import torch

    from backend import __version__
    data = []
    for path in [config.hsi] + list(config.aux) + [config.labels]:
        entry = {"file": os.path.basename(path)}
        if os.path.isfile(path) and os.path.getsize(path) < 2 * 1024 ** 3:
            entry["sha256"] = sha256_file(path)
        data.append(entry)
    name = config.name or os.path.basename(os.path.abspath(config.out))
    return {
        "format": "landfuse-model", "format_version": 1, "id": name, "name": name,
        "architecture": {"name": arch, "params": params},
        "modalities": scene.modalities, "classes": classes, "halo": nets.halo(arch),
        "weights": {"file": "weights.safetensors", "sha256": "0" * 64},
        "training": {"landfuse": __version__, "torch": torch.__version__, "data": data, "seed": config.seed,
                     "epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch, "seconds": seconds, "device": dev,
                     "split_block": block, "finetuned_from": config.base_model and os.path.basename(
                         os.path.abspath(config.base_model)),
                     **({"remembered_from_base": {"weight": config.resolved_memory_weight,
                                                  "classes": [classes[i]["name"] for i in fit.remembered]}}
                        if fit.remembered else {}),
                     **({"recipe": fewlabel.RECIPE, **fit.recipe} if fit.recipe else {})},
        "metrics": metrics,
    }


def _card(manifest: dict, command: str) -> str:
    if manifest["training"].get("recipe") == fewlabel.RECIPE:
        return fewlabel.card(manifest, command)
    m = manifest["metrics"]
    t = manifest["training"]
    lines = [f"# {manifest['name']}", "",
             f"Architecture `{manifest['architecture']['name']}`, trained with LandFuse {t['landfuse']}.", "",
             "## What it is for",
             "A scene-specific model: it knows the sensor band layout and the classes it was trained on. "
             "Use it on the same sensor and a similar scene; fine-tune it with labels for anything else.", "",
             "## How it was trained", "```", command, "```", "",
             f"- data: {', '.join(d['file'] for d in t['data'])}",
             f"- labelled pixels: {m['train_pixels']} train / {m['val_pixels']} validation "
             f"(spatially disjoint blocks of {t['split_block']} px, seed {t['seed']})",
             f"- epochs: {t['epochs_run']} (best {t['best_epoch']}), {t['seconds']} s on {t['device']}",
             *([f"- classes without labels, kept as the base model {t['finetuned_from']} predicts them "
                f"(weight {t['remembered_from_base']['weight']:g}): "
                f"{', '.join(t['remembered_from_base']['classes'])}"] if t.get("remembered_from_base") else []),
             "",
             "## Validation (held-out blocks, every pixel counted once)",
             f"- overall accuracy {m.get('oa')}, average accuracy {m.get('aa')}, kappa {m.get('kappa')}, mean F1 {m.get('mean_f1')}", "",
             "| class | F1 | validation pixels |", "|---|---|---|"]
    for name, row in m.get("per_class", {}).items():
        lines.append(f"| {name} | {row.get('f1')} | {row.get('support')} |")
    lines += ["", "## Classes", "| value | name | colour |", "|---|---|---|"]
    lines += [f"| {c['value']} | {c['name']} | {c['color']} |" for c in manifest["classes"]]
    return "\n".join(lines) + "\n"
