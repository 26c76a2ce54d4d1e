"""First diverging layer: compare intermediate ONNX tensors with the PyTorch module outputs they came from.

The dynamo exporter records each node's module path (`pkg.torch.onnx.name_scopes`). For every module path,
the last node inside its scope produces the module's output; those tensors are exposed as extra graph outputs,
run in ONNX Runtime, and compared (topological order) with forward-hook outputs of the same modules.
"""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass

import numpy as np
import onnx

from deployconv.core.target import Budget
from deployconv.plugins.onnx_schemas import register_plugin_schemas
from deployconv.runtime.ort import ort_session
from deployconv.validate.metrics import compare
from deployconv.validate.parity import budget_failures


@dataclass
class Divergence:
    module: str
    module_type: str
    onnx_tensor: str
    onnx_op: str
    metrics: dict
    failures: list[str]
    layers_compared: int


def scope_paths(node: onnx.NodeProto) -> list[str]:
    """The module paths enclosing an exported node, outermost first; each entry is already a full path
    ('blocks2', 'blocks2.3', 'blocks2.3.mixer', ...). Empty when the node carries no scope metadata."""
    scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
    if not scopes:
        return []
    try:
        return [p for p in ast.literal_eval(scopes)[:-1] if p]  # the last entry is the op itself
    except (ValueError, SyntaxError):
        return []


def module_outputs(proto: onnx.ModelProto) -> dict[str, tuple[str, str]]:
    """module path -> (tensor name, op type) of the last node inside its scope, in topological order."""
    last: dict[str, tuple[str, str]] = {}
    for node in proto.graph.node:
        if not node.output:
            continue
        for path in scope_paths(node):
            last[path] = (node.output[0], node.op_type)
    return last


def first_divergence(model, proto: onnx.ModelProto, batch: np.ndarray, budget: Budget) -> Divergence | None:
    """Module (in execution order) whose ONNX output first leaves the budget; None if none does."""
    import torch

    candidates = module_outputs(proto)
    modules = dict(model.named_modules())
    captured: dict[str, np.ndarray] = {}
    calls: dict[str, int] = {}
    order: list[str] = []
    hooks = []

    def hook(path):
        def fn(_m, _i, out):
            calls[path] = calls.get(path, 0) + 1
            if isinstance(out, torch.Tensor) and path not in captured:
                captured[path] = out.detach().double().cpu().numpy()
                order.append(path)
        return fn

    for path in candidates:
        if path in modules:
            hooks.append(modules[path].register_forward_hook(hook(path)))
    try:
        with torch.no_grad():
            model(torch.from_numpy(batch))
    finally:
        for h in hooks:
            h.remove()
    # a module called more than once (a shared activation) has no single ONNX counterpart: skip it
    wanted = [p for p in order if p in candidates and calls[p] == 1]
    if not wanted:
        return None
    values = _run_with_outputs(proto, [candidates[p][0] for p in wanted], batch)
    compared = 0
    for p in wanted:
        tensor, op = candidates[p]
        if tensor not in values or values[tensor].shape != captured[p].shape:
            continue
        compared += 1
        metrics = asdict(compare(captured[p], values[tensor]))
        fails = budget_failures(metrics, budget)
        if fails:
            return Divergence(p, type(modules[p]).__name__, tensor, op, metrics, fails, compared)
    return None


def _run_with_outputs(proto: onnx.ModelProto, names: list[str], batch: np.ndarray) -> dict[str, np.ndarray]:
    register_plugin_schemas()
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    infos = {v.name: v for v in onnx.shape_inference.infer_shapes(probe).graph.value_info}
    existing = {o.name for o in probe.graph.output}
    for n in names:
        if n not in existing and n in infos:
            probe.graph.output.append(infos[n])
            existing.add(n)
    sess = ort_session(probe.SerializeToString())
    outs = [o.name for o in sess.get_outputs()]
    return dict(zip(outs, sess.run(outs, {sess.get_inputs()[0].name: batch}), strict=True))


def first_divergence_between(raw: onnx.ModelProto, final: onnx.ModelProto, batch: np.ndarray,
                             budget: Budget) -> Divergence | None:
    """Where a rewritten graph (simplifier output) first leaves the budget against the raw export: tensors both
    graphs share by name, in the raw graph's order; the module path comes from the raw graph's metadata
    (simplifiers drop it)."""
    producers = {o: n for n in raw.graph.node for o in n.output}
    final_values = {o for n in final.graph.node for o in n.output}
    shared = [o for n in raw.graph.node for o in n.output if o and o in final_values]
    a, b = _run_with_outputs(raw, shared, batch), _run_with_outputs(final, shared, batch)
    scope_of = {}
    for node in raw.graph.node:
        parts = scope_paths(node)
        for o in node.output:
            scope_of[o] = parts[-1] if parts else "<root>"
    compared = 0
    for name in shared:
        if name not in a or name not in b or a[name].shape != b[name].shape:
            continue
        compared += 1
        metrics = asdict(compare(a[name], b[name]))
        fails = budget_failures(metrics, budget)
        if fails:
            return Divergence(scope_of.get(name, "?"), "(onnx)", name, producers[name].op_type, metrics, fails,
                              compared)
    return None
