"""Structural checks of an exported graph: checker, shape inference, and what should not be there
(Identity, foldable BatchNormalization, dead or duplicate nodes). Torch-free."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import onnx

from deployconv.plugins.onnx_schemas import register_plugin_schemas


@dataclass
class GraphCheck:
    nodes: int
    op_counts: dict[str, int]
    identity: int
    batchnorm: int
    dead: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    custom_nodes: dict[str, int] = field(default_factory=dict)  # "domain::op_type" -> count


def _attr_key(node: onnx.NodeProto) -> tuple:
    return tuple(sorted((a.name, a.SerializeToString()) for a in node.attribute))


def check_graph(proto: onnx.ModelProto) -> GraphCheck:
    """Run onnx.checker (full) and shape inference, then count what a clean graph must not contain."""

    register_plugin_schemas()
    onnx.checker.check_model(proto, full_check=True)
    g = proto.graph
    ops = Counter(n.op_type for n in g.node)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    dead = [n.name or n.op_type for n in g.node if not any(o in used for o in n.output if o)]
    seen: dict[tuple, str] = {}
    dups = []
    for n in g.node:
        key = (n.domain, n.op_type, tuple(n.input), _attr_key(n))
        if key in seen:
            dups.append(f"{n.name or n.op_type} duplicates {seen[key]}")
        else:
            seen[key] = n.name or n.op_type
    custom = Counter(f"{n.domain}::{n.op_type}" for n in g.node if n.domain not in ("", "ai.onnx"))
    return GraphCheck(len(g.node), dict(ops), ops.get("Identity", 0), ops.get("BatchNormalization", 0),
                      dead, dups, dict(custom))
