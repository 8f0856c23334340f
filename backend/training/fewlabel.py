"""`train` / `finetune` with the few-label recipe (backend.training.recipe), and its model card.

What `run_training` hands over: the built network (a base package's weights already in it when
fine-tuning), a `make_net()` that builds another one the same way, the scene in memory and every
labelled pixel as a class index. What happens:

1. a spatially blocked k-fold cross-validation of the recipe (shorter fits, CV_SCALE of the final
   steps) and of a random forest on the same folds: the figure the user gets, since no held-out
   subset of a few hundred labels can say more (and none is taken from the final fit);
2. the final fit on every label, for the fixed schedule the label count sets (no epoch chosen).
"""

from __future__ import annotations

import numpy as np

from backend.training import recipe

RECIPE = "fewlabel"
# What the few-label recipe adds to a new network's defaults (packages made before keep theirs).
ARCH_PARAMS = {"m3amba": {"spectral_dim": 64}, "bdgf": {"spectral_dim": 64}}
STEPS_PER_UNIT = 16   # progress "train" counts units of this many steps (and --epochs N means N units)


def arch_params(arch: str) -> dict:
    return dict(ARCH_PARAMS.get(arch, {}))


def _schedule(n_labelled: int, finetune: bool, epochs, scale: float = 1.0, self_training: bool = False) -> recipe.Schedule:
    """The first fit's schedule. `--epochs N` asks for N units of STEPS_PER_UNIT steps in all: the first
    fit and the self-training fit after it (if any) share them."""
    s = recipe.schedule_for(n_labelled, finetune, scale)
    if epochs:
        total = epochs * STEPS_PER_UNIT * scale
        first = total / (1 + recipe.SELF_TRAIN_SHARE) if self_training else total
        s = recipe.Schedule(max(1, int(round(first))), s.lr, s.weight_decay)
    return s


