"""`classify-batch`: many scenes, or one whole mosaic, classified on a Dask cluster.

    inputs.py   which scenes (files, globs, @lists, folders), their aux rasters, their output names
    worker.py   what runs on a worker: the per-worker model and scene caches, inspect / windows / assemble
    run.py      the client: LocalCluster or a scheduler address, the task graph, progress, the summary

Dask places, retries and balances the tasks; nothing here schedules work of its own.
"""
