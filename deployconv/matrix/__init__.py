"""The model x target x device matrix: every (model, target, device, step) is one job with explicit
dependencies, run by a local process pool (default) or on a Ray cluster (`pip install deployconv[ray]`).

Layers, bottom up: `spec` (steps, cell specs, validation) and `graph` (the job graph) are pure;
`results` (layout, job records, hashes, matrix.json) writes files; `steps` runs one job by calling the
deployconv APIs; `scheduler` drives any executor; `local` and `ray_executor` are the executors (only
`ray_executor` imports ray); `summary`, `live` and `page` render.
"""
