"""`train` and `finetune`: a dense network learns from sparse labels.

The loss is masked to labelled pixels; tiles are sampled around labels, class by class (stratified);
a spatially disjoint validation split (whole blocks of pixels) drives early stopping, so validation
pixels never sit next to training pixels they would trivially copy.
"""

import math
import os
import shlex
import time

import numpy as np

from backend.engine import device as devices
from backend import nets
from backend.engine import modalities
from backend.io.labels import load_labels
from backend.evaluation.metrics import confusion_matrix, summarize_confusion
from backend.engine.package import load_model, save_package, sha256_file
from backend.protocol import ErrorCode, LandFuseError
from backend.io.spectral import band_wavelengths
from backend.engine.tiles import iter_tiles

DEFAULT_EPOCHS = {"tiny": 40, "m3amba": 40, "bdgf": 40}
STEPS_PER_EPOCH = 16
BATCH_TILES = 8
VAL_FRACTION = 0.2
PATIENCE = 8
MAX_SCENE_BYTES = 6 * 1024 ** 3


def load_scene(readers, height, width, log):
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


def set_normalisation(reader):
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


def train_step(net, optimiser, schedule, xs, ys, class_weights):
    """One optimiser step on a batch: masked, class-weighted, label-smoothed cross-entropy plus the
    architecture's own auxiliary losses. Returns the loss."""
    import torch
    loss = torch.nn.functional.cross_entropy(net(xs), ys, weight=class_weights, ignore_index=-1, label_smoothing=0.05)
    for value in (net.extra_losses() if hasattr(net, "extra_losses") else {}).values():
        loss = loss + value
    optimiser.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    optimiser.step()
    schedule.step()
    return loss.item()


def balanced_accuracy(reference, prediction):
    """Mean per-class recall: the early-stopping score. Overall accuracy would pick the epoch that best
    predicts the dominant class (one class is 70 % of the DFC2018 crop's labels) at the minority ones' cost."""
    recalls = [float((prediction[reference == k] == k).mean()) for k in np.unique(reference)]
    return float(np.mean(recalls)) if recalls else 0.0


