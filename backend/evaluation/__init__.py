"""Measuring models: `metrics` (confusion matrix and its summaries, also used by training's
validation), `evaluate` (a class raster against reference labels, JSON/HTML report), `splits`-style
helpers live in `backend.synth.labels`; on top sit the experiments: `benchmark` (networks vs a random
forest on real datasets prepared by `datasets`), `generic_eval` (zero-shot and few-shot figures of
the generic model) and `demo` (the bundled scene end to end). `baselines` holds the random forest
every figure stands beside.
"""
