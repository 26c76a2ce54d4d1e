"""Tracing a model into fx graphs for the graph pass: the whole model if fx can, else each child on its own.

A unit that fx cannot trace (data-dependent control flow, unsupported calls) is not an error: it is reported
as a near miss and its children are tried, so one untraceable block does not hide the sites elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.fx
from torch import nn

from deployconv.reparam.graph.forms import is_bn_and_pad


class Tracer(torch.fx.Tracer):
    """Leaves: torch.nn modules (fx's default), custom-op wrappers (`deployconv_leaf = True`), and DBB's
    BNAndPad layer (its border assignment is one op to the pass, not a dozen setitem calls)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return bool(getattr(m, "deployconv_leaf", False)) or is_bn_and_pad(m) or super().is_leaf_module(m, qualname)


@dataclass
class Unit:
    path: str  # module path in the model ("" for the root)
    module: nn.Module  # the original module
    gm: torch.fx.GraphModule


@dataclass(frozen=True)
class Untraced:
    path: str
    reason: str


def trace_units(model: nn.Module, path: str = "") -> tuple[list[Unit], list[Untraced]]:
    """Traced units covering as much of `model` as fx allows, and the modules it could not trace."""
    try:
        graph = Tracer().trace(model)
        return [Unit(path, model, torch.fx.GraphModule(model, graph, class_name=type(model).__name__))], []
    except Exception as e:  # fx raises many types (TraceError, TypeError, NotImplementedError, ...)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        units: list[Unit] = []
        missed = [Untraced(path or "<root>", f"{type(e).__name__}: {msg[:160]}")]
        for name, child in model.named_children():
            if any(True for _ in child.children()):
                u, m = trace_units(child, f"{path}.{name}" if path else name)
                units += u
                missed += m
        return units, missed
