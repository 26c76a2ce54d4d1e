"""The engine's own layer report (IEngineInspector, LayerInformationFormat.JSON) as data, and what it says
against what was asked: the precision each ONNX node actually runs in and where it runs (GPU or DLA).

Pure and TensorRT-free: the builder writes the inspector's JSON next to engine.plan (it needs
ProfilingVerbosity.DETAILED at build time to name formats); this module reads it. Both schemas are read:
TensorRT 10.x lists the I/O tensors as "Bindings" (names), TensorRT 11.x as "I/O Tensors" (objects with
Name, IOMode, DataType, Dimensions...; "Migrating IEngineInspector Usage from TensorRT 10.x to 11.x").
A layer's tensors carry "Format/Datatype" (e.g. "Channel major FP16 format where channel % 8 == 0"); the
datatype word in it is the precision the layer's output was produced in.

Mapping engine layers back to ONNX nodes: TensorRT names a fused layer after the nodes it fused
("Conv_0 + Relu_1", "PWN(Relu_5, Add_6)"), so a layer covers every ONNX node whose name appears as one of
those parts. DLA subgraphs appear as one "{ForeignNode[first...last]}" layer (whose inner nodes cannot be
listed from the name); the nodes named in GPU layers are what ran on the GPU.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from deployconv.core.artifacts.names import ENGINE_LAYERS
from deployconv.core.errors import BadInputError

LAYERS_FILE = ENGINE_LAYERS
# The datatype word inside "Format/Datatype" (10.x) or "DataType" (11.x I/O tensors), normalised.
_DTYPES = {"fp32": "fp32", "float": "fp32", "fp16": "fp16", "half": "fp16", "bf16": "bf16", "int8": "int8",
           "fp8": "fp8", "int32": "int32", "int64": "int64", "bool": "bool", "uint8": "uint8", "int4": "int4",
           "fp4": "fp4"}
_DTYPE_RE = re.compile(r"\b(" + "|".join(_DTYPES) + r")\b", re.IGNORECASE)
FLOAT_PRECISIONS = ("fp32", "fp16", "bf16")


def datatype_of(text: str | None) -> str | None:
    """The precision named in a tensor's format text ("Row major linear FP32" -> "fp32"), None if none."""
    if not text:
        return None
    m = _DTYPE_RE.search(str(text))
    return _DTYPES[m.group(1).lower()] if m else None


@dataclass(frozen=True)
class LayerTensor:
    name: str
    dims: tuple[int, ...]
    format: str  # the format text as TensorRT wrote it ("" when absent)
    dtype: str | None  # normalised from the format (or DataType); None when not stated


@dataclass(frozen=True)
class EngineLayer:
    name: str
    layer_type: str
    inputs: tuple[LayerTensor, ...]
    outputs: tuple[LayerTensor, ...]
    tactic: str | None = None

    @property
    def on_dla(self) -> bool:
        """A DLA subgraph: TensorRT types it as a DLA layer (the name alone is ambiguous: the GPU's Myelin
        subgraphs are ForeignNodes too)."""
        return "dla" in self.layer_type.lower()

    @property
    def precision(self) -> str | None:
        """The precision of the first output (where the layer computed), else of the first input."""
        for t in (*self.outputs, *self.inputs):
            if t.dtype:
                return t.dtype
        return None

    def node_names(self) -> tuple[str, ...]:
        """The parts of the layer's name that can be ONNX node names (see the module docstring)."""
        name = self.name
        m = re.fullmatch(r"\{ForeignNode\[(.*)\]\}", name)
        if m:
            return tuple(p for p in m.group(1).split("...") if p)
        parts = []
        for part in re.split(r"\s\+\s", name):
            pwn = re.fullmatch(r"PWN\((.*)\)", part.strip())
            parts.extend(p.strip() for p in (pwn.group(1).split(",") if pwn else [part]))
        return tuple(p for p in parts if p)


@dataclass(frozen=True)
class IOTensor:
    name: str
    mode: str | None = None  # "Input" | "Output" (11.x); None from a 10.x "Bindings" list
    dtype: str | None = None
    dims: tuple[int, ...] | None = None


@dataclass(frozen=True)
class EngineReport:
    layers: tuple[EngineLayer, ...]
    io: tuple[IOTensor, ...]
    schema: str  # "bindings" (TensorRT 10.x) | "io-tensors" (11.x) | "layers-only"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tensor(d: Mapping[str, Any]) -> LayerTensor:
    fmt = str(d.get("Format/Datatype") or d.get("Format") or "")
    dtype = datatype_of(d.get("DataType")) or datatype_of(fmt)
    return LayerTensor(str(d.get("Name", "")), tuple(int(x) for x in d.get("Dimensions", ()) or ()), fmt, dtype)


