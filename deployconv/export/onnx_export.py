"""PyTorch -> ONNX with the dynamo exporter and our custom-op translations.

torch.export runs first, so that a failure can be traced to the module path and op that caused it; the
ExportedProgram then goes to torch.onnx.export. The TorchScript exporter is used only when torch.export itself
cannot capture the model (data-dependent control flow), and the manifest records which exporter ran.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from dataclasses import dataclass

import onnx
import torch

from deployconv.errors import BadInputError
from deployconv.export.targets import Target
from deployconv.ops.registry import entries, translation_table
from deployconv.reparam.walker import output_tensors

INPUT_NAME = "input"


@dataclass
class ExportInfo:
    exporter: str  # "dynamo" | "torchscript"
    opset: int
    seconds: float
    lowering: dict[str, str]
    fallback_reason: str | None = None


def _quiet() -> None:
    for name in ("torch.onnx", "torch.export", "torch._export", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx.*")


def _module_path_of(ep: torch.export.ExportedProgram, node_name: str) -> str | None:
    for node in ep.graph.nodes:
        if node.name == node_name:
            stack = node.meta.get("nn_module_stack") or {}
            if stack:
                path, _cls = list(stack.values())[-1]
                return re.sub(r"^L__self__[._]?", "", str(path)).replace("_modules['", "").replace("']", "") or "<root>"
    return None


def _output_names(n: int) -> list[str]:
    return ["output"] if n == 1 else [f"output_{i}" for i in range(n)]


def export_onnx(model: torch.nn.Module, example: torch.Tensor, target: Target, opset: int) -> tuple[onnx.ModelProto, ExportInfo]:
    """Export `model` (deploy form, eval) for `target`; returns the ONNX model and how it was made."""
    _quiet()
    lowering = {name: target.lowering_for(name) for name in entries()}
    dynamic = ({0: torch.export.Dim("batch", min=1, max=4096)},) if target.dynamic_batch else None
    t0 = time.perf_counter()
    with torch.no_grad():
        n_out = len(output_tensors(model(example)))
    try:
        ep = torch.export.export(model, (example,), dynamic_shapes=dynamic, strict=False)
    except Exception as e:  # data-dependent control flow etc.: TorchScript exporter as the last resort
        reason = f"torch.export failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        return _export_torchscript(model, example, target, opset, n_out, lowering, t0, reason)
    used = {str(n.target.name()).split(".")[0] for n in ep.graph.nodes
            if n.op == "call_function" and hasattr(n.target, "name") and str(n.target.name()).startswith("deployconv::")}
    table = translation_table(lowering, opset, used)
    lowering = {k: v for k, v in lowering.items() if entries()[k].qualname in used}
    try:
        prog = torch.onnx.export(ep, (example,), dynamo=True, custom_translation_table=table,
                                 opset_version=opset, input_names=[INPUT_NAME], output_names=_output_names(n_out),
                                 optimize=True, verbose=False, report=False)
    except Exception as e:
        raise _conversion_error(e, ep) from None
    info = ExportInfo("dynamo", opset, time.perf_counter() - t0, lowering)
    proto = prog.model_proto
    if target.dynamic_batch:
        name_batch_axis(proto)
    return proto, info


def name_batch_axis(proto: onnx.ModelProto, name: str = "batch") -> None:
    """torch.export calls the free batch dim something like 's77'; give it a stable, readable name everywhere."""
    first = proto.graph.input[0].type.tensor_type.shape.dim[0]
    old = first.dim_param
    if not old or old == name:
        return
    for v in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        for d in v.type.tensor_type.shape.dim:
            if d.dim_param == old:
                d.dim_param = name


def _conversion_error(e: Exception, ep: torch.export.ExportedProgram) -> BadInputError:
    text = "\n".join(str(x) for x in (e, e.__cause__) if x)
    m = re.search(r"translating node %(\w+) .*?target=([\w.:]+)", text)
    if m:
        node, op = m.group(1), m.group(2)
        path = _module_path_of(ep, node)
        return BadInputError(
            f"op {op} (at module {path or '?'}) cannot be exported to ONNX",
            why=f"the ONNX exporter has no translation for it: {text.splitlines()[0][:300]}",
            fix="replace the op in the model, or register it as a deployconv custom op with an ONNX lowering",
        )
    return BadInputError(f"ONNX export failed: {text.splitlines()[0][:500]}",
                         fix="run with --debug for the full exporter trace")


def _export_torchscript(model, example, target, opset, n_out, lowering, t0, reason):
    import io

    buf = io.BytesIO()
    dyn = {INPUT_NAME: {0: "batch"}} if target.dynamic_batch else None
    if dyn:
        dyn.update({n: {0: "batch"} for n in _output_names(n_out)})
    try:
        torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=_output_names(n_out), dynamic_axes=dyn)
    except Exception as e:
        raise BadInputError(f"ONNX export failed with both exporters: {type(e).__name__}: {str(e).splitlines()[0][:300]}",
                            why=reason, fix="make the model traceable by torch.export (no data-dependent Python control flow)") from None
    info = ExportInfo("torchscript", opset, time.perf_counter() - t0, lowering, fallback_reason=reason)
    return onnx.load_from_string(buf.getvalue()), info


def set_metadata(proto: onnx.ModelProto, props: dict[str, str]) -> None:
    existing = {p.key: p for p in proto.metadata_props}
    for k, v in props.items():
        if k in existing:
            existing[k].value = v
        else:
            proto.metadata_props.add(key=k, value=v)
