"""What TensorRT's ONNX parser makes of one of our plugin nodes: which creator it asks the plugin registry for, and
the exact PluginFields it passes to createPlugin(kBUILD).

The rules are onnx-tensorrt's FallbackPluginImporter / loadFields / addPluginWithCreator, written down with
source file, commit and line in plugins_cpp/trt/PARSER_FACTS.md:
  * creator: name = node.op_type, version = attribute `plugin_version` (default "1"), namespace = attribute
    `plugin_namespace` (default ""); newer parsers retry with the node's domain as namespace when that fails;
  * fields: only the fields the CREATOR lists in getFieldNames(), in that order; a listed field the node lacks is
    skipped with a warning; node attributes the creator does not list (plugin_version, plugin_namespace, anything
    else) are never passed;
  * INT -> kINT32 (int64 narrowed by a C++ cast), INTS -> kINT32 array, FLOAT -> kFLOAT32, FLOATS -> kFLOAT32 array,
    STRING -> kCHAR with a terminating NUL counted in the length, STRINGS -> kCHAR, each NUL-terminated.
Pure: reads an onnx NodeProto's fields, imports nothing heavy.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deployconv.core.errors import BadInputError

# nvinfer1::PluginFieldType values (NvInferRuntimePlugin.h / NvInferPluginBase.h, identical in 10.3, 10.16, 11.1)
K_FLOAT16, K_FLOAT32, K_FLOAT64, K_INT8, K_INT16, K_INT32, K_CHAR, K_INT64 = 0, 1, 2, 3, 4, 5, 6, 10
# onnx.AttributeProto.AttributeType values
A_FLOAT, A_INT, A_STRING, A_TENSOR, A_FLOATS, A_INTS, A_STRINGS = 1, 2, 3, 4, 6, 7, 8
VERSION_ATTR, NAMESPACE_ATTR = "plugin_version", "plugin_namespace"


@dataclass(frozen=True)
class PluginFieldValue:
    name: str
    type: int  # PluginFieldType
    values: tuple  # ints, float32 values (as Python floats) or bytes (kCHAR)

    @property
    def length(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class ParserImport:
    """The registry lookup and createPlugin fields the parser derives from one node."""

    node: str
    name: str
    version: str
    namespace: str
    domain_namespace: str  # the parser's second try (newer parsers)
    fields: tuple[PluginFieldValue, ...]
    missing: tuple[str, ...]  # fields the creator lists that the node lacks (parser warns and skips them)
    not_passed: tuple[str, ...]  # node attributes the creator does not list (never reach the plugin)


def _int32(v: int) -> int:
    """static_cast<int32_t>(int64): two's complement wrap-around, as OnnxAttrs::get<int32_t> does."""
    return (int(v) + 2**31) % 2**32 - 2**31


def _float32(v: float) -> float:
    return struct.unpack("<f", struct.pack("<f", float(v)))[0]


def _attr_string(node: Any, name: str, default: str) -> str:
    for a in node.attribute:
        if a.name == name:
            return a.s.decode() if a.type == A_STRING else default
    return default


def convert_attribute(attr: Any) -> PluginFieldValue:
    """One ONNX attribute as the parser's loadFields turns it into a PluginField."""
    if attr.type == A_INT:
        return PluginFieldValue(attr.name, K_INT32, (_int32(attr.i),))
    if attr.type == A_INTS:
        return PluginFieldValue(attr.name, K_INT32, tuple(_int32(v) for v in attr.ints))
    if attr.type == A_FLOAT:
        return PluginFieldValue(attr.name, K_FLOAT32, (_float32(attr.f),))
    if attr.type == A_FLOATS:
        return PluginFieldValue(attr.name, K_FLOAT32, tuple(_float32(v) for v in attr.floats))
    if attr.type == A_STRING:
        return PluginFieldValue(attr.name, K_CHAR, tuple(bytes(attr.s) + b"\0"))
    if attr.type == A_STRINGS:
        return PluginFieldValue(attr.name, K_CHAR, tuple(b"".join(bytes(s) + b"\0" for s in attr.strings)))
    raise BadInputError(f"attribute {attr.name!r} has ONNX attribute type {attr.type}",
                        why="deployconv plugins take INT, INTS, FLOAT, FLOATS and STRING attributes only (the "
                            "parser would pass TENSOR attributes as raw weights, and refuses graphs and the rest)",
                        fix="change the op's ONNX lowering")


def parser_import(node: Any, creator_fields: Sequence[str]) -> ParserImport:
    """What the parser does with `node` given the field names its creator lists (getFieldNames, in order)."""
    attrs = {a.name: a for a in node.attribute}
    fields, missing = [], []
    for name in creator_fields:
        if name in attrs:
            fields.append(convert_attribute(attrs[name]))
        else:
            missing.append(name)
    return ParserImport(
        node=node.name, name=node.op_type, version=_attr_string(node, VERSION_ATTR, "1"),
        namespace=_attr_string(node, NAMESPACE_ATTR, ""), domain_namespace=node.domain,
        fields=tuple(fields), missing=tuple(missing),
        not_passed=tuple(sorted(n for n in attrs if n not in set(creator_fields))))


def probe_lines(imp: ParserImport) -> list[str]:
    """The plugin_probe script selecting the creator exactly as the registry lookup would and feeding it these
    fields (PluginFieldType numbers, float32 values written so they parse back to the same float)."""
    lines = [f"plugin {imp.name} {imp.version} {imp.namespace or '-'}"]
    for f in imp.fields:
        vals = " ".join(repr(v) if f.type == K_FLOAT32 else str(v) for v in f.values)
        lines.append(f"field {f.name} {f.type} {vals}".rstrip())
    return lines


def field_dicts(fields: Sequence[PluginFieldValue]) -> list[dict]:
    """The probe's JSON form of fields ({"name", "type", "length", "values"}), to compare with what it prints."""
    return [{"name": f.name, "type": f.type, "length": f.length, "values": list(f.values)} for f in fields]


def compare_fields(expected: Sequence[dict], got: Sequence[dict]) -> list[str]:
    """Differences between two field lists in the probe's JSON form: names and order, PluginFieldType, length and
    every value (float32 compared exactly after rounding both to float32). Empty when they agree."""
    problems = []
    if [f["name"] for f in expected] != [f["name"] for f in got]:
        problems.append(f"field names {[f['name'] for f in got]} != {[f['name'] for f in expected]}")
    for e, g in zip(expected, got):
        if e["type"] != g["type"]:
            problems.append(f"{e['name']}: PluginFieldType {g['type']} != {e['type']}")
        elif e["length"] != g["length"]:
            problems.append(f"{e['name']}: length {g['length']} != {e['length']}")
        else:
            conv = _float32 if e["type"] == K_FLOAT32 else int
            if [conv(v) for v in e["values"]] != [conv(v) for v in g["values"]]:
                problems.append(f"{e['name']}: values {g['values']} != {e['values']}")
    return problems
