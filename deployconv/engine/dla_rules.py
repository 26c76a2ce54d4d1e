"""The per-op DLA rules: for each ONNX op, can TensorRT run the layer it becomes on the DLA, and if not, why
(with the source: [table], [header], [ops], [parser]; see deployconv.engine.dla). Each rule reads the graph facts
(deployconv.engine.dla_graph) and returns a Verdict. Pure.

A little over 400 lines on purpose: one rule per TensorRT layer kind, in the order of NVIDIA's "DLA Supported
Layers and Restrictions" table, so the file is checked against that table top to bottom in one place."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from deployconv.engine.dla_graph import Dims, _attr, _Graph, _static, _text


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""
    approximate: bool = False


OK = Verdict(True)


def _no(reason: str, approximate: bool = False) -> Verdict:
    return Verdict(False, reason, approximate)


def _in(values: Sequence[int], lo: int, hi: int) -> bool:
    return all(lo <= int(v) <= hi for v in values)


def _x(values: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in values)


def _rank4(node: Any, g: _Graph, what: str) -> Verdict | None:
    shape = g.shape(node.input[0]) if node.input else None
    if shape is None:
        return None
    if len(shape) != 4:
        return _no(f"DLA {what} is 2-D only (N,C,H,W tensors); this input has rank {len(shape)} [table]")
    return None


def _pads(node: Any, g: _Graph, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]
          ) -> tuple[list[int], bool]:
    """Begin/end pads per spatial dim, and whether they are exact (auto_pad SAME needs the input size)."""
    auto = _text(_attr(node, "auto_pad", "NOTSET"))
    if auto in ("NOTSET", ""):
        pads = list(_attr(node, "pads", [0] * (2 * len(kernel))))
        return pads, True
    if auto == "VALID":
        return [0] * (2 * len(kernel)), True
    shape = g.shape(node.input[0])
    total = []
    exact = _static(shape)
    for i, (k, s, d) in enumerate(zip(kernel, strides, dilations)):
        span = (k - 1) * d + 1
        size = shape[2 + i] if exact else s  # type: ignore[index]
        out = -(-size // s)
        total.append(max(0, (out - 1) * s + span - size))
    begin = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
    return begin + [t - b for t, b in zip(total, begin)], exact


def rule_conv(node: Any, g: _Graph) -> Verdict:
    """[header] IConvolutionLayer: 2-D; kernel [1,32]; stride [1,8]; dilation [1,32]; padding [0,31] and
    smaller than the kernel; groups <= 8192; output maps [1,8192]. 31x31 depthwise fits, 33x33 does not."""
    bad = _rank4(node, g, "convolution")
    if bad:
        return bad
    w = g.shape(node.input[1]) if len(node.input) > 1 else None
    if node.input[1] not in g.constants:
        return _no("the weights are computed at run time; DLA compiles build-time weights into its loadable",
                   approximate=True)
    kernel = list(_attr(node, "kernel_shape", w[2:] if w else []))
    if len(kernel) != 2:
        return _no(f"DLA convolution is 2-D only; this one is {len(kernel)}-D [header]")
    strides = list(_attr(node, "strides", [1, 1]))
    dilations = list(_attr(node, "dilations", [1, 1]))
    groups = int(_attr(node, "group", 1))
    if not _in(kernel, 1, 32):
        return _no(f"kernel {_x(kernel)} is outside DLA's [1, 32] per dimension [header]")
    if not _in(strides, 1, 8):
        return _no(f"stride {_x(strides)} is outside DLA's [1, 8] [header]")
    if not _in(dilations, 1, 32):
        return _no(f"dilation {_x(dilations)} is outside DLA's [1, 32] [header]")
    pads, exact = _pads(node, g, kernel, strides, dilations)
    for i, p in enumerate(pads):
        k = kernel[i % 2]
        if not 0 <= p <= 31 or p >= k:
            return _no(f"padding {p} (kernel {_x(kernel)}) must be in [0, 31] and smaller than the kernel [header]",
                       approximate=not exact)
    if groups > 8192:
        return _no(f"{groups} groups; DLA allows at most 8192 [header]")
    if w and isinstance(w[0], int) and not 1 <= w[0] <= 8192:
        return _no(f"{w[0]} output channels; DLA allows [1, 8192] [header]")
    return Verdict(True, "" if exact else "auto_pad SAME with an unknown input size: padding estimated", not exact)


def rule_conv_transpose(node: Any, g: _Graph) -> Verdict:
    """[header] IDeconvolutionLayer: 2-D; one group; no dilation; padding 0; kernel and stride [1,32], or
    64/96/128 in one dimension with 1 in the other; output maps [1,8192]."""
    bad = _rank4(node, g, "deconvolution")
    if bad:
        return bad
    if node.input[1] not in g.constants:
        return _no("the weights are computed at run time; DLA compiles build-time weights into its loadable",
                   approximate=True)
    w = g.shape(node.input[1])
    kernel = list(_attr(node, "kernel_shape", w[2:] if w else []))
    strides = list(_attr(node, "strides", [1] * len(kernel)))
    if len(kernel) != 2:
        return _no(f"DLA deconvolution is 2-D only; this one is {len(kernel)}-D [header]")

    def fits(v: Sequence[int]) -> bool:
        return _in(v, 1, 32) or (sorted(int(x) for x in v)[0] == 1 and max(v) in (64, 96, 128))

    if int(_attr(node, "group", 1)) != 1:
        return _no("grouped deconvolution; DLA needs one group [header]")
    if any(int(d) != 1 for d in _attr(node, "dilations", [1, 1])):
        return _no("dilated deconvolution is not supported on DLA [table]")
    if any(int(p) != 0 for p in _attr(node, "pads", [0, 0, 0, 0])) or _text(_attr(node, "auto_pad", "NOTSET")) \
            not in ("NOTSET", "VALID"):
        return _no("padded deconvolution; DLA needs padding 0 [header]")
    if not fits(kernel):
        return _no(f"kernel {_x(kernel)}: DLA takes [1, 32], or 64/96/128 by 1 [header]")
    if not fits(strides):
        return _no(f"stride {_x(strides)}: DLA takes [1, 32], or 64/96/128 by 1 [header]")
    if w and isinstance(w[1], int) and not 1 <= w[1] * int(_attr(node, "group", 1)) <= 8192:
        return _no(f"{w[1]} output channels; DLA allows [1, 8192] [header]")
    return OK


def rule_pool(node: Any, g: _Graph) -> Verdict:
    """[header] IPoolingLayer: MAX/AVERAGE, 2-D; window [1,8]; stride [1,16]; padding [0,7]."""
    bad = _rank4(node, g, "pooling")
    if bad:
        return bad
    if len(node.output) > 1 and node.output[1]:
        return _no("MaxPool with an indices output; TensorRT pooling has none [header]")
    kernel = list(_attr(node, "kernel_shape", []))
    strides = list(_attr(node, "strides", [1] * len(kernel)))
    dilations = list(_attr(node, "dilations", [1] * len(kernel)))
    if len(kernel) != 2:
        return _no(f"DLA pooling is 2-D only; this one is {len(kernel)}-D [header]")
    if any(int(d) != 1 for d in dilations):
        return _no(f"dilated pooling ({_x(dilations)}) has no TensorRT pooling layer [header]", approximate=True)
    if not _in(kernel, 1, 8):
        return _no(f"window {_x(kernel)} is outside DLA's [1, 8] [header]")
    if not _in(strides, 1, 16):
        return _no(f"stride {_x(strides)} is outside DLA's [1, 16] [header]")
    pads, exact = _pads(node, g, kernel, strides, dilations)
    if not _in(pads, 0, 7):
        return _no(f"padding {pads} is outside DLA's [0, 7] [header]", approximate=not exact)
    return OK


def _reduce_axes(node: Any, g: _Graph) -> list[int] | None:
    axes = _attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        arr = g.const(node.input[1])
        axes = None if arr is None else [int(a) for a in arr.reshape(-1)]
    return None if axes is None else list(axes)


def rule_reduce(node: Any, g: _Graph) -> Verdict:
    """[ops] Reduce on DLA: MAX over any combination of C, H, W. [parser] Global pools import as Reduce."""
    global_pool = node.op_type in ("GlobalAveragePool", "GlobalMaxPool")
    is_max = node.op_type in ("ReduceMax", "GlobalMaxPool")
    if not is_max:
        via = " (the ONNX parser imports GlobalAveragePool as Reduce AVG [parser])" if global_pool else ""
        return _no(f"DLA's Reduce runs MAX only [ops]{via}", approximate=global_pool)
    shape = g.shape(node.input[0])
    if shape is None:
        return OK
    if len(shape) != 4:
        return _no(f"DLA reduces 4-D (N,C,H,W) tensors over C/H/W; this input has rank {len(shape)} [ops]")
    axes = [2, 3] if global_pool else _reduce_axes(node, g)
    if axes is None:
        if int(_attr(node, "noop_with_empty_axes", 0)):
            return OK
        axes = [0, 1, 2, 3]
    if 0 in [a % 4 for a in axes]:
        return _no("reduces over the batch dim; DLA reduces C/H/W only [ops]")
    return OK


def rule_activation(node: Any, g: _Graph) -> Verdict:
    """[header]/[table] IActivationLayer on DLA: ReLU, Sigmoid, TanH, Clip(ped ReLU), Leaky ReLU; 2-D."""
    bad = _rank4(node, g, "activation")
    if bad:
        return bad
    if node.op_type == "Clip":
        bounds = [i for i in node.input[1:] if i]
        if any(b not in g.constants for b in bounds):
            return _no("Clip bounds computed at run time; DLA's clip needs build-time bounds", approximate=True)
        lo = g.const(node.input[1]) if len(node.input) > 1 and node.input[1] else _attr(node, "min")
        if lo is not None and float(lo) != 0.0:
            return Verdict(True, "documented as Clipped ReLU [table]; a non-zero lower bound is a guess",
                           approximate=True)
    return OK


def rule_prelu(node: Any, g: _Graph) -> Verdict:
    """[header] IParametricReLULayer on DLA: the slopes must be a build-time constant."""
    bad = _rank4(node, g, "parametric ReLU")
    if bad:
        return bad
    if node.input[1] not in g.constants:
        return _no("slopes computed at run time; DLA needs build-time slopes [header]")
    return OK


def _broadcast_kind(shape: Dims, out: Dims) -> str | None:
    """'same', 'channel', 'scalar' or None (another broadcast), for an operand right-aligned to the output."""
    padded = (1,) * (len(out) - len(shape)) + tuple(shape)
    if padded == tuple(out):
        return "same"
    if all(d == 1 for d in padded):
        return "scalar"
    if len(out) == 4 and padded[2:] == (1, 1) and padded[1] == out[1] and padded[0] in (1, out[0]):
        return "channel"
    return None


def rule_elementwise(node: Any, g: _Graph) -> Verdict:
    """[table] ElementWise on DLA: Sum, Sub, Product, Max, Min, Div, Pow; 2-D. Broadcast (approximation): an
    operand equal to the output, per channel (C,1,1) or a scalar, which DLA's Scale/ElementWise take."""
    out = g.shape(node.output[0])
    if out is None:
        return Verdict(True, "output shape unknown: broadcast not checked", approximate=True)
    if len(out) != 4:
        return _no(f"DLA elementwise is 2-D only (N,C,H,W); the output has rank {len(out)} [table]")
    for i in node.input:
        shape = g.shape(i)
        if shape is None:
            return Verdict(True, f"shape of {i!r} unknown: broadcast not checked", approximate=True)
        if _broadcast_kind(shape, out) is None:
            return _no(f"operand {i!r} {list(shape)} broadcasts to {list(out)} in a way DLA's elementwise does not "
                       "take (same shape, per channel or scalar)", approximate=True)
    int8_note = g.precision == "int8" and len([i for i in node.input if i not in g.constants]) > 1
    return Verdict(True, "int8: both inputs need equal dynamic ranges [header]" if int8_note else "")


