"""The TensorRT plugins enqueued on a real GPU through plugin_probe (no TensorRT needed) and compared with the PyTorch
references, fp32 and fp16, zoo shapes at batch 1 and 8 plus odd sizes; the cases, the call order and the tolerance
derivation are in tests/gpu/plugin_enqueue_harness.py (also a CLI: python -m tests.gpu.plugin_enqueue_harness)."""

from __future__ import annotations

import os

import pytest
import torch

from tests.gpu import plugin_enqueue_harness as harness

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is "
                                                                 "False)"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from deployconv.plugins.trt_headers import find_headers, missing_reason

    if find_headers(os.environ) is None:
        pytest.skip(missing_reason(os.environ))
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    major, minor = torch.cuda.get_device_capability()
    work = tmp_path_factory.mktemp("enqueue")
    try:
        _, lib, probe = harness.build(work, major * 10 + minor)
    except harness.Unavailable as e:
        pytest.skip(f"cannot build the plugin library and probe here: {e}")
    return lib, probe, work


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("case", harness.cases(), ids=lambda c: c.name)
def test_plugin_output_matches_reference(built, case, dtype):
    lib, probe, work = built
    result = harness.run_case(torch, case, dtype, lib, probe, work)
    assert result.error is None, result.error
    assert result.ok, (f"{case.name} {dtype}: max |err| {result.max_abs_err:.3g}, worst err/bound "
                       f"{result.worst_err_over_bound:.3g}")
