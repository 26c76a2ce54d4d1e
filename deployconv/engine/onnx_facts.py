"""What the engine planner needs to know about an ONNX graph, as plain data: inputs (dtype, shape with
symbolic dims), which precisions the graph already carries (fp16 / bf16 tensors, Q/DQ nodes), plugin nodes
and other custom-domain nodes. Reading uses the `onnx` package (imported lazily, weights not loaded);
everything that decides works on `OnnxFacts` and is pure.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployconv.core.errors import BadInputError, MissingEnvironmentError
from deployconv.plugins.table import PLUGINS

Dim = int | str | None  # int: static; str: symbolic (named); None: anonymous dynamic

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
STANDARD_DOMAINS = ("", "ai.onnx")
NUMPY_FEED_DTYPES = frozenset({"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
                               "uint32", "uint64", "bool"})


@dataclass(frozen=True)
class InputFact:
    name: str
    dtype: str | None  # numpy dtype name ("float32"); None where numpy has none (bfloat16, float8)
    shape: tuple[Dim, ...] | None  # None: unknown rank
    elem_type: str = ""  # the ONNX element type name ("FLOAT", "BFLOAT16"), for messages

    @property
    def dynamic_dims(self) -> tuple[int, ...]:
        return () if self.shape is None else tuple(i for i, d in enumerate(self.shape) if not isinstance(d, int) or d < 0)


@dataclass(frozen=True)
class OnnxFacts:
    inputs: tuple[InputFact, ...]
    tensor_types: frozenset[str] = frozenset()  # ONNX element type names seen on any tensor ("FLOAT16", ...)
    qdq_nodes: int = 0
    plugin_nodes: tuple[str, ...] = ()  # op_type of each deployconv plugin node (repeats kept: counts matter)
    custom_nodes: tuple[str, ...] = ()  # "domain::op_type" of other non-standard-domain nodes
    opset: int | None = None
    path: str | None = None
    node_count: int = 0

    @property
    def carried_precisions(self) -> frozenset[str]:
        """Reduced precisions the graph already carries: "fp16" (float16 tensors), "bf16", "int8" (Q/DQ)."""
        out = set()
        if "FLOAT16" in self.tensor_types:
            out.add("fp16")
        if "BFLOAT16" in self.tensor_types:
            out.add("bf16")
        if self.qdq_nodes:
            out.add("int8")
        return frozenset(out)

    def plugin_counts(self) -> dict[str, int]:
        return dict(Counter(self.plugin_nodes))

    def input(self, name: str) -> InputFact:
        for i in self.inputs:
            if i.name == name:
                return i
        raise KeyError(name)


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as e:
        raise MissingEnvironmentError("the onnx package is not installed", why=str(e),
                                      fix="pip install onnx (needed to read the model's inputs for the profile)") from None
    return onnx


def _dim(d: Any) -> Dim:
    if d.HasField("dim_value"):
        return int(d.dim_value)
    if d.HasField("dim_param") and d.dim_param:
        return str(d.dim_param)
    return None


def _walk_graphs(graph: Any) -> Iterator[Any]:
    """The graph and every subgraph (If/Loop/Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _walk_graphs(attr.g)
            for g in attr.graphs:
                yield from _walk_graphs(g)


def _plugin_names() -> frozenset[str]:
    return frozenset(PLUGINS)


def facts_from_model(model: Any, path: str | os.PathLike[str] | None = None) -> OnnxFacts:
    """OnnxFacts of a loaded onnx.ModelProto (weights need not be loaded)."""
    onnx = _import_onnx()
    type_name = onnx.TensorProto.DataType.Name
    graph = model.graph
    initializers = {t.name for t in graph.initializer}

    def np_name(elem_type: int) -> str | None:
        try:
            return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
        except (KeyError, ValueError, TypeError):
            return None

    inputs = []
    for v in graph.input:
        if v.name in initializers:  # IR < 4 lists initializers as inputs; they are weights, not feeds
            continue
        t = v.type.tensor_type
        shape = tuple(_dim(d) for d in t.shape.dim) if t.HasField("shape") else None
        dtype = np_name(t.elem_type)
        if dtype not in NUMPY_FEED_DTYPES:
            dtype = None  # bfloat16, float8, int4 (ml_dtypes): no plain numpy feed carries them
        inputs.append(InputFact(v.name, dtype, shape, type_name(t.elem_type)))

    types: set[str] = set()
    qdq = 0
    plugins: list[str] = []
    custom: list[str] = []
    plugin_names = _plugin_names()
    nodes = 0

    def note_type(elem_type: int) -> None:
        if elem_type:
            types.add(type_name(elem_type))

    def scan_nodes(node_list: Iterable[Any]) -> None:
        nonlocal qdq, nodes
        for node in node_list:
            nodes += 1
            if node.op_type in plugin_names:
                plugins.append(node.op_type)
            elif node.domain not in STANDARD_DOMAINS:
                custom.append(f"{node.domain}::{node.op_type}")
            elif node.op_type in QDQ_OPS:
                qdq += 1
            for attr in node.attribute:
                if node.op_type == "Cast" and attr.name == "to":
                    note_type(attr.i)
                if attr.HasField("t"):
                    note_type(attr.t.data_type)

    for g in _walk_graphs(graph):
        for t in g.initializer:
            note_type(t.data_type)
        for v in (*g.input, *g.output, *g.value_info):
            note_type(v.type.tensor_type.elem_type)
        scan_nodes(g.node)
    for fn in model.functions:  # local functions (exporters may emit them): their nodes count too
        scan_nodes(fn.node)

    opset = next((o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS), None)
    return OnnxFacts(inputs=tuple(inputs), tensor_types=frozenset(types), qdq_nodes=qdq, plugin_nodes=tuple(plugins),
                     custom_nodes=tuple(custom), opset=opset, path=None if path is None else str(path),
                     node_count=nodes)


def read_onnx_facts(path: str | os.PathLike[str]) -> OnnxFacts:
    """Read an .onnx file's facts without loading external weights. BadInputError when it is missing or
    not an ONNX model."""
    onnx = _import_onnx()
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: no such ONNX file", fix="give the model.onnx written by `deployconv export`")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends: the file is not an ONNX model
        raise BadInputError(f"{p} is not a readable ONNX model", why=f"{type(e).__name__}: {e}",
                            fix="re-export it, or check the file was copied completely (compare its sha256)") from None
    return facts_from_model(model, p)