def rule_comparison(node: Any, g: _Graph) -> Verdict:
    """[table] Comparison (Equal, Greater, Less) on DLA: int8 only; its output must be cast to fp16/int8 at once."""
    if g.precision != "int8":
        return _no(f"DLA runs comparisons in int8 only; the target is {g.precision} [table]")
    users = g.consumers.get(node.output[0], [])
    if not users or any(u.op_type != "Cast" for u in users):
        return _no("the comparison's output must go straight into a Cast to fp16/int8 [table]", approximate=True)
    return OK


def rule_concat(node: Any, g: _Graph) -> Verdict:
    """[header]/[table] Concatenation on DLA: along the channel axis (third from last), at least two inputs."""
    shape = g.shape(node.output[0])
    inputs = [i for i in node.input if i]
    if len(inputs) < 2:
        return _no("a one-input concatenation; DLA needs at least two [table]")
    if shape is None:
        return OK
    axis = int(_attr(node, "axis", 0)) % len(shape)
    if axis != len(shape) - 3:
        return _no(f"concatenates along axis {axis}; DLA concatenates along channels only [header]")
    return OK


def rule_lrn(node: Any, g: _Graph) -> Verdict:
    """[header] ILRNLayer on DLA: window 3, 5, 7 or 9 (across channels, which ONNX LRN always is)."""
    size = int(_attr(node, "size", 0))
    if size not in (3, 5, 7, 9):
        return _no(f"LRN window {size}; DLA takes 3, 5, 7 or 9 [header]")
    return Verdict(True, "int8 LRN runs in fp16 on DLA [table]" if g.precision == "int8" else "")


