"""Replacing a site's subgraph by one nn.Conv2d in a GraphModule, after proving it in fp64.

The proof follows the walker's: the unfused ops of the site, copied to fp64, run on the activation the probe
produced at the site's source, against the fused conv (its weights rounded to the model's dtype, then run in
fp64). A site over the tolerance is never applied; the caller gets its figure and fails the run with it named.
"""

from __future__ import annotations

import copy

import torch
import torch.fx
from torch import nn
from torch.fx import Node

from deployconv.reparam.graph.algebra import to_conv
from deployconv.reparam.graph.match import Site


def _fetch(gm: torch.fx.GraphModule, target: str):
    v = gm
    for part in target.split("."):
        v = getattr(v, part)
    return v


def _to64(v):
    return v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v


@torch.no_grad()
def run_unfused64(gm: torch.fx.GraphModule, site: Site, source_value: torch.Tensor) -> torch.Tensor:
    """The site's original ops in fp64 on the source activation (brute force, op by op)."""
    env: dict[Node, object] = {site.source: source_value.double()}

    def value(a):
        if a in env:
            return env[a]
        if a.op == "get_attr":
            return _to64(_fetch(gm, a.target)).clone()
        if a.op == "call_method":  # a constant operand (view of a get_attr, weight + identity, ...)
            args = torch.fx.node.map_arg(a.args, value)
            if a.target in ("to", "type_as"):
                return args[0]  # keep fp64
            return getattr(args[0], a.target)(*args[1:], **a.kwargs)
        if a.op == "call_function":
            return a.target(*torch.fx.node.map_arg(a.args, value), **torch.fx.node.map_arg(a.kwargs, value))
        raise KeyError(f"{a.name} is outside the site")

    for n in list(site.nodes):
        args = torch.fx.node.map_arg(n.args, value)
        kwargs = torch.fx.node.map_arg(n.kwargs, value)
        if n.op == "call_module":
            env[n] = copy.deepcopy(gm.get_submodule(n.target)).double()(*args, **kwargs)
        elif n.op == "call_function":
            env[n] = n.target(*args, **kwargs)
        else:
            env[n] = getattr(args[0], n.target)(*args[1:], **kwargs)
    return env[site.root]  # type: ignore[return-value]


def compare(ref: torch.Tensor, got: torch.Tensor) -> tuple[float, float]:
    """(max abs, max abs relative to the reference's max magnitude), as the walker reports its rewrites."""
    if ref.shape != got.shape or not (torch.isfinite(ref).all() and torch.isfinite(got).all()):
        return float("inf"), float("inf")
    mabs = (ref - got).abs().max().item() if ref.numel() else 0.0
    return mabs, mabs / max(ref.abs().max().item() if ref.numel() else 0.0, 1e-30)


def site_dtype(gm: torch.fx.GraphModule, site: Site) -> tuple[torch.dtype, torch.device]:
    for target in site.modules:
        for p in gm.get_submodule(target).parameters():
            return p.dtype, p.device
        for b in gm.get_submodule(target).buffers():
            if b.is_floating_point():
                return b.dtype, b.device
    return torch.get_default_dtype(), torch.device("cpu")


def site_params(gm: torch.fx.GraphModule, site: Site) -> int:
    n = sum(p.numel() for t in site.modules for p in gm.get_submodule(t).parameters())
    for c in site.consts:
        if c.op == "get_attr":
            v = _fetch(gm, c.target)
            if isinstance(v, nn.Parameter):
                n += v.numel()
    return n


def site_name(gm: torch.fx.GraphModule, site: Site) -> str:
    """Where the fused conv lives: `<common prefix of the site's modules>.reparam`, unique in the module."""
    parts = [t.split(".") for t in site.modules] or [[site.root.name]]
    prefix = []
    for items in zip(*parts):
        if len(set(items)) != 1:
            break
        prefix.append(items[0])
    if prefix == parts[0] and len(parts) == 1:
        prefix = prefix[:-1]
    base = ".".join([*prefix, "reparam"])
    name, i = base, 1
    while _exists(gm, name):
        name, i = f"{base}{i}", i + 1
    return name


def _exists(gm: nn.Module, target: str) -> bool:
    try:
        _fetch(gm, target)  # type: ignore[arg-type]
        return True
    except AttributeError:
        return False


def apply_site(gm: torch.fx.GraphModule, site: Site, conv: nn.Conv2d, name: str, source: Node) -> Node:
    """Insert `conv` on `source` (the site's source, or what replaced it), reroute the root's users, erase
    the replaced nodes; returns the new node."""
    graph = gm.graph
    gm.add_submodule(name, conv)
    with graph.inserting_before(site.root):
        new = graph.call_module(name, (source,))
    site.root.replace_all_uses_with(new)
    for n in reversed(site.nodes):
        graph.erase_node(n)
    order = {n: i for i, n in enumerate(graph.nodes)}
    for c in sorted(site.consts, key=order.__getitem__, reverse=True):  # constants the site used, if unused now
        if not c.users:
            graph.erase_node(c)
            if c.op == "get_attr" and not any(x.op == "get_attr" and x.target == c.target for x in graph.nodes):
                owner, _, attr = c.target.rpartition(".")
                delattr(gm.get_submodule(owner) if owner else gm, attr)
    return new


def fused_module(gm: torch.fx.GraphModule, site: Site) -> nn.Conv2d:
    dtype, device = site_dtype(gm, site)
    return to_conv(site.form, dtype, device)


def finish(gm: torch.fx.GraphModule) -> None:
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