def fit_and_estimate(net, make_net, arrays, targets: np.ndarray, block: int, classes: list, finetune: bool,
                     epochs, seed: int, device: str, events, cross_validate: bool = True,
                     self_training: bool = False) -> dict:
    """Cross-validate the recipe (and the forest) on blocked folds, then fit `net` on every label.
    Returns {"fit": {...}, "metrics": {...}} for the manifest and the result event."""
    log = events.log
    n_labelled = int((targets >= 0).sum())
    final = _schedule(n_labelled, finetune, epochs, self_training=self_training)
    warmup = final.steps // 4 if recipe.can_warm_up(net) and not finetune else 0
    metrics = {"train_pixels": n_labelled, "val_pixels": 0, "recipe": RECIPE,
               "split": "no held-out subset: every label trains the final model; the estimate is a spatially "
                        f"blocked {recipe.CV_FOLDS}-fold cross-validation (blocks of {block} px)"}
    if cross_validate:
        fold_schedule = _schedule(n_labelled, finetune, epochs, recipe.CV_SCALE, self_training)
        log(f"Cross-validating the recipe on {recipe.CV_FOLDS} spatially blocked folds (blocks of {block} px, "
            f"{fold_schedule.steps} steps per fold) with a random forest on the same folds")
        cv = recipe.cross_validate(
            make_net, arrays, targets, len(classes), block, seed, fold_schedule, device,
            progress=lambda d, t: events.progress("cross-validation", d, t),
            pretrain=(lambda n: recipe.unlabelled_warmup(n, arrays, int(warmup * recipe.CV_SCALE), seed, device))
            if warmup else None, self_training=self_training)
        metrics.update(oa=cv["recipe"]["oa"], aa=cv["recipe"]["aa"], val_pixels=cv["pixels"], cross_validation=cv)
        if self_training:
            a, b = cv["without_self_training"], cv["recipe"]
            log(f"Self-training on the folds: OA {a['oa']:.3f} → {b['oa']:.3f}, AA {a['aa']:.3f} → {b['aa']:.3f}")
        log(f"Cross-validated estimate: OA {cv['recipe']['oa']:.3f}, AA {cv['recipe']['aa']:.3f}; random forest on "
            f"the same folds: OA {cv['random_forest']['oa']:.3f}, AA {cv['random_forest']['aa']:.3f}")
    if warmup:
        recipe.unlabelled_warmup(net, arrays, warmup, seed, device)
        log(f"Unsupervised warm-up on the unlabelled scene: {warmup} steps")
    second_steps = int(final.steps * recipe.SELF_TRAIN_SHARE) if self_training else 0
    units = max(1, (final.steps + second_steps) // STEPS_PER_UNIT)

    def progress(offset):
        return lambda d, t, loss: (events.progress("train", min(units, (offset + d) // STEPS_PER_UNIT), units)
                                   if (offset + d) % STEPS_PER_UNIT == 0 else None)
    done = recipe.fit(net, arrays, targets, final, seed, device, progress_every=1, progress=progress(0))
    log(f"Fitted on all {n_labelled} labelled px: {final.steps} steps (fixed schedule), last loss {done['last_loss']}")
    fit = {"steps": final.steps, "units": units, "warmup_steps": warmup, "lr": final.lr, "self_training": self_training}
    if self_training:
        second = recipe.self_train(net, arrays, targets, final, seed, device, progress=progress(final.steps),
                                   progress_every=1)
        log(f"Self-training: {second['pseudo_labels']} confident unlabelled px labelled by the model's own map, "
            f"fitted again with the real labels for {second['steps']} steps, last loss {second['last_loss']}")
        fit.update(self_training_steps=second["steps"], pseudo_labels=second["pseudo_labels"])
    return {"fit": fit, "metrics": metrics}


def card(manifest: dict, command: str) -> str:
    """The model card of a model trained with the few-label recipe."""
    m = manifest["metrics"]
    t = manifest["training"]
    cv = m.get("cross_validation")
    lines = [f"# {manifest['name']}", "",
             f"Architecture `{manifest['architecture']['name']}`, trained with LandFuse {t['landfuse']} "
             f"(few-label recipe).", "",
             "## What it is for",
             "A scene-specific model: it knows the sensor band layout and the classes it was trained on. "
             "Use it on the same sensor and a similar scene; fine-tune it with labels for anything else.", "",
             "## How it was trained", "```", command, "```", "",
             f"- data: {', '.join(d['file'] for d in t['data'])}",
             f"- start: {'the weights of ' + t['finetuned_from'] if t.get('finetuned_from') else 'from scratch'}"
             + (f"; input: {t['input']}" if t.get("input") else ""),
             f"- labelled pixels: {m['train_pixels']}, all used for the final fit (no validation subset held out)",
             f"- schedule: {t.get('steps')} optimiser steps, fixed by the label count (no epoch chosen), "
             f"{t.get('warmup_steps', 0)} unsupervised warm-up steps; {t['seconds']} s on {t['device']} "
             "(cross-validation included)"]
    if t.get("self_training_steps"):
        lines += [f"- self-training: after that fit, the model labelled {t.get('pseudo_labels')} confident unlabelled "
                  "pixels of the scene (inside fields of its own map, at most "
                  f"{recipe.PSEUDO_PER_LABEL} per label of each class) and was fitted again on those and the real "
                  f"labels for {t['self_training_steps']} steps"]
    lines += [""]
    if cv:
        lines += ["## How well it should do (spatially blocked cross-validation on your labels)",
                  f"Your labels were split into {cv['folds']} folds by whole blocks of {cv['block']} px; each fold was "
                  "predicted by a model fitted on the other folds, so every labelled pixel was predicted once by a "
                  "model that never saw its block. The fold models ran a shorter schedule "
                  f"({cv['steps_per_fold']} steps each) than the final model, so the figure is on the cautious side. "
                  "A random forest (300 trees, the same pixels' band values) ran on the same folds.", "",
                  "| model | OA | AA |", "|---|---|---|",
                  f"| this recipe | {cv['recipe']['oa']} | {cv['recipe']['aa']} |",
                  f"| random forest | {cv['random_forest']['oa']} | {cv['random_forest']['aa']} |"]
        if "without_self_training" in cv:
            lines += [f"| (this recipe before its self-training) | {cv['without_self_training']['oa']} | "
                      f"{cv['without_self_training']['aa']} |"]
        lines += ["",
                  f"{cv['pixels']} labelled pixels scored. Labels drawn close together read higher than the map "
                  "will: the estimate is only as spread out as your labels.", ""]
    else:
        lines += ["## How well it should do", "Not estimated (cross-validation was switched off).", ""]
    lines += ["## Classes", "| value | name | colour |", "|---|---|---|"]
    lines += [f"| {c['value']} | {c['name']} | {c['color']} |" for c in manifest["classes"]]
    return "\n".join(lines) + "\n"