def rule_softmax(node: Any, g: _Graph) -> Verdict:
    """[header] ISoftMaxLayer on DLA: axis C/H/W; axis dim <= 8192 when the other non-batch dims are 1, else
    <= 1024 (approximation error grows towards that bound)."""
    shape = g.shape(node.input[0])
    if shape is None:
        return OK
    if len(shape) != 4:
        return _no(f"DLA softmax works on N,C,H,W tensors; this input has rank {len(shape)}", approximate=True)
    axis = int(_attr(node, "axis", -1)) % 4
    if axis == 0:
        return _no("softmax over the batch dim; DLA needs a channel or spatial axis [header]")
    if not _static(shape):
        return OK
    others = [d for i, d in enumerate(shape) if i not in (0, axis)]
    limit = 8192 if all(d == 1 for d in others) else 1024
    if shape[axis] > limit:
        return _no(f"softmax axis size {shape[axis]} > {limit} [header]")
    return OK


_RESIZE_NEAREST = {("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"), ("half_pixel", "round_prefer_ceil")}


def rule_resize(node: Any, g: _Graph) -> Verdict:
    """[header] IResizeLayer on DLA: 4 scales, 1 for N and C, integer H/W scales in [1,32] (nearest) or [1,4]
    (linear); nearest with (asymmetric, floor) or (half_pixel, round half down/up), linear with half_pixel."""
    mode = _text(_attr(node, "mode", "nearest"))
    coord = _text(_attr(node, "coordinate_transformation_mode", "half_pixel"))
    nearest = _text(_attr(node, "nearest_mode", "round_prefer_floor"))
    if mode not in ("nearest", "linear"):
        return _no(f"{mode} resize; DLA resizes nearest or linear [header]")
    if mode == "nearest" and (coord, nearest) not in _RESIZE_NEAREST:
        return _no(f"nearest resize with ({coord}, {nearest}); DLA takes (asymmetric, floor) or half_pixel with "
                   "round half down/up [header]")
    if mode == "linear" and coord not in ("half_pixel", "pytorch_half_pixel"):
        return _no(f"linear resize with {coord}; DLA takes half_pixel [header]")
    approx = coord == "pytorch_half_pixel"
    scales = g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if scales is None or scales.size == 0:
        sizes = g.const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        shape = g.shape(node.input[0])
        if sizes is None or not _static(shape):
            return _no("output size computed at run time; DLA needs build-time scales [header]")
        scales = [s / d for s, d in zip(sizes.reshape(-1).tolist(), shape)]  # type: ignore[arg-type]
        approx = True  # TensorRT may keep output dims (unsupported on DLA) rather than turn them into scales
    scales = [float(s) for s in (scales.reshape(-1).tolist() if hasattr(scales, "reshape") else scales)]
    hi = 32 if mode == "nearest" else 4
    if len(scales) != 4 or scales[0] != 1 or scales[1] != 1:
        return _no(f"scales {scales}; DLA needs four, with 1 for N and C [header]", approximate=approx)
    if any(s != int(s) or not 1 <= s <= hi for s in scales[2:]):
        return _no(f"H/W scales {scales[2:]}; DLA needs integers in [1, {hi}] for {mode} [header]",
                   approximate=approx)
    return Verdict(True, "pytorch_half_pixel taken as half_pixel" if coord == "pytorch_half_pixel" else "", approx)


