"""Inference: from opened rasters to a class map, the path every command that classifies shares.

`modalities` turns rasters into normalised network inputs as a model package describes them
(`canonical` resamples any band set onto the generic model's wavelength grid); `tiles` cuts the
scene into windows with a halo of context and groups them into batches; `package` reads and writes
model folders (model.json + weights.safetensors + card) and builds their networks; `device` picks
CPU or CUDA and tunes the host allocator; `classify` runs the window loop and hands each window to
the writers in `backend.io.output`; `diagnostics` reports what this machine offers.
"""
