"""Graph simplification with onnxsim or onnxslim, measured, and never fatal: a simplifier that fails leaves
the exported graph as it was and says why."""

from __future__ import annotations

import time
from dataclasses import dataclass

import onnx

from deployconv.core.errors import BadInputError

SIMPLIFIERS = ("onnxslim", "onnxsim", "none")


@dataclass
class SimplifyInfo:
    tool: str
    seconds: float
    nodes_before: int
    nodes_after: int
    error: str | None = None


def simplify(proto: onnx.ModelProto, tool: str) -> tuple[onnx.ModelProto, SimplifyInfo]:

    if tool not in SIMPLIFIERS:
        raise BadInputError(f"unknown simplifier {tool!r}", fix=f"choose one of {', '.join(SIMPLIFIERS)}")
    before = len(proto.graph.node)
    t0 = time.perf_counter()
    if tool == "none":
        return proto, SimplifyInfo(tool, 0.0, before, before)
    try:
        if tool == "onnxsim":
            import onnxsim

            out, ok = onnxsim.simplify(proto)
            if not ok:
                raise RuntimeError("onnxsim's own check failed")
        else:
            import onnxslim

            out = onnxslim.slim(proto)
    except Exception as e:
        return proto, SimplifyInfo(tool, time.perf_counter() - t0, before, before,
                                   error=f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
    # simplifiers may drop metadata: carry it over
    if not out.metadata_props and proto.metadata_props:
        out.metadata_props.extend(proto.metadata_props)
    return out, SimplifyInfo(tool, time.perf_counter() - t0, before, len(out.graph.node))