def parse_engine_information(text: str | Mapping[str, Any]) -> EngineReport:
    """An inspector's `get_engine_information(JSON)` output as an EngineReport. Layers given as bare names
    (ProfilingVerbosity.LAYER_NAMES_ONLY) keep their names with no types or tensors. BadInputError for
    anything that is not that JSON."""
    try:
        data = json.loads(text) if isinstance(text, str) else dict(text)
        raw_layers = data["Layers"]
    except (ValueError, KeyError, TypeError) as e:
        raise BadInputError("not an engine inspector report (JSON with a \"Layers\" list)", why=str(e),
                            fix="write it with IEngineInspector.get_engine_information(LayerInformationFormat.JSON)") from None
    layers = []
    for item in raw_layers:
        if isinstance(item, str):  # LAYER_NAMES_ONLY
            layers.append(EngineLayer(item, "", (), ()))
            continue
        layers.append(EngineLayer(str(item.get("Name", "")), str(item.get("LayerType", "")),
                                  tuple(_tensor(t) for t in item.get("Inputs", ()) or ()),
                                  tuple(_tensor(t) for t in item.get("Outputs", ()) or ()),
                                  item.get("TacticName") or item.get("TacticValue")))
    if "I/O Tensors" in data:
        io = tuple(IOTensor(str(t.get("Name", "")), t.get("IOMode"), datatype_of(t.get("DataType")),
                            tuple(int(x) for x in t["Dimensions"]) if t.get("Dimensions") is not None else None)
                   for t in data["I/O Tensors"])
        schema = "io-tensors"
    elif "Bindings" in data:
        io = tuple(IOTensor(str(n)) for n in data["Bindings"])
        schema = "bindings"
    else:
        io, schema = (), "layers-only"
    return EngineReport(tuple(layers), io, schema)


# --- what was asked against what was built ----------------------------------------------------------------------

@dataclass(frozen=True)
class Expected:
    """What the export asked for, per ONNX node name: `precision` ("fp32" | "fp16" | "int8" | "float"; nodes not named
    get `default`), and `device` ("DLA" | "GPU", from the manifest's DLA placement prediction)."""

    default: str | None = None  # the target's precision for nodes not named (None: not checked)
    precision: Mapping[str, str] = field(default_factory=dict)
    device: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Difference:
    node: str
    layer: str
    kind: str  # "precision" | "placement"
    expected: str
    actual: str

    def describe(self) -> str:
        what = "ran in" if self.kind == "precision" else "ran on"
        return f"{self.node}: asked {self.expected}, {what} {self.actual} (engine layer {self.layer!r})"


def _matches(expected: str, actual: str) -> bool:
    if expected == "float":  # kept out of int8: any float precision
        return actual in FLOAT_PRECISIONS
    if expected == "int8":
        return actual == "int8"
    if expected == "fp16":  # fp16 asked: fp16 (or int8 where TensorRT fused a Q/DQ neighbour) is fine, fp32 is not
        return actual in ("fp16", "int8")
    if expected == "fp32":
        return actual == "fp32"
    return True


def compare(report: EngineReport, expected: Expected, onnx_nodes: Iterable[str]) -> list[Difference]:
    """Every node whose engine layer differs from what was asked: a precision below or above the request (a
    silent fp32 fallback, an fp32-kept node run in fp16, an int8 node run in float), or a node predicted on
    the DLA that runs in a GPU layer. Nodes without an engine layer of their own (fused away, or inside a
    ForeignNode range) are not judged."""
    names = set(onnx_nodes)
    out: list[Difference] = []
    seen: set[tuple[str, str]] = set()
    for layer in report.layers:
        nodes = [n for n in layer.node_names() if n in names]
        # a ForeignNode not typed as DLA may still be a DLA subgraph whose type this TensorRT words otherwise:
        # its placement is not judged (its precision is)
        judge_place = not (layer.name.startswith("{ForeignNode[") and not layer.on_dla)
        actual = layer.precision
        for node in nodes:
            want = expected.precision.get(node, expected.default)
            if want and actual and actual in (*FLOAT_PRECISIONS, "int8") and not _matches(want, actual) \
                    and (node, "precision") not in seen:
                seen.add((node, "precision"))
                out.append(Difference(node, layer.name, "precision", want, actual))
            where = expected.device.get(node)
            if judge_place and where == "DLA" and not layer.on_dla and (node, "placement") not in seen:
                seen.add((node, "placement"))
                out.append(Difference(node, layer.name, "placement", "DLA", "GPU"))
    return out


def expected_from_manifest(manifest: Mapping[str, Any], int8_nodes: Iterable[str] = ()) -> Expected:
    """The Expected of an exported directory's manifest: the target precision as default, the fp16 guard's
    keep-list (kept_fp32) as fp32, int8's kept-float layers as "float" (fp32 or fp16), `int8_nodes` (the
    quantized nodes, read from the ONNX's Q/DQ) as int8; and the DLA prediction's per-layer device."""
    precision = manifest.get("precision")
    default = precision if precision in ("fp32", "fp16") else None
    per_node: dict[str, str] = {}
    rep = manifest.get("precision_report") or {}
    for k in rep.get("kept_fp32", ()) or ():
        per_node[str(k["name"])] = "fp32"
    for k in rep.get("kept_float", ()) or ():
        per_node[str(k["node"])] = "float"
    for n in int8_nodes:
        per_node.setdefault(str(n), "int8")
    dla = manifest.get("dla") or {}
    device = {str(r["name"]): str(r["device"]) for r in dla.get("layers", ()) or ()}
    return Expected(default, per_node, device)


def int8_nodes_of(model: Any) -> tuple[str, ...]:
    """Nodes of an ONNX model (onnx.ModelProto) whose weight input is dequantized: what explicit quantization
    asks TensorRT to run in int8."""
    produced_by_dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return tuple(n.name for n in model.graph.node
                 if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm") and len(n.input) > 1
                 and n.input[1] in produced_by_dq)


__all__ = ["LAYERS_FILE", "Difference", "EngineLayer", "EngineReport", "Expected", "IOTensor", "LayerTensor",
           "compare", "datatype_of", "expected_from_manifest", "int8_nodes_of", "parse_engine_information"]
