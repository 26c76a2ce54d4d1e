"""The graph pass: structural reparameterization of what no module method covers, found in the fx graph.

Runs after the method walker and the pair folds (the model's own knowledge wins), on each traced unit:
find the sites, prove each one in fp64 on the probe's activation at its source, and replace its subgraph by
one nn.Conv2d. A unit with sites becomes a torch.fx.GraphModule, a real nn.Module, in place of the original.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.fx
from torch import nn

from deployconv.reparam.graph.match import Site, find_sites
from deployconv.reparam.graph.rewrite import (
    apply_site,
    compare,
    finish,
    fused_module,
    run_unfused64,
    site_name,
    site_params,
)
from deployconv.reparam.graph.trace import Unit, trace_units
from deployconv.reparam.report import NearMiss, RewriteRecord


@dataclass
class SiteFailure:
    path: str
    label: str
    max_rel_diff: float


@dataclass
class GraphFuseResult:
    model: nn.Module
    records: list[RewriteRecord] = field(default_factory=list)
    near_misses: list[NearMiss] = field(default_factory=list)
    failures: list[SiteFailure] = field(default_factory=list)  # sites whose fp64 check failed (not applied)


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix and path else (prefix or path or "<root>")


def _owner(node) -> str:
    """The module whose forward holds a function node (fx records the module stack), else the node's name."""
    stack = node.meta.get("nn_module_stack") or {}
    paths = [v[0] if isinstance(v, tuple) else k for k, v in stack.items()]
    return f"{paths[-1]}:{node.name}" if paths and paths[-1] else f"<root>:{node.name}"


def _capture_unit_inputs(model: nn.Module, units: list[Unit], probe: torch.Tensor | tuple) -> dict[int, tuple]:
    captured: dict[int, tuple] = {}
    handles = []
    for u in units:
        def hook(mod, args, kwargs, key=id(u)):
            captured.setdefault(key, (args, kwargs))
        handles.append(u.module.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad():
            model(*(probe if isinstance(probe, tuple) else (probe,)))  # one tensor, or one per model input
    finally:
        for h in handles:
            h.remove()
    return captured


class _Capture(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule, wanted: set):
        super().__init__(gm)
        self.wanted, self.values = wanted, {}

    def run_node(self, n):
        out = super().run_node(n)
        if n in self.wanted and isinstance(out, torch.Tensor):
            self.values[n] = out.detach()
        return out


def _source_values(unit: Unit, sites: list[Site], inputs: tuple | None) -> dict:
    if inputs is None:
        return {}
    args, kwargs = inputs
    placeholders = [n for n in unit.gm.graph.nodes if n.op == "placeholder"]
    values = list(args)
    for p in placeholders[len(values):]:
        if p.target in kwargs:
            values.append(kwargs[p.target])
        elif p.args:
            values.append(p.args[0])
        else:
            return {}
    cap = _Capture(unit.gm, {s.source for s in sites})
    with torch.no_grad():
        cap.run(*values)
    return cap.values


@torch.no_grad()
def _fuse_unit(unit: Unit, sites: list[Site], values: dict, tolerance: float, result: GraphFuseResult) -> bool:
    gm, applied = unit.gm, False
    moved: dict = {}  # a site's root -> the fused node now in its place (a later site's source)
    for site in sites:
        conv = fused_module(gm, site)
        name = site_name(gm, site)
        path = _join(unit.path, name.rsplit(".", 1)[0] if "." in name else "")
        record = RewriteRecord(path, f"graph:{site.pattern}", site.label, site_params(gm, site),
                               sum(p.numel() for p in conv.parameters()),
                               replaced=[_join(unit.path, m) for m in site.modules])
        src = values.get(site.source)
        if src is not None:
            ref = run_unfused64(gm, site, src)
            record.max_abs_diff, record.max_rel_diff = compare(ref, copy.deepcopy(conv).double()(src.double()))
            if not record.max_rel_diff <= tolerance:
                result.failures.append(SiteFailure(path, site.label, record.max_rel_diff))
                continue  # rolled back: never applied
        moved[site.root] = apply_site(gm, site, conv, name, moved.get(site.source, site.source))
        result.records.append(record)
        applied = True
    if applied:
        finish(gm)
    return applied


def graph_fuse(model: nn.Module, probe: torch.Tensor | tuple | None, tolerance: float) -> GraphFuseResult:
    """Fuse every site in `model` (in place where a unit is a child; the root may be replaced)."""
    result = GraphFuseResult(model)
    units, untraced = trace_units(model)
    result.near_misses += [NearMiss(u.path, "trace", f"not traceable by torch.fx ({u.reason}); its children "
                                    "were searched one by one") for u in untraced]
    found = []
    for unit in units:
        sites, misses = find_sites(unit.gm)
        for m in misses:
            where = m.node.target if m.node.op == "call_module" else _owner(m.node)
            result.near_misses.append(NearMiss(_join(unit.path, str(where)), m.pattern, m.reason))
        if sites:
            found.append((unit, sites))
    inputs = _capture_unit_inputs(model, [u for u, _ in found], probe) if probe is not None and found else {}
    for unit, sites in found:
        values = _source_values(unit, sites, inputs.get(id(unit)))
        if not _fuse_unit(unit, sites, values, tolerance, result):
            continue
        unit.gm.eval()
        if unit.path == "":
            result.model = unit.gm
        else:
            model.set_submodule(unit.path, unit.gm)
    return result
