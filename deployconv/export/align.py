"""Match the nodes of two exports of one model that differ only in how custom ops were lowered.

A TensorRT target's artifact has one plugin node per custom op; its validation twin has the same model with the
ONNX-domain lowering (which ONNX Runtime can run). Precision decisions (fp16 nodes kept in fp32, int8 Q/DQ) are
made on the twin and carried over to the artifact, so both graphs must be matched node by node. Exporter node
names are counters that shift with every extra lowering node, so names cannot be trusted; instead the node
sequences are aligned (difflib) on a signature that is stable across exports: op type, attributes and the shapes
of constant inputs. The custom-op sub-graphs then show up as replaced runs and everything else lines up.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field

import onnx


def _signature(node: onnx.NodeProto, init_shapes: dict[str, tuple[int, ...]]) -> str:
    attrs = sorted((a.name, str(onnx.helper.get_attribute_value(a))) for a in node.attribute
                   if a.type != onnx.AttributeProto.GRAPH)
    consts = [init_shapes.get(i) for i in node.input]
    text = f"{node.domain}:{node.op_type}|{attrs}|{consts}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _signatures(proto: onnx.ModelProto) -> list[str]:
    shapes = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    return [_signature(n, shapes) for n in proto.graph.node]


@dataclass
class Alignment:
    """twin node name -> artifact node name for every matched node; what could not be matched, by op type."""

    pairs: dict[str, str] = field(default_factory=dict)
    unmatched_twin: dict[str, int] = field(default_factory=dict)
    unmatched_artifact: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"matched": len(self.pairs), "unmatched_twin": self.unmatched_twin,
                "unmatched_artifact": self.unmatched_artifact}


def _count(nodes: list[onnx.NodeProto]) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in nodes:
        out[n.op_type] = out.get(n.op_type, 0) + 1
    return out


def align(twin: onnx.ModelProto, artifact: onnx.ModelProto) -> Alignment:
    """Node correspondence between two graphs in topological order (both as exported + simplified)."""
    a, b = list(twin.graph.node), list(artifact.graph.node)
    matcher = difflib.SequenceMatcher(a=_signatures(twin), b=_signatures(artifact), autojunk=False)
    result = Alignment()
    matched_a: set[int] = set()
    matched_b: set[int] = set()
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            result.pairs[a[block.a + k].name] = b[block.b + k].name
            matched_a.add(block.a + k)
            matched_b.add(block.b + k)
    result.unmatched_twin = _count([n for i, n in enumerate(a) if i not in matched_a])
    result.unmatched_artifact = _count([n for i, n in enumerate(b) if i not in matched_b])
    return result


def tensor_map(twin: onnx.ModelProto, artifact: onnx.ModelProto, alignment: Alignment) -> dict[str, str]:
    """twin tensor name -> artifact tensor name: the outputs of matched nodes position by position, and the
    graph inputs (one export's names)."""
    art_nodes = {n.name: n for n in artifact.graph.node}
    art_inputs = {i.name for i in artifact.graph.input}
    out = {i.name: i.name for i in twin.graph.input if i.name in art_inputs}
    for node in twin.graph.node:
        other = art_nodes.get(alignment.pairs.get(node.name, ""))
        if other is None:
            continue
        for a, b in zip(node.output, other.output):
            if a and b:
                out[a] = b
    return out
