"""SKA reference math: proven against a brute-force loop written straight from the formula."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deployconv.core.errors import BadInputError
from deployconv.ops.ska import SKA, ska


def ska_brute(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """out[b,c,h,w] = sum_{i,j} x[b,c,h-1+i,w-1+j] * w[b, c mod G, 3i+j, h, w], zero padding, in fp64."""
    B, C, H, W = x.shape
    G = w.shape[1]
    xs, ws = x.double().tolist(), w.double().tolist()
    out = [[[[0.0] * W for _ in range(H)] for _ in range(C)] for _ in range(B)]
    for b in range(B):
        for c in range(C):
            for h in range(H):
                for v in range(W):
                    s = 0.0
                    for i in range(3):
                        for j in range(3):
                            hh, vv = h - 1 + i, v - 1 + j
                            if 0 <= hh < H and 0 <= vv < W:
                                s += xs[b][c][hh][vv] * ws[b][c % G][3 * i + j][h][v]
                    out[b][c][h][v] = s
    return torch.tensor(out, dtype=torch.float64)


def inputs(b, c, g, h, w, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, generator=gen, dtype=torch.float64)
    wt = torch.randn(b, g, 9, h, w, generator=gen, dtype=torch.float64)
    return x.to(dtype), wt.to(dtype)


@st.composite
def shapes(draw):
    c = 8 * draw(st.integers(1, 3))
    g = draw(st.sampled_from([c // 8] + [d for d in (1, 2, 4, 8) if c % d == 0]))
    return dict(b=draw(st.integers(1, 2)), c=c, g=g, h=draw(st.integers(1, 9)), w=draw(st.integers(1, 9)),
                seed=draw(st.integers(0, 2**16)))


@settings(max_examples=40, deadline=None)
@given(shapes())
def test_matches_brute_force_fp64(p):
    x, w = inputs(p["b"], p["c"], p["g"], p["h"], p["w"], p["seed"])
    out = ska(x, w)
    ref = ska_brute(x, w)
    assert out.dtype == torch.float64 and out.shape == x.shape
    assert (out - ref).abs().max().item() <= 1e-12 * max(ref.abs().max().item(), 1.0)


def test_interleaved_channel_sharing():
    # C=16, G=2: weight set 0 is an identity tap, set 1 is zero. Interleaved sharing (c mod G) keeps the even
    # channels; blocked sharing (c // 8) would keep channels 0..7 instead.
    x, _ = inputs(1, 16, 2, 5, 4, seed=1)
    w = torch.zeros(1, 2, 9, 5, 4, dtype=torch.float64)
    w[:, 0, 4] = 1.0
    out = ska(x, w)
    assert torch.equal(out[:, 0::2], x[:, 0::2])
    assert torch.equal(out[:, 1::2], torch.zeros_like(out[:, 1::2]))
    assert out[:, 1].abs().max() == 0 and out[:, 8].abs().max() > 0


def test_taps_are_row_major_with_zero_padding():
    # Tap 3i+j reads x[h-1+i, w-1+j]: tap 0 shifts the image down-right, padding brings zeros in.
    x = torch.arange(8 * 12, dtype=torch.float64).view(1, 8, 3, 4)
    w = torch.zeros(1, 1, 9, 3, 4, dtype=torch.float64)
    w[:, :, 0] = 1.0
    out = ska(x, w)
    assert torch.equal(out[..., 1:, 1:], x[..., :-1, :-1])
    assert out[..., 0, :].abs().max() == 0 and out[..., :, 0].abs().max() == 0


def _half_ulp(ref: torch.Tensor, mantissa_bits: int, min_half_ulp: float) -> torch.Tensor:
    """Half a unit in the last place of `ref`'s binade for a float format with `mantissa_bits` stored bits."""
    _, e = torch.frexp(ref)
    return torch.ldexp(torch.ones_like(ref), e - mantissa_bits - 2).clamp_min(min_half_ulp)


def _fp16_accumulated(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Negative control: the same math with a partial sum rounded to the input dtype after every tap."""
    B, C, H, W = x.shape
    G = w.shape[1]
    xp = torch.nn.functional.pad(x.double(), (1, 1, 1, 1)).view(B, C // G, G, H + 2, W + 2)
    acc = torch.zeros(B, C // G, G, H, W, dtype=x.dtype)
    for t in range(9):
        i, j = divmod(t, 3)
        acc = (acc.double() + xp[..., i : i + H, j : j + W] * w.double()[:, None, :, t]).to(x.dtype)
    return acc.view(B, C, H, W)


@pytest.mark.parametrize("dtype,mantissa_bits,min_half_ulp", [
    (torch.float16, 10, 2.0**-25),
    (torch.bfloat16, 7, 2.0**-134),
])
def test_low_precision_accumulates_in_fp32(dtype, mantissa_bits, min_half_ulp):
    x, w = inputs(2, 64, 8, 9, 9, seed=3, dtype=dtype)
    out = ska(x, w)
    assert out.dtype == dtype
    ref = ska(x.double(), w.double())  # exact math on the rounded inputs (proven above against brute force)
    mag = ska(x.double().abs(), w.double().abs())  # sum of |products|: bounds the accumulation error
    # fp32 accumulation: one output rounding plus a negligible fp32 accumulation error.
    tol = _half_ulp(ref, mantissa_bits, min_half_ulp) + 2.0**-20 * mag
    assert ((out.double() - ref).abs() <= tol).all()
    # The bound is tight enough to catch accumulation in the input dtype.
    low = _fp16_accumulated(x, w)
    assert ((low.double() - ref).abs() > tol).any()


def test_fp32_and_mixed_dtypes():
    x, w = inputs(1, 16, 2, 6, 7, seed=4)
    ref = ska(x, w)
    out32 = ska(x.float(), w.float())
    assert out32.dtype == torch.float32 and (out32.double() - ref).abs().max() < 1e-5
    mixed = ska(x.half(), w.float())  # autocast hands over fp16 x with an fp32 GroupNorm output as w
    assert mixed.dtype == torch.float16


def test_module_and_noncontiguous_inputs():
    x, w = inputs(2, 16, 2, 5, 5, seed=5)
    xt = x.transpose(2, 3).contiguous().transpose(2, 3)  # same values, other strides
    wt = w.transpose(3, 4).contiguous().transpose(3, 4)
    assert SKA.deployconv_leaf is True
    assert torch.equal(SKA()(xt, wt), ska(x, w))


def test_autograd_runs():
    x, w = inputs(1, 8, 1, 4, 4, seed=6)
    x.requires_grad_(True)
    w.requires_grad_(True)
    assert torch.autograd.gradcheck(ska, (x, w))


@pytest.mark.parametrize("xs,ws", [
    ((2, 16, 5, 5), (2, 2, 9, 5, 5 + 1)),  # spatial mismatch
    ((2, 16, 5, 5), (1, 2, 9, 5, 5)),  # batch mismatch
    ((2, 16, 5, 5), (2, 2, 8, 5, 5)),  # not 9 taps
    ((2, 16, 5, 5), (2, 3, 9, 5, 5)),  # G does not divide C
    ((16, 5, 5), (2, 9, 5, 5)),  # wrong ranks
])
def test_bad_shapes_raise(xs, ws):
    with pytest.raises(BadInputError, match="ska"):
        ska(torch.zeros(xs), torch.zeros(ws))


def test_integer_inputs_raise():
    with pytest.raises(BadInputError, match="floating point"):
        ska(torch.zeros(1, 8, 2, 2, dtype=torch.long), torch.zeros(1, 1, 9, 2, 2))
