"""How a model with a declared IOSpec is fed and read in the parity chain: its input spec, the names and
structure of its flattened outputs, and the example arguments. Export builds one by probing the model
(deployconv.pipeline.io); validate rebuilds it from the manifest's `io_spec`. Torch-free at import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deployconv.core.io_spec import IOSpec
from deployconv.core.outputs import Flat


@dataclass
class IOLayout:
    spec: IOSpec
    outputs: Flat  # names and structure of the flattened outputs
    probe: tuple  # the tracing example (opt sizes, batch >= 2 so torch.export keeps a dynamic batch free)
    small_probe: tuple = ()  # the reparameterization probe: opt sizes at the smallest batch (cheap in fp64)

    @property
    def single_input(self) -> bool:
        return len(self.spec.inputs) == 1

    def to_manifest(self) -> dict[str, Any]:
        return {**self.spec.to_dict(), "outputs": self.outputs.names, "output_structure": self.outputs.structure}


def io_layout_from_manifest(io_spec: dict[str, Any], seed: int) -> IOLayout:
    """The IOLayout an export recorded (manifest `io_spec`), for re-running the PyTorch stages."""
    from deployconv.models.io import feed_args  # torch

    spec = IOSpec.from_dict(io_spec)
    batches = [spec.ranges[s].min for s in spec.symbols() if spec.is_batch_symbol(s)]
    small = feed_args(spec, spec.feeds("opt", batch=batches[0] if batches else None, count=1, seed=seed)[0])
    return IOLayout(spec, Flat(list(io_spec["outputs"]), [], io_spec["output_structure"]), small, small)
