"""The one way op tests export a small module with a chosen lowering, run it in ONNX Runtime and compare it with
PyTorch. Every export has a free batch axis; every ORT comparison runs at batch sizes other than the exported one.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable, Iterable

import numpy as np
import onnx
import torch
from torch import nn

from deployconv.ops.registry import OpEntry
from tests.helpers import max_rel

EXPORT_BATCH = 2
FP32_TOL = 1e-5  # max |ORT fp32 - fp64 reference| / max |reference|


def lowering_table(entries: Iterable[OpEntry], lowering: str, opset: int) -> dict:
    """{torch op: translation} for `entries`, each with `lowering` (asserting the opset is allowed)."""
    table = {}
    for e in entries:
        assert opset >= e.min_opset[lowering], f"{e.name} {lowering} needs opset {e.min_opset[lowering]}"
        table[e.torch_op] = e.lowerings[lowering]
    return table


def export(module: nn.Module, args: tuple, table: dict, opset: int) -> onnx.ModelProto:
    """Dynamo export of `module` (eval) with the batch axis of every tensor argument free; checked with
    onnx.checker (full_check, which also runs strict shape inference)."""
    for name in ("torch.onnx", "torch.export", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)
    batch = torch.export.Dim("batch", min=1, max=1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(module.eval(), args, dynamo=True, custom_translation_table=table,
                                 dynamic_shapes=tuple({0: batch} for _ in args), opset_version=opset,
                                 verbose=False)
    proto = prog.model_proto
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param, "batch axis is not free"
    return proto


def run_ort(proto: onnx.ModelProto, *arrays: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: a for i, a in zip(sess.get_inputs(), arrays)})


def assert_ort_matches(proto: onnx.ModelProto, module: nn.Module, make_args: Callable[[int], tuple],
                       batches: tuple[int, ...] = (1, 3), tol: float = FP32_TOL) -> list[float]:
    """Run the fp32 graph in ORT at each batch size and compare with the module evaluated in fp64 on the same
    (fp32-rounded) inputs; returns the max relative errors (|diff| max over |reference| max)."""
    ref_module = copy.deepcopy(module).double().eval()
    errs = []
    for b in batches:
        args = make_args(b)
        (out,) = run_ort(proto, *(a.numpy() for a in args))
        with torch.no_grad():
            ref = ref_module(*(a.double() for a in args))
        assert out.shape == tuple(ref.shape), (out.shape, tuple(ref.shape))
        errs.append(max_rel(ref, torch.from_numpy(out)))
    assert max(errs) <= tol, f"ORT vs PyTorch max rel err {errs} at batches {batches} > {tol}"
    return errs


def custom_nodes(proto: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Nodes outside the ONNX domains."""
    return [n for n in proto.graph.node if n.domain not in ("", "ai.onnx")]


def attributes(node: onnx.NodeProto) -> dict:
    """{name: value} with strings decoded and int lists as lists."""
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else list(v) if isinstance(v, (list, tuple)) else v
    return out


def metadata(node: onnx.NodeProto) -> dict[str, str]:
    return {p.key: p.value for p in node.metadata_props}