def rule_slice(node: Any, g: _Graph) -> Verdict:
    """[header] ISliceLayer on DLA: build-time start/size/stride, strides 1, no slicing of the first dim, 4-D."""
    shape = g.shape(node.input[0])
    if shape is not None and len(shape) != 4:
        return _no(f"DLA slices 4-D tensors; this input has rank {len(shape)} [header]")
    params = [i for i in node.input[1:] if i]
    if any(p not in g.constants for p in params):
        return _no("slice bounds computed at run time; DLA needs build-time bounds [header]")
    steps = g.const(node.input[4]) if len(node.input) > 4 and node.input[4] else None
    if steps is not None and any(int(s) != 1 for s in steps.reshape(-1)):
        return _no(f"slice steps {steps.reshape(-1).tolist()}; DLA needs 1 [header]")
    axes = g.const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    starts = g.const(node.input[1]).reshape(-1).tolist()
    ends = g.const(node.input[2]).reshape(-1).tolist()
    axes_l = axes.reshape(-1).tolist() if axes is not None else list(range(len(starts)))
    rank = len(shape) if shape is not None else 4
    for a, s, e in zip(axes_l, starts, ends):
        if a % rank == 0 and not (s == 0 and (shape is None or e >= shape[0])):  # type: ignore[operator]
            return _no("slices the first (batch) dim; DLA does not [header]")
    return OK


