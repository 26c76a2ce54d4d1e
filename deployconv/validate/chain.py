"""The parity chain's stages, built in one place for `export` and `validate`: the PyTorch stages (fp64 train
form, fp32 train form, fp32 deploy form), a stage over any runtime Runner (ONNX Runtime, the TensorRT engine),
and the chain `validate` runs against reference.npz. A stage is `(name, batch -> output)`; a batch and an output
are an array, or a dict of named arrays for models with a declared IOSpec (`layout`).

Torch-free at import: torch and the model code load only when a PyTorch stage is built."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deployconv.core.errors import BadInputError, CheckFailedError
from deployconv.core.outputs import flatten
from deployconv.runtime.ort import OrtRunner
from deployconv.runtime.trt import TrtRunner
from deployconv.validate.io_layout import IOLayout

Batch = np.ndarray | dict[str, np.ndarray]
StageFn = Callable[[Batch], Any]
Stage = tuple[str, StageFn]
RECORDED = "reference (train-fp32, recorded)"


def _torch_fn(module: Any, dtype: Any, layout: IOLayout | None) -> StageFn:
    import torch

    if layout is None:
        def run(batch: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                out = module(torch.from_numpy(batch).to(dtype))
            out = out[0] if isinstance(out, (tuple, list)) else out
            return out.double().numpy()

        return run
    from deployconv.models.io import feed_args  # torch

    names = layout.outputs.names

    def run_named(batch: Batch) -> Any:
        feed = batch if isinstance(batch, dict) else {layout.spec.inputs[0].name: batch}
        with torch.no_grad():
            out = module(*feed_args(layout.spec, feed, dtype))
        values = [t.double().numpy() for t in flatten(out).tensors]
        if len(names) == 1:
            return np.asarray(values[0], dtype=np.float64)
        return {n: np.asarray(v, dtype=np.float64) for n, v in zip(names, values)}

    return run_named


def torch_stages(train: Any, deploy: Any, layout: IOLayout | None = None) -> list[Stage]:
    """The PyTorch half of the chain: fp64 reference, fp32 train form, fp32 deploy form. `layout`: named inputs
    and outputs (None: the classic single image in, one tensor out)."""
    import torch

    return [
        ("train-fp64", _torch_fn(copy.deepcopy(train).double(), torch.float64, layout)),
        ("train-fp32", _torch_fn(train, torch.float32, layout)),
        ("deploy-fp32", _torch_fn(deploy, torch.float32, layout)),
    ]


def runner_stage(runner: Any, max_batch: int | None = None, names: Sequence[str] | None = None) -> StageFn:
    """A stage over a runtime Runner (activated here): inputs cast to what the model takes (fp16 I/O graphs take
    fp16), fed in chunks of the model's static batch (DLA) or of at most `max_batch`. `names`: the outputs, in the
    manifest's order (None: the first output, the classic form)."""
    runner.activate()
    meta = runner.input_metadata()
    first = next(iter(meta))
    shape = meta[first].shape
    static = shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None

    def cast(k: str, v: np.ndarray) -> np.ndarray:
        dtype = meta[k].dtype if k in meta else None
        return v.astype(dtype if dtype is not None else (np.float32 if names is None else v.dtype))

    def run(batch: Batch) -> Any:
        feed = batch if isinstance(batch, dict) else {first: batch}
        n = len(next(iter(feed.values())))
        if static and n % static:
            raise BadInputError(f"reference.npz has {n} samples, not a multiple of the model's batch {static}",
                                fix="re-export: the reference must be recorded at the model's batch")
        step = static or min(n, max_batch or n)
        chunks = [runner.infer({k: cast(k, v[i:i + step]) for k, v in feed.items()}) for i in range(0, n, step)]
        if names is None:
            return np.concatenate([np.asarray(next(iter(c.values())), dtype=np.float64) for c in chunks], axis=0)
        missing = [o for o in names if o not in chunks[0]]
        if missing:
            raise CheckFailedError(f"{runner.name} has no output(s) {missing}",
                                   why=f"its outputs: {list(chunks[0])}; the manifest records {list(names)}",
                                   fix="re-export: the runtime graph and the manifest disagree")
        cat = {k: np.concatenate([np.asarray(c[k], dtype=np.float64) for c in chunks], axis=0) for k in names}
        return cat[names[0]] if len(names) == 1 else cat

    return run


def ort_stage(model: Any, threads: int | None = None, layout: IOLayout | None = None) -> StageFn:
    """A stage running an ONNX model (a ModelProto, serialized bytes or a path) on ONNX Runtime CPU."""
    source = model.SerializeToString() if hasattr(model, "SerializeToString") else model
    return runner_stage(OrtRunner(source, threads=threads), names=layout.outputs.names if layout else None)


def engine_runner(plan: Path, plugins: list[str], allow_host_code: bool) -> Any:
    """The TensorRT runner over a serialized engine (engine.plan); tensorrt loads when it is activated."""
    return TrtRunner(plan, plugins=plugins, allow_host_code=allow_host_code)


def reference_stages(expected: Batch, torch_chain: Sequence[Stage] | None,
                     model_stages: Sequence[Stage]) -> list[Stage]:
    """The chain `validate` runs: fp64 -> fp32 train -> the recorded reference (which must equal a fresh fp32
    run) -> deploy -> the runtimes; the recorded reference -> the runtimes where PyTorch cannot run."""
    recorded: Stage = (RECORDED, lambda _b: expected)
    if torch_chain:
        fp64, fp32, deploy = torch_chain
        return [fp64, fp32, recorded, deploy, *model_stages]
    return [recorded, *model_stages]