def spatial_split(targets, num_classes, block, seed):
    """Split labelled pixels into train/val by whole blocks, aiming at VAL_FRACTION of each class."""
    rng = np.random.default_rng(seed)
    h, w = targets.shape
    block_id = (np.arange(h)[:, None] // block) * (-(-w // block)) + (np.arange(w)[None, :] // block)
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

    def __init__(self, train_targets, tile, seed):
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


def _augment(batch_inputs, batch_targets, rng, torch):
    """Flips and 90° turns (land cover has no up), small brightness change and noise."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    out = []
    for x in batch_inputs:
        x = torch.rot90(x, k, dims=(2, 3))
        out.append(torch.flip(x, dims=(3,)) if flip else x)
    y = torch.rot90(batch_targets, k, dims=(1, 2))
    y = torch.flip(y, dims=(2,)) if flip else y
    out = [x * float(rng.uniform(0.95, 1.05)) + 0.02 * torch.randn_like(x) for x in out]
    return out, y


def predict_scene(net, arrays, halo, dev, rows=None, tile=128):
    """Dense class-index prediction of the in-memory scene (only tiles touching `rows` mask if given)."""
    import torch
    h, w = arrays[0].shape[1:]
    pred = np.full((h, w), -1, np.int64)
    net.eval()
    with torch.inference_mode():
        for t in iter_tiles(h, w, tile, halo):
            rs = slice(int(t.read.row_off), int(t.read.row_off + t.read.height))
            cs = slice(int(t.read.col_off), int(t.read.col_off + t.read.width))
            core_r = slice(int(t.core.row_off), int(t.core.row_off + t.core.height))
            core_c = slice(int(t.core.col_off), int(t.core.col_off + t.core.width))
            if rows is not None and not rows[core_r, core_c].any():
                continue
            x = [torch.from_numpy(a[:, rs, cs][None]).to(dev) for a in arrays]
            logits = net(x)
            out = logits.argmax(1)[0].cpu().numpy()
            pred[core_r, core_c] = out[t.row_off:t.row_off + int(t.core.height), t.col_off:t.col_off + int(t.core.width)]
    return pred


def _transfer_weights(net, base_state, base_index, old_k, log):
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


def _class_table(base_classes, label_classes):
    if not base_classes:
        return sorted(label_classes, key=lambda c: c["value"])
    table = list(base_classes)
    known = {c["value"] for c in table}
    table += [c for c in label_classes if c["value"] not in known]
    return table


def _card(manifest, command):
    m = manifest["metrics"]
    lines = [f"# {manifest['name']}", "",
             f"Architecture `{manifest['architecture']['name']}`, trained with LandFuse {manifest['training']['landfuse']}.", "",
             "## What it is for",
             "A scene-specific model: it knows the sensor band layout and the classes it was trained on. "
             "Use it on the same sensor and a similar scene; fine-tune it with labels for anything else.", "",
             "## How it was trained", "```", command, "```", "",
             f"- data: {', '.join(d['file'] for d in manifest['training']['data'])}",
             f"- labelled pixels: {m['train_pixels']} train / {m['val_pixels']} validation "
             f"(spatially disjoint blocks of {manifest['training']['split_block']} px, seed {manifest['training']['seed']})",
             f"- epochs: {manifest['training']['epochs_run']} (best {manifest['training']['best_epoch']}), "
             f"{manifest['training']['seconds']} s on {manifest['training']['device']}", "",
             "## Validation (held-out blocks, every pixel counted once)",
             f"- overall accuracy {m.get('oa')}, average accuracy {m.get('aa')}, kappa {m.get('kappa')}, mean F1 {m.get('mean_f1')}", "",
             "| class | F1 | validation pixels |", "|---|---|---|"]
    for name, row in m.get("per_class", {}).items():
        lines.append(f"| {name} | {row.get('f1')} | {row.get('support')} |")
    lines += ["", "## Classes", "| value | name | colour |", "|---|---|---|"]
    lines += [f"| {c['value']} | {c['name']} | {c['color']} |" for c in manifest["classes"]]
    return "\n".join(lines) + "\n"


def run_training(args, events):
    import torch
    started = time.perf_counter()
    log = events.log
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    dev = devices.resolve_device(args.device)
    finetune = args.command == "finetune"
    base_manifest = base_state = None
    if finetune:
        base_manifest, base_net = load_model(args.model, "cpu")
        base_state = base_net.state_dict()
        arch = base_manifest["architecture"]["name"]
        params = dict(base_manifest["architecture"]["params"])
        specs = base_manifest["modalities"]
    else:
        arch = args.arch
        params = nets.default_params(arch)
        specs = None
    out_dir = os.path.abspath(args.out)
    if not os.access(os.path.dirname(out_dir) or ".", os.W_OK):
        raise LandFuseError(ErrorCode.OUTPUT_NOT_WRITABLE, f"Cannot write the model folder here: {out_dir}")
    with modalities.open_modalities(args.hsi, args.aux, specs, log,
                                    getattr(args, "wavelength_list", None)) as (ref, readers):
        magnitudes = [None] * len(readers)
        if not finetune:
            magnitudes = [set_normalisation(r) for r in readers]
        labels, label_classes = load_labels(args.labels, ref, args.class_field,
                                            base_manifest["classes"] if finetune else None)
        arrays, valid = load_scene(readers, ref.height, ref.width, log)
        centres, _, _ = band_wavelengths(ref)
        wavelengths = [round(centres[b - 1], 3) for b in readers[0].used_bands] if centres else None
    classes = _class_table(base_manifest["classes"] if finetune else None, label_classes)
    if finetune and getattr(args, "only_labelled_classes", False):
        present = set(np.unique(labels).tolist())
        dropped = [c["name"] for c in classes if c["value"] not in present]
        classes = [c for c in classes if c["value"] in present]
        if dropped:
            log(f"Dropped {len(dropped)} class(es) no label uses: {', '.join(dropped)}")
    index_of = {c["value"]: i for i, c in enumerate(classes)}
    targets = np.full(labels.shape, -1, np.int64)
    for value, i in index_of.items():
        targets[(labels == value) & valid] = i
    n_labelled = int((targets >= 0).sum())
    if n_labelled == 0:
        raise LandFuseError(ErrorCode.BAD_LABELS, "Every labelled pixel falls on nodata in the image.")
    h, w = targets.shape
    tile = int(min(args.tile_size, h, w))
    tile -= tile % 8 if tile >= 16 else 0
    block = max(8, min(32, min(h, w) // 8))
    train_t, val_t = spatial_split(targets, len(classes), block, args.seed)
    log(f"{n_labelled} labelled px: {(train_t >= 0).sum()} train, {(val_t >= 0).sum()} validation "
        f"(blocks of {block} px); {len(classes)} classes")

    net = nets.build(arch, params, [a.shape[0] for a in arrays], len(classes))
    if finetune:
        base_values = [c["value"] for c in base_manifest["classes"]]
        _transfer_weights(net, base_state, [base_values.index(c["value"]) if c["value"] in base_values else None
                                            for c in classes], len(base_values), log)
    net.to(dev)
    halo = nets.halo(arch)
    epochs = args.epochs or (DEFAULT_EPOCHS.get(arch, 40) // (2 if finetune else 1))
    counts = np.bincount(train_t[train_t >= 0], minlength=len(classes)).astype(np.float64)
    weights = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    weights = torch.tensor(weights / weights[counts > 0].mean(), dtype=torch.float32, device=dev)
    optimiser = torch.optim.AdamW(net.parameters(), lr=5e-4 if finetune else 2e-3, weight_decay=1e-4)
    total_steps = epochs * STEPS_PER_EPOCH
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)))
    sampler = TileSampler(train_t, tile, args.seed)
    tensors = [torch.from_numpy(a) for a in arrays]
    target_t = torch.from_numpy(train_t)

    def batch():
        corners = [sampler.window() for _ in range(BATCH_TILES)]
        xs = [torch.stack([t[:, r:r + tile, c:c + tile] for r, c in corners]) for t in tensors]
        ys = torch.stack([target_t[r:r + tile, c:c + tile] for r, c in corners])
        xs, ys = _augment(xs, ys, rng, torch)
        return [x.to(dev) for x in xs], ys.to(dev)

    if hasattr(net, "pretrain_step") and not finetune:
        pre_steps = max(20, epochs * 2)
        pre_opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
        net.train()
        for step in range(pre_steps):
            xs, _ = batch()
            loss = net.pretrain_step(xs)
            pre_opt.zero_grad()
            loss.backward()
            pre_opt.step()
            if (step + 1) % 10 == 0 or step + 1 == pre_steps:
                events.progress("pretrain", step + 1, pre_steps)
        log(f"Unsupervised pretraining: {pre_steps} steps, last loss {loss.item():.4f}")

    has_val = bool((val_t >= 0).any())
    best = (-1.0, 0, None)
    epoch = 0
    for epoch in range(1, epochs + 1):
        net.train()
        losses = []
        for _ in range(STEPS_PER_EPOCH):
            losses.append(train_step(net, optimiser, schedule, *batch(), weights))
        if has_val:
            pred = predict_scene(net, arrays, halo, dev, rows=val_t >= 0)
            score = balanced_accuracy(val_t[val_t >= 0], pred[val_t >= 0])
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
    metrics = {"train_pixels": int((train_t >= 0).sum()), "val_pixels": int((val_t >= 0).sum()),
               "split": f"spatially disjoint blocks of {block} px, {int(VAL_FRACTION * 100)} % of each class"}
    if has_val:
        pred = predict_scene(net, arrays, halo, dev, rows=val_t >= 0)
        mask = val_t >= 0
        cm = confusion_matrix(val_t[mask], pred[mask], len(classes))
        metrics.update(summarize_confusion(cm, [c["name"] for c in classes]))
    seconds = round(time.perf_counter() - started, 1)
    manifest = _manifest(args, arch, params, readers, magnitudes, specs, wavelengths, classes, halo, metrics,
                         epoch, best[1], seconds, dev, block)
    command = "python -m backend " + shlex.join(getattr(args, "argv", None) or [args.command])
    manifest["training"]["command"] = command
    saved = save_package(out_dir, manifest, net.state_dict(), _card(manifest, command))
    return {"outputs": {"model": out_dir}, "metrics": metrics, "timings": {"total_s": seconds},
            "class_table": saved["classes"]}


def _manifest(args, arch, params, readers, magnitudes, specs, wavelengths, classes, halo, metrics,
              epochs_run, best_epoch, seconds, dev, block):
    import torch
    from backend import __version__
    modalities_out = []
    for i, reader in enumerate(readers):
        if specs is not None:
            modalities_out.append(dict(specs[i]))
            continue
        mod = {"name": "hsi" if i == 0 else f"aux{i}", "kind": "hsi" if i == 0 else "aux",
               "bands": reader.n_inputs, "source_bands": reader.source_count, "used_bands": list(reader.used_bands),
               "mean": [round(float(v), 6) for v in reader.mean], "std": [round(float(v), 6) for v in reader.std],
               "typical_magnitude": magnitudes[i], "source_file": os.path.basename(reader.path)}
        if reader.kind == "aux":
            mod["scene_offset"] = modalities.SCENE_OFFSET
        if i == 0 and wavelengths:
            mod["wavelengths_nm"] = wavelengths
        modalities_out.append(mod)
    data = []
    for path in [args.hsi] + list(args.aux) + [args.labels]:
        entry = {"file": os.path.basename(path)}
        if os.path.isfile(path) and os.path.getsize(path) < 2 * 1024 ** 3:
            entry["sha256"] = sha256_file(path)
        data.append(entry)
    name = args.name or os.path.basename(os.path.abspath(args.out))
    return {
        "format": "landfuse-model", "format_version": 1, "id": name, "name": name,
        "architecture": {"name": arch, "params": params},
        "modalities": modalities_out, "classes": classes, "halo": halo,
        "weights": {"file": "weights.safetensors", "sha256": "0" * 64},
        "training": {"landfuse": __version__, "torch": torch.__version__, "data": data, "seed": args.seed,
                     "epochs_run": epochs_run, "best_epoch": best_epoch, "seconds": seconds, "device": dev,
                     "split_block": block, "finetuned_from": getattr(args, "model", None) and os.path.basename(
                         os.path.abspath(args.model))},
        "metrics": metrics,
    }