def rule_shuffle(node: Any, g: _Graph) -> Verdict:
    """Reshape/Transpose/Flatten/(Un)Squeeze become TensorRT Shuffle layers. DLA runs 4-D shuffles that keep
    the batch dim (approximation: the restriction list is not in the header)."""
    src, dst = g.shape(node.input[0]), g.shape(node.output[0])
    if src is None or dst is None:
        return Verdict(True, "shapes unknown: shuffle not checked", approximate=True)
    if len(src) != 4 or len(dst) != 4:
        return _no(f"reshapes rank {len(src)} -> {len(dst)}; DLA shuffles 4-D tensors", approximate=True)
    if node.op_type == "Transpose" and int(_attr(node, "perm", [0, 1, 2, 3])[0]) != 0:
        return _no("transposes the batch dim; DLA keeps it in place", approximate=True)
    if src[0] != dst[0]:
        return _no(f"changes the batch dim {src[0]} -> {dst[0]}", approximate=True)
    return Verdict(True, "", approximate=True)


def rule_fully_connected(node: Any, g: _Graph) -> Verdict:
    """[table] lists Convolution / Fully Connected. TensorRT 10 imports Gemm/MatMul as a matrix multiply; with
    build-time weights it is taken here as DLA's fully connected (approximation)."""
    weight = node.input[1] if len(node.input) > 1 else ""
    if weight not in g.constants:
        return _no("both matrix operands computed at run time; DLA's fully connected needs build-time weights",
                   approximate=True)
    w = g.constants[weight]
    if w.ndim != 2:
        return _no(f"batched matrix multiply (weights of rank {w.ndim}); DLA has fully connected only",
                   approximate=True)
    if node.op_type == "Gemm" and int(_attr(node, "transA", 0)):
        return _no("Gemm with transA; not a fully connected layer", approximate=True)
    n_out = w.shape[0] if (node.op_type == "Gemm" and int(_attr(node, "transB", 0))) else w.shape[1]
    if not 1 <= n_out <= 8192:
        return _no(f"{n_out} outputs; DLA allows [1, 8192] [table]")
    return Verdict(True, "matrix multiply taken as DLA's fully connected", approximate=True)


