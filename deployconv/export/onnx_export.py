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
from typing import Any

import onnx
import torch

from deployconv.core.errors import BadInputError
from deployconv.core.target import Target
from deployconv.models.io import dynamic_shapes
from deployconv.ops.lowering_table import entries, translation_table
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


def export_onnx(model: torch.nn.Module, example: torch.Tensor | tuple, target: Target, opset: int, *,
                io: Any = None, output_names: list[str] | None = None) -> tuple[onnx.ModelProto, ExportInfo]:
    """Export `model` (deploy form, eval) for `target`; returns the ONNX model and how it was made.
    `io` (an IOSpec) names the inputs and makes its dynamic symbols dynamic ONNX dims named after them;
    `output_names` names the flattened outputs (deployconv.core.outputs)."""
    _quiet()
    lowering = {name: target.lowering_for(name) for name in entries()}
    args = example if isinstance(example, tuple) else (example,)
    if io is not None:

        dynamic = dynamic_shapes(io)
        input_names = io.names
    else:
        dynamic = ({0: torch.export.Dim("batch", min=1, max=4096)},) if target.dynamic_batch else None
        input_names = [INPUT_NAME]
    t0 = time.perf_counter()
    with torch.no_grad():
        n_out = len(output_tensors(model(*args)))
    names_out = output_names or _output_names(n_out)
    try:
        ep = torch.export.export(model, args, dynamic_shapes=dynamic, strict=False)
    except Exception as e:  # data-dependent control flow etc.: TorchScript exporter as the last resort
        if io is not None and dynamic:
            _raise_if_symbol_error(e, io)
        reason = f"torch.export failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        return _export_torchscript(model, args, target, opset, names_out, lowering, t0, reason, input_names, io)
    used = {str(n.target.name()).split(".")[0] for n in ep.graph.nodes
            if n.op == "call_function" and hasattr(n.target, "name") and str(n.target.name()).startswith("deployconv::")}
    table = translation_table(lowering, opset, used)
    lowering = {k: v for k, v in lowering.items() if entries()[k].qualname in used}
    try:
        prog = torch.onnx.export(ep, args, dynamo=True, custom_translation_table=table,
                                 opset_version=opset, input_names=input_names, output_names=names_out,
                                 optimize=True, verbose=False, report=False)
    except Exception as e:
        err = _conversion_error(e, ep)
        spatial = [] if io is None else [x for x in io.dynamic_symbols() if not io.is_batch_symbol(x)]
        if spatial:  # a lowering that bakes sizes into constants cannot take a dynamic H/W
            err.why += (f"; the model is exported with dynamic size(s) {', '.join(spatial)}, and a custom op's "
                        "lowering may need static sizes")
            err.fix = f"try fixed sizes (--dim {spatial[0]}=N), or {err.fix}"
            err.args = (err.render(),)
        raise err from None
    info = ExportInfo("dynamo", opset, time.perf_counter() - t0, lowering)
    proto = prog.model_proto
    if io is not None:
        name_symbol_axes(proto, io)
    elif target.dynamic_batch:
        name_batch_axis(proto)
    return proto, info


def name_symbol_axes(proto: onnx.ModelProto, io: Any) -> None:
    """Rename torch.export's free dims (`s77`) to the IOSpec's symbols, everywhere in the graph."""
    by_name = {v.name: v for v in proto.graph.input}
    rename: dict[str, str] = {}
    for spec in io.inputs:
        v = by_name.get(spec.name)
        if v is None:
            continue
        for d, want in zip(v.type.tensor_type.shape.dim, spec.dims):
            if isinstance(want, str) and d.dim_param and d.dim_param != want:
                rename[d.dim_param] = want
    if not rename:
        return
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, rename)) + r")\b")
    for v in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        for d in v.type.tensor_type.shape.dim:
            if d.dim_param:  # also inside expressions: ((H - 1)//8) + 1
                d.dim_param = pattern.sub(lambda m: rename[m.group(1)], d.dim_param)


def _raise_if_symbol_error(e: Exception, io: Any) -> None:
    """torch.export's constraint errors, said in terms of --input/--dim: a symbol the model fixes to one size,
    or relates to another (H must equal W, be a multiple of 32...)."""
    text = str(e)
    if "Constraints violated" not in text and "specialized" not in text and "not in range" not in text:
        return
    syms = [s for s in io.dynamic_symbols() if re.search(rf"\b{re.escape(s)}\b", text)]
    hints = [ln.strip() for ln in text.splitlines() if "=" in ln and any(s in ln for s in syms)][:6]
    raise BadInputError(f"the model does not accept symbol(s) {', '.join(syms) or '?'} as declared",
                        details=hints,
                        why="torch.export found the model fixes or constrains those sizes "
                            "(a fixed size, two symbols that must be equal, or a size that must be a multiple)",
                        fix="use one symbol where sizes must be equal, a fixed number where the model needs one, "
                            "or a range the model accepts (see the suggested fixes above)") from None


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


def _export_torchscript(model, args, target, opset, names_out, lowering, t0, reason, input_names, io_spec=None):
    import io

    buf = io.BytesIO()
    if io_spec is not None:
        dyn = {i.name: {k: d for k, d in enumerate(i.dims) if d in io_spec.dynamic_symbols()} for i in io_spec.inputs}
        dyn = {k: v for k, v in dyn.items() if v} or None
    else:
        dyn = {INPUT_NAME: {0: "batch"}} if target.dynamic_batch else None
        if dyn:
            dyn.update({n: {0: "batch"} for n in names_out})
    try:
        torch.onnx.export(model, args, buf, dynamo=False, opset_version=opset, input_names=input_names,
                          output_names=names_out, dynamic_axes=dyn)
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
