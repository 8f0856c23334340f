"""Measuring models. `metrics` (the confusion matrix and its summaries; training's validation uses it
too, the one module of this package that training imports), `evaluate` (a class raster against
reference labels, JSON/HTML report) and `baselines` (the random forest every figure stands beside)
are the building blocks; on top sit the experiments: `benchmark` (networks vs the forest on real
datasets that `datasets` prepares), `generic_eval` (zero-shot and few-shot figures of the generic
model) and `demo` (the bundled scene end to end). Spatial block splits come from
`backend.synth.labels`.
"""
