"""PyTorch runner: the parity chain's train-form and deploy-form stages behind the same interface as ONNX
Runtime. The only module in deployconv.runtime that imports torch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from deployconv.core.errors import BadInputError
from deployconv.runtime.base import Runner, TensorMeta


class TorchRunner(Runner):
    """Calls `module(*inputs)` with the feed in `input_names` order; outputs are named by `output_names`.

    The module runs in eval mode under `torch.inference_mode()` (its training flag is restored on
    deactivate). Numpy in, numpy out: inputs go to `device`, outputs come back to host memory (which also
    synchronises CUDA, so the timing is honest). bfloat16 outputs come back as float32 (numpy has no bf16).
    `input_metadata` (optional) declares dtypes/shapes to check; without it only the names are checked.
    """

    runtime = "torch"

    def __init__(self, module: nn.Module, input_names: Sequence[str], output_names: Sequence[str], *,
                 device: str | torch.device = "cpu", input_metadata: Mapping[str, TensorMeta] | None = None,
                 name: str | None = None):
        super().__init__(name or f"torch({type(module).__name__})")
        self.module = module
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.device = torch.device(device)
        if input_metadata is not None and list(input_metadata) != self.input_names:
            raise BadInputError(f"{self.name}: input_metadata names {list(input_metadata)} differ from "
                                f"input_names {self.input_names}")
        self._meta = dict(input_metadata) if input_metadata is not None else {
            n: TensorMeta(None, None) for n in self.input_names}
        self._was_training: bool | None = None

    def activate_impl(self) -> None:
        self._was_training = self.module.training
        self.module.eval()

    def deactivate_impl(self) -> None:
        if self._was_training:
            self.module.train()
        self._was_training = None

    def input_metadata_impl(self) -> dict[str, TensorMeta]:
        return self._meta

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(feed[n])).to(self.device) for n in self.input_names]
        with torch.inference_mode():
            result = self.module(*args)
        if isinstance(result, torch.Tensor):
            tensors: list[torch.Tensor] = [result]
        elif isinstance(result, Mapping):
            missing = [n for n in self.output_names if n not in result]
            if missing:
                raise BadInputError(f"{self.name}: the module returned keys {list(result)}, not {missing}")
            tensors = [result[n] for n in self.output_names]
        elif isinstance(result, tuple | list):
            tensors = list(result)
        else:
            raise BadInputError(f"{self.name}: the module returned a {type(result).__name__}, not tensors")
        if len(tensors) != len(self.output_names):
            raise BadInputError(f"{self.name}: the module returned {len(tensors)} output(s), "
                                f"output_names has {len(self.output_names)}: {self.output_names}")
        return {n: _to_numpy(t) for n, t in zip(self.output_names, tensors)}

    def info_impl(self) -> dict[str, Any]:
        return {"version": torch.__version__, "device": str(self.device), "threads": torch.get_num_threads()}


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.cpu().numpy()
