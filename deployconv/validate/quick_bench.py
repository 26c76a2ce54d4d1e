"""The short side-by-side benchmark that `export` runs: PyTorch eager train form vs deploy form vs ONNX
Runtime, same batch, same threads, one after the other in one process (so the rows are comparable)."""

from __future__ import annotations

import numpy as np

from deployconv.core.env import available_cpus
from deployconv.core.outputs import flatten
from deployconv.runtime.base import TensorMeta
from deployconv.runtime.ort import OrtRunner
from deployconv.runtime.timing import benchmark
from deployconv.runtime.torch_runner import TorchRunner


def compare_runtimes(train, deploy, protos, input_size, batch: int, seconds: float, threads: int | None) -> dict:
    """`protos`: one ONNX model, or {label: model} to time several graphs (fp32 vs fp16/int8) in the same run."""
    import torch

    if not isinstance(protos, dict):
        protos = {"onnxruntime cpu": protos}
    threads = threads or available_cpus()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    feed = {"input": np.random.default_rng(0).standard_normal((batch, *input_size), dtype=np.float32)}
    meta = {"input": TensorMeta("float32", (None, *input_size))}
    runners = {
        "torch eager, train form": TorchRunner(train, ["input"], ["output"], input_metadata=meta),
        "torch eager, deploy form": TorchRunner(deploy, ["input"], ["output"], input_metadata=meta),
        **{label: OrtRunner(p.SerializeToString(), threads=threads) for label, p in protos.items()},
    }
    return _time_runners(runners, feed, batch, seconds, threads, before)


def _time_runners(runners: dict, feed: dict, batch: int, seconds: float, threads: int, torch_threads_before: int) -> dict:
    """Time each runner on the same feed, one after another; restores torch's thread count however it ends."""
    import torch

    rows = {}
    try:
        for label, runner in runners.items():
            res = benchmark(runner, _feed_for(runner, feed), warmup_s=min(0.5, seconds / 2), duration_s=seconds,
                            batch=batch)
            rows[label] = res.to_dict()
    finally:
        torch.set_num_threads(torch_threads_before)
    return {"batch": batch, "threads": threads, "seconds_per_runtime": seconds, "runs": rows}


def _feed_for(runner, feed: dict) -> dict:
    """Cast the fp32 feed to what an ONNX graph takes (fp16 I/O graphs)."""
    if not isinstance(runner, OrtRunner):
        return feed
    runner.activate()
    meta = runner.input_metadata()
    return {k: v.astype(meta[k].dtype) if k in meta and meta[k].dtype is not None else v for k, v in feed.items()}


def compare_feeds(train, deploy, protos: dict, feed: dict, output_names: list[str], batch: int, seconds: float,
                  threads: int | None) -> dict:
    """compare_runtimes for a model with named inputs of any dtype and named outputs (one feed, as given)."""
    import torch

    threads = threads or available_cpus()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    names = list(feed)
    meta = {k: TensorMeta(v.dtype.name, (None, *v.shape[1:])) for k, v in feed.items()}
    flat_train, flat_deploy = _Flat(train), _Flat(deploy)
    runners = {
        "torch eager, train form": TorchRunner(flat_train, names, output_names, input_metadata=meta),
        "torch eager, deploy form": TorchRunner(flat_deploy, names, output_names, input_metadata=meta),
        **{label: OrtRunner(p.SerializeToString(), threads=threads) for label, p in protos.items()},
    }
    return _time_runners(runners, feed, batch, seconds, threads, before)


class _Flat:
    """A module whose outputs come back flattened in deployconv's output order (for TorchRunner)."""

    def __init__(self, module):
        self.module = module

    def __getattr__(self, name):
        return getattr(self.module, name)

    def __call__(self, *args):
        return tuple(flatten(self.module(*args)).tensors)
