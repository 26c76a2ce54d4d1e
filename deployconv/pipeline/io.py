"""The export's steps for a declared IOSpec (several inputs, named outputs, dynamic sizes): probe the model into
its IOLayout (a model that rejects its spec is a clear error here), and the feeds per shape point. The stages that
run such a model are deployconv.validate.chain's; the layout itself is deployconv.validate.io_layout."""

from __future__ import annotations

import numpy as np
import torch

from deployconv.core.io_spec import IOSpec
from deployconv.core.outputs import check_same, flatten
from deployconv.models.io import example_args, feed_args, run_checked
from deployconv.validate.io_layout import IOLayout

Batch = np.ndarray | dict[str, np.ndarray]


def io_layout(train: torch.nn.Module, spec: IOSpec, name: str, seed: int) -> IOLayout:
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
    return IOLayout(spec, first, probe, small_probe)


def as_batch(feed: dict[str, np.ndarray], layout: IOLayout) -> Batch:
    """One input travels as a plain array (so the precision and bisection steps take it), several as a dict."""
    return feed[layout.spec.inputs[0].name] if layout.single_input else feed


def point_batches(layout: IOLayout, point: str, size: int, count: int, seed: int) -> list[Batch]:
    return [as_batch(f, layout) for f in layout.spec.feeds(point, batch=size, count=count, seed=seed)]
