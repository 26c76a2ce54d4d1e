"""The export pipeline's steps for a declared IOSpec (several inputs, named outputs, dynamic sizes): parity
stages over named feeds and outputs, the feeds per shape point, and the checks that turn a model that rejects
its spec into a clear error. The classic single-image path stays in pipeline.py unchanged."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch

from deployconv.core.io_spec import IOSpec
from deployconv.core.outputs import Flat, check_same, flatten
from deployconv.models.io import example_args, feed_args, run_checked

Batch = np.ndarray | dict[str, np.ndarray]


@dataclass
class IOPlan:
    spec: IOSpec
    outputs: Flat  # names and structure of the flattened outputs
    probe: tuple  # the tracing example (opt sizes, batch >= 2 so torch.export keeps a dynamic batch free)
    small_probe: tuple = ()  # the reparameterization probe: opt sizes at the smallest batch (cheap in fp64)

    @property
    def single_input(self) -> bool:
        return len(self.spec.inputs) == 1

    def to_manifest(self) -> dict[str, Any]:
        return {**self.spec.to_dict(), "outputs": self.outputs.names, "output_structure": self.outputs.structure}


def plan_io(train: torch.nn.Module, spec: IOSpec, name: str, seed: int) -> IOPlan:
    """Run the train form at the example sizes and at the range ends: a spec the model rejects, or outputs whose
    structure changes between calls, is a BadInputError here (naming the module), not a traceback later."""
    probe = example_args(spec, seed)
    batches = [spec.ranges[s].min for s in spec.symbols() if spec.is_batch_symbol(s)]
    small = batches[0] if batches else None  # the range ends are checked at the smallest batch (cost)
    small_probe = feed_args(spec, spec.feeds("opt", batch=small, count=1, seed=seed)[0])
    first = flatten(run_checked(train, small_probe, f"{name} with {', '.join(i.describe() for i in spec.inputs)}"),
                    name)
    for point in ("min", "max") if spec.dynamic_symbols() else ():
        feed = spec.feeds(point, batch=small, count=1, seed=seed)[0]
        args = feed_args(spec, feed)
        other = flatten(run_checked(train, args, f"{name} at the {point} sizes {spec.shapes_at(point)}"), name)
        check_same(first, other, name)
    again = flatten(run_checked(train, small_probe, name), name)
    check_same(first, again, name)
    return IOPlan(spec, first, probe, small_probe)


def as_batch(feed: dict[str, np.ndarray], plan: IOPlan) -> Batch:
    """One input travels as a plain array (so the precision and bisection steps take it), several as a dict."""
    return feed[plan.spec.inputs[0].name] if plan.single_input else feed


def point_batches(plan: IOPlan, point: str, size: int, count: int, seed: int) -> list[Batch]:
    return [as_batch(f, plan) for f in plan.spec.feeds(point, batch=size, count=count, seed=seed)]


def _named(plan: IOPlan, values: list) -> np.ndarray | dict[str, np.ndarray]:
    if len(plan.outputs.names) == 1:
        return np.asarray(values[0], dtype=np.float64)
    return {n: np.asarray(v, dtype=np.float64) for n, v in zip(plan.outputs.names, values)}


def torch_stage(module: torch.nn.Module, dtype: torch.dtype, plan: IOPlan) -> Callable[[Batch], Any]:
    def run(batch: Batch) -> Any:
        feed = batch if isinstance(batch, dict) else {plan.spec.inputs[0].name: batch}
        with torch.no_grad():
            out = module(*feed_args(plan.spec, feed, dtype))
        return _named(plan, [t.double().numpy() for t in flatten(out).tensors])

    return run


def torch_stages(train: torch.nn.Module, deploy: torch.nn.Module, plan: IOPlan) -> list:
    return [
        ("train-fp64", torch_stage(copy.deepcopy(train).double(), torch.float64, plan)),
        ("train-fp32", torch_stage(train, torch.float32, plan)),
        ("deploy-fp32", torch_stage(deploy, torch.float32, plan)),
    ]


def ort_stage(proto: onnx.ModelProto, threads: int | None, names: list[str]) -> Callable[[Batch], Any]:
    from deployconv.runtime.ort import OrtRunner
    from deployconv.validate.named_stage import runner_stage

    runner = OrtRunner(proto.SerializeToString(), threads=threads).activate()
    return runner_stage(runner, names)


def plan_from_manifest(io_spec: dict[str, Any], seed: int) -> IOPlan:
    """The IOPlan an export recorded (manifest `io_spec`), for re-running the PyTorch stages."""
    spec = IOSpec.from_dict(io_spec)
    batches = [spec.ranges[s].min for s in spec.symbols() if spec.is_batch_symbol(s)]
    small = feed_args(spec, spec.feeds("opt", batch=batches[0] if batches else None, count=1, seed=seed)[0])
    return IOPlan(spec, Flat(list(io_spec["outputs"]), [], io_spec["output_structure"]), small, small)
