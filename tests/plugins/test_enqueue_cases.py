"""The GPU enqueue check's cases (tests/gpu/plugin_enqueue_harness.py), prepared here on the CPU: the inputs and
fields each case would enqueue are accepted by the plugin (createPlugin, formats, configurePlugin and onShapeChange
through plugin_probe), getOutputShapes gives the reference's output shape, and the tolerance check rejects an
output one rounding step outside its bound. So a GPU session only has to run them."""

from __future__ import annotations

import pytest
import torch

from deployconv.plugins.probe import run_probe
from tests.gpu import plugin_enqueue_harness as harness


@pytest.fixture
def on_cpu(monkeypatch):
    monkeypatch.setattr(harness, "DEVICE", "cpu")


@pytest.mark.slow
@pytest.mark.trt
def test_every_case_is_accepted_and_shaped_like_the_reference(trt_builds, on_cpu):
    """Against the newest header set only: the cases do not depend on the headers (the probe tests cover those)."""
    trt_build = list(trt_builds.values())[-1]
    if trt_build.error:
        pytest.fail(trt_build.error)
    for case in harness.cases():
        if "N=8" in case.name:
            continue  # the N=1 case has the same layer; the CPU reference at N=8 only costs time here
        gen = torch.Generator().manual_seed(0)
        inputs, fields, ref, _, _, _ = case.make(torch, torch.float32, gen)
        lines = harness.script(case.plugin, fields, inputs, "float32", tuple(ref.shape))
        created, formats, configured, shapes = run_probe(trt_build.probe, trt_build.library,
                                                         [*lines, "create", "formats", "configure", "shapes"])
        assert created["ok"], (case.name, created)
        assert all(formats["formats"]), (case.name, formats)
        assert (configured["configure"], configured["shape_change"]) == (0, 0), (case.name, configured)
        assert tuple(shapes["dims"]) == tuple(ref.shape), (case.name, shapes)


def test_the_bound_accepts_the_reference_and_rejects_a_wrong_output(on_cpu):
    gen = torch.Generator().manual_seed(1)
    case = next(c for c in harness.cases() if c.plugin == "DeployconvSKA")
    _, _, ref, mag, n_terms, ref_is_fp32 = case.make(torch, torch.float32, gen)
    out = ref.float()
    ok, _, ratio = harness.within_bound(torch, out, ref, mag, n_terms, ref_is_fp32)
    assert ok and ratio <= 1
    bad = out.clone()
    bad.view(-1)[0] += 1e-3 * (1 + abs(float(bad.view(-1)[0])))
    assert not harness.within_bound(torch, bad, ref, mag, n_terms, ref_is_fp32)[0]
    nan = out.clone()
    nan.view(-1)[3] = float("nan")
    assert not harness.within_bound(torch, nan, ref, mag, n_terms, ref_is_fp32)[0]
