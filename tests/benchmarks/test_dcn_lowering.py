"""benchmarks/dcn_lowering.py's plumbing on a tiny layer (no timing asserted): the torchvision column, fed a
brute-force stand-in with torchvision's signature and semantics (per-tap bilinear sampling, zero outside
(-1, H) x (-1, W)), shows up in the rows and in the pairwise fp64/fp32 agreement; without torchvision the
result says why it was skipped."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks import dcn_lowering


def _bilinear(img: np.ndarray, py: np.ndarray, px: np.ndarray) -> np.ndarray:
    """img (C, H, W) sampled at (py, px) of any shape -> (C, *shape); corners outside the image count 0."""
    c, h, w = img.shape
    out = np.zeros((c, *py.shape))
    inside = (py > -1) & (py < h) & (px > -1) & (px < w)
    y0, x0 = np.floor(py).astype(int), np.floor(px).astype(int)
    for dy in (0, 1):
        for dx in (0, 1):
            yy, xx = y0 + dy, x0 + dx
            wt = (1 - np.abs(py - yy)) * (1 - np.abs(px - xx))
            ok = inside & (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            out += np.where(ok, wt, 0.0) * img[:, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]
    return out


def brute_force_tv(x, offset, weight, bias, stride, padding, dilation, mask):
    """torchvision.ops.deform_conv2d's definition, loop over taps (groups 1, offset groups 1), in fp64."""
    dtype = x.dtype
    x, off, wgt, m = (t.double().numpy() for t in (x, offset, weight, mask))
    n, _, h, w = x.shape
    cout, _, kh, kw = wgt.shape
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    y = np.zeros((n, cout, ho, wo))
    for b in range(n):
        for ky in range(kh):
            for kx in range(kw):
                k = ky * kw + kx
                py = oy * stride[0] - padding[0] + ky * dilation[0] + off[b, 2 * k]
                px = ox * stride[1] - padding[1] + kx * dilation[1] + off[b, 2 * k + 1]
                cols = _bilinear(x[b], py, px) * m[b, k]
                y[b] += np.einsum("oc,chw->ohw", wgt[:, :, ky, kx], cols)
    return torch.from_numpy(y).to(dtype)


def test_torchvision_column_and_agreement():
    res = dcn_lowering.run(1, 1, layers={"tiny (4ch @6x7)": (4, 6, 7)},
                           torchvision_op=(brute_force_tv, "brute-force stand-in"))
    cands = {r["candidate"] for r in res["rows"]}
    assert dcn_lowering.TV in cands and dcn_lowering.REF in cands and len(cands) == 5
    assert res["torchvision"] == "brute-force stand-in" and res["torchvision_skipped"] is None
    (agree,) = res["agreement"]
    pairs = agree["max_abs"]
    assert len(pairs) == 10  # 5 outputs: ORT fp32, reference fp32/fp64, torchvision fp32/fp64
    # the reference and an independent definition agree to fp64 rounding; fp32 paths to fp32 rounding
    assert pairs["reference fp64 vs torchvision fp64"] < 1e-12
    assert max(pairs.values()) < 1e-4 * max(agree["output_abs_max"], 1.0)
    tv_row = next(r for r in res["rows"] if r["candidate"] == dcn_lowering.TV)
    assert tv_row["median_ms"] > 0 and tv_row["max_abs_vs_fp64"] < 1e-4
    assert res["threads"] == 1 and len(res["load_avg_start"]) == 3 and res["env"]["torch"]


def test_without_torchvision_the_result_says_why():
    fn, why = dcn_lowering.load_torchvision()
    if fn is not None:  # a matching torchvision build is installed: nothing to explain
        assert why
        return
    assert "torchvision" in why
    res = dcn_lowering.run(1, 1, layers={"tiny": (2, 5, 5)}, torchvision_op=(None, why))
    assert res["torchvision"] is None and res["torchvision_skipped"] == why
    assert dcn_lowering.TV not in {r["candidate"] for r in res["rows"]}