def rule_scale(node: Any, g: _Graph) -> Verdict:
    """[table] Scale on DLA (uniform, per channel, elementwise): ONNX BatchNormalization with constant statistics."""
    if any(i not in g.constants for i in node.input[1:5] if i):
        return _no("batch-norm parameters computed at run time; DLA's Scale needs build-time values",
                   approximate=True)
    return _rank4(node, g, "scale") or OK


def rule_unary(node: Any, g: _Graph) -> Verdict:
    """[header] IUnaryLayer on DLA: ABS only."""
    return _rank4(node, g, "unary") or OK


Rule = Callable[[Any, _Graph], Verdict]
RULES: dict[str, Rule] = {
    "Conv": rule_conv, "ConvTranspose": rule_conv_transpose,
    "MaxPool": rule_pool, "AveragePool": rule_pool,
    "GlobalAveragePool": rule_reduce, "GlobalMaxPool": rule_reduce, "ReduceMax": rule_reduce,
    "ReduceMean": rule_reduce, "ReduceSum": rule_reduce, "ReduceMin": rule_reduce, "ReduceProd": rule_reduce,
    "ReduceL1": rule_reduce, "ReduceL2": rule_reduce, "ReduceLogSumExp": rule_reduce, "ReduceSumSquare": rule_reduce,
    "Relu": rule_activation, "Sigmoid": rule_activation, "Tanh": rule_activation, "Clip": rule_activation,
    "LeakyRelu": rule_activation, "PRelu": rule_prelu,
    "Add": rule_elementwise, "Sub": rule_elementwise, "Mul": rule_elementwise, "Div": rule_elementwise,
    "Pow": rule_elementwise, "Max": rule_elementwise, "Min": rule_elementwise, "Sum": rule_elementwise,
    "Concat": rule_concat, "LRN": rule_lrn, "Softmax": rule_softmax, "Resize": rule_resize, "Slice": rule_slice,
    "Reshape": rule_shuffle, "Transpose": rule_shuffle, "Flatten": rule_shuffle, "Squeeze": rule_shuffle,
    "Unsqueeze": rule_shuffle,
    "Gemm": rule_fully_connected, "MatMul": rule_fully_connected,
    "BatchNormalization": rule_scale, "Abs": rule_unary,
}
COMPARISONS = ("Equal", "Greater", "Less")
# Unary ops and activations DLA does not have, named so the reason says which list they missed.
_NOT_ON_DLA = {
    "Gelu": "activation", "Erf": "unary", "Elu": "activation", "Selu": "activation", "Softplus": "activation",
    "HardSigmoid": "activation", "HardSwish": "activation", "Mish": "activation", "Exp": "unary", "Log": "unary",
    "Sqrt": "unary", "Reciprocal": "unary", "Neg": "unary", "Sin": "unary", "Cos": "unary", "Floor": "unary",
    "Ceil": "unary", "Round": "unary", "Sign": "unary",
}
