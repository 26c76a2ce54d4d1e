"""Sequential and parallel composition of ConvForms, exact or refused (pure fp64 tensor math).

compose(a, b) is b(a(x)) as one form; merge(forms) is sum_i f_i(x) as one form. Each raises `Refused` with the
reason when the result would not be the same function, so a near miss always says why.
Proven against brute-force evaluation of the unfused ops in tests/reparam/test_graph_algebra.py.
"""

from __future__ import annotations

from functools import reduce
from math import gcd

import torch
from torch import Tensor, nn

from deployconv.layers.fusion import pad_kernel
from deployconv.reparam.graph.forms import ConvForm, Refused


def regroup(weight: Tensor, groups: int, new_groups: int, in_channels: int) -> Tensor:
    """The same grouped kernel with coarser grouping (new_groups divides groups): block-diagonal, zeros off."""
    if new_groups == groups:
        return weight
    out = weight.shape[0]
    og, ig, ng_in = out // groups, in_channels // groups, in_channels // new_groups
    per = groups // new_groups
    new = weight.new_zeros(out, ng_in, *weight.shape[2:])
    for j in range(groups):
        col = (j % per) * ig
        new[j * og:(j + 1) * og, col:col + ig] = weight[j * og:(j + 1) * og]
    return new


def dilate(weight: Tensor, dilation: tuple[int, int]) -> Tensor:
    """A dilated kernel as the dense kernel of its extent (taps on every d-th position): UniRepLKNet's rule."""
    dh, dw = dilation
    if (dh, dw) == (1, 1):
        return weight
    kh, kw = weight.shape[-2:]
    out = weight.new_zeros(*weight.shape[:-2], dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    out[..., ::dh, ::dw] = weight
    return out


def _check_channels(a: ConvForm, b: ConvForm) -> None:
    if a.out_channels != b.in_channels:
        raise Refused(f"channel mismatch: {a.out_channels} -> {b.in_channels}")


def compose(a: ConvForm, b: ConvForm) -> ConvForm:
    """b after a, when one of them is 1x1 stride 1 (a BN, a scale, a pointwise conv)."""
    _check_channels(a, b)
    g = gcd(a.groups, b.groups)
    mid = a.out_channels
    wa = regroup(a.weight, a.groups, g, a.in_channels)
    wb = regroup(b.weight, b.groups, g, mid)
    cin, out = a.in_channels, b.out_channels
    if a.pointwise:
        # b pads a's output with zeros; the fused conv pads x, whose response through a is a's bias.
        if b.padding != (0, 0) and bool((a.bias != 0).any()):
            raise Refused(
                f"padding: the {b.describe()} conv pads with zeros after an op whose response to zero is "
                "non-zero (its bias), so the border would differ; DBB pads with that response (BNAndPad)")
        bg = wb.reshape(g, out // g, mid // g, *b.kernel)
        ag = wa[:, :, 0, 0].reshape(g, mid // g, cin // g)
        w = torch.einsum("gomhw,gmi->goihw", bg, ag).reshape(out, cin // g, *b.kernel)
        bias = b.bias + torch.einsum("gomhw,gm->go", bg, a.bias.reshape(g, mid // g)).reshape(out)
        pad = (a.padding[0] + b.padding[0], a.padding[1] + b.padding[1])
        return ConvForm(w, bias, b.stride, pad, b.dilation, g, cin)
    if b.pointwise and b.padding == (0, 0):
        bg = wb[:, :, 0, 0].reshape(g, out // g, mid // g)
        ag = wa.reshape(g, mid // g, cin // g, *a.kernel)
        w = torch.einsum("gom,gmihw->goihw", bg, ag).reshape(out, cin // g, *a.kernel)
        bias = b.bias + torch.einsum("gom,gm->go", bg, a.bias.reshape(g, mid // g)).reshape(out)
        return ConvForm(w, bias, a.stride, a.padding, a.dilation, g, cin)
    raise Refused(f"{a.describe()} then {b.describe()}: two spatial kernels (or a strided 1x1 before one) "
                  "do not compose into one conv exactly")


def merge(forms: list[ConvForm]) -> ConvForm:
    """sum_i f_i(x): kernels centred in the largest and added, groups coarsened to their gcd."""
    first = forms[0]
    for f in forms[1:]:
        if (f.in_channels, f.out_channels) != (first.in_channels, first.out_channels):
            raise Refused(f"channel mismatch between branches: {first.describe()} {first.in_channels}->"
                          f"{first.out_channels} vs {f.describe()} {f.in_channels}->{f.out_channels}")
    strides = {f.stride for f in forms}
    if len(strides) > 1:
        raise Refused("stride mismatch between branches: " + ", ".join(f.describe() for f in forms))
    offsets = {f.offset for f in forms}
    if len(offsets) > 1:
        raise Refused("alignment mismatch: branch windows are not centred alike (padding vs kernel extent): "
                      + ", ".join(f"{f.describe()} p{f.padding}" for f in forms))
    # Work in tap space when the spatial branches share a dilation per dimension, else densify.
    dil = []  # per dimension: the shared dilation, or 0 to densify (mixed dilations, odd size gaps)
    for d in range(2):
        ds = {f.dilation[d] for f in forms if f.kernel[d] > 1}
        size = max(f.kernel[d] for f in forms)
        tap_space = len(ds) <= 1 and all((size - f.kernel[d]) % 2 == 0 for f in forms)
        dil.append(next(iter(ds), 1) if tap_space else 0)
    kernels = []
    for f in forms:
        w = f.weight
        spread = tuple(f.dilation[d] if dil[d] == 0 and f.kernel[d] > 1 else 1 for d in range(2))
        kernels.append(dilate(w, spread))  # type: ignore[arg-type]
    dilation = (dil[0] or 1, dil[1] or 1)
    size = (max(k.shape[2] for k in kernels), max(k.shape[3] for k in kernels))
    g = reduce(gcd, (f.groups for f in forms))
    weight = sum(pad_kernel(regroup(k, f.groups, g, f.in_channels), size) for k, f in zip(kernels, forms))
    bias = sum(f.bias for f in forms)
    ext = [dilation[d] * (size[d] - 1) + 1 for d in range(2)]
    off = first.offset
    padding = ((off[0] + ext[0] - 1) // 2, (off[1] + ext[1] - 1) // 2)
    return ConvForm(weight, bias, first.stride, padding, dilation, g, first.in_channels)  # type: ignore[arg-type]


def to_conv(form: ConvForm, dtype: torch.dtype, device: torch.device | str | None = None) -> nn.Conv2d:
    """The deploy module: one nn.Conv2d with bias, weights rounded to the model's dtype."""
    conv = nn.Conv2d(form.in_channels, form.out_channels, form.kernel, stride=form.stride, padding=form.padding,
                     dilation=form.dilation, groups=form.groups, bias=True, device=device, dtype=dtype)
    with torch.no_grad():
        conv.weight.copy_(form.weight)
        conv.bias.copy_(form.bias)
    return conv.eval()
