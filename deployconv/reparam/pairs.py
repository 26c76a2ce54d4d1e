"""Finding Conv->BN, Linear->BN and BN->Linear pairs in any model, by tracing it with torch.fx.

A pair qualifies only when the fold is exact: both modules are called once, the first one's output feeds
only the second, and the BN has running statistics. Models that fx cannot trace as a whole are traced
submodule by submodule, so one untraceable block does not hide the pairs elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.fx
from torch import nn

from deployconv.layers.modules import is_bn, is_conv


@dataclass(frozen=True)
class Pair:
    kind: str  # "conv_bn" | "linear_bn" | "bn_linear"
    first: str  # module path
    second: str


def _kind(a: nn.Module, b: nn.Module) -> str | None:
    if is_conv(a) and is_bn(b) and a.out_channels == b.num_features:
        return "conv_bn"
    if isinstance(a, nn.Linear) and isinstance(b, nn.BatchNorm1d) and a.out_features == b.num_features:
        return "linear_bn"
    if isinstance(a, nn.BatchNorm1d) and isinstance(b, nn.Linear) and a.num_features == b.in_features:
        return "bn_linear"
    return None


def _pairs_in_graph(gm: torch.fx.GraphModule, root: nn.Module, prefix: str) -> list[Pair]:
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    found = []
    for node in gm.graph.nodes:
        if node.op != "call_module" or len(node.users) != 1:
            continue
        (user,) = node.users
        if user.op != "call_module" or len(user.args) != 1 or user.args[0] is not node or user.kwargs:
            continue
        if calls[node.target] != 1 or calls[user.target] != 1:
            continue
        a, b = root.get_submodule(node.target), root.get_submodule(user.target)
        kind = _kind(a, b)
        bn = b if kind in ("conv_bn", "linear_bn") else a
        if kind and bn.running_mean is not None:
            join = (lambda t: f"{prefix}.{t}") if prefix else (lambda t: t)
            found.append(Pair(kind, join(node.target), join(user.target)))
    return found


class _Tracer(torch.fx.Tracer):
    """Treats modules that set `deployconv_leaf = True` (custom-op wrappers) as opaque calls."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return bool(getattr(m, "deployconv_leaf", False)) or super().is_leaf_module(m, qualname)


def find_pairs(model: nn.Module, prefix: str = "") -> list[Pair]:
    """All foldable pairs, by module path relative to `model`."""
    try:
        graph = _Tracer().trace(model)
        gm = torch.fx.GraphModule(model, graph)
    except Exception:
        pairs: list[Pair] = []
        for name, child in model.named_children():
            if next(child.modules(), None) is not None and any(True for _ in child.children()):
                pairs += find_pairs(child, f"{prefix}.{name}" if prefix else name)
        return pairs
    return _pairs_in_graph(gm, model, prefix)
