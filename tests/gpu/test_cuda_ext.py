"""deployconv.ops.cuda_ext without a GPU: what it decides (sources, cache key, missing-environment reasons)
and that it refuses clearly: CPU tensors are a BadInputError, a machine without CUDA a MissingEnvironmentError
that says what is missing. These run everywhere (no `gpu` marker)."""

from __future__ import annotations

import pytest
import torch

from deployconv.core.errors import BadInputError, MissingEnvironmentError
from deployconv.ops import cuda_ext


def test_sources_are_every_kernel_and_the_binding():
    names = [p.name for p in cuda_ext.extension_sources()]
    assert {"ska.cu", "deform_conv.cu", "dcnv4.cu", "dwconv.cu", "deployconv_ext.cpp"} <= set(names)
    hashed = {p.name for p in cuda_ext.hashed_files()}
    assert {"deployconv_kernels.h", "common.cuh"} <= hashed


def test_source_hash_follows_content_and_salt(tmp_path):
    a, b = tmp_path / "a.cu", tmp_path / "b.h"
    a.write_text("kernel v1")
    b.write_text("header")
    h1 = cuda_ext.source_hash([a, b], "torch=2.5")
    assert h1 == cuda_ext.source_hash([b, a], "torch=2.5")  # order-independent
    assert h1 != cuda_ext.source_hash([a, b], "torch=2.6")  # a torch upgrade rebuilds
    a.write_text("kernel v2")
    assert h1 != cuda_ext.source_hash([a, b], "torch=2.5")  # an edit rebuilds
    assert len(h1) == 16


def test_build_directory_is_under_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DEPLOYCONV_CACHE", str(tmp_path))
    name, d = cuda_ext.build_directory()
    assert d.parent == tmp_path / "torch_ext" and name.endswith(d.name)


@pytest.mark.parametrize("args, expected", [
    (("12.4", True, "/usr/local/cuda", True), []),
    ((None, False, None, True), ["no CUDA support"]),
    (("12.4", False, "/usr/local/cuda", True), ["no CUDA device"]),
    (("12.4", True, None, True), ["no CUDA toolkit"]),
    (("12.4", True, "/usr/local/cuda", False), ["native sources"]),
])
def test_missing_requirements_name_each_gap(args, expected):
    got = cuda_ext.missing_requirements(*args)
    assert len(got) == len(expected)
    for reason, word in zip(got, expected):
        assert word in reason


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_load_extension_without_cuda_is_a_missing_environment():
    with pytest.raises(MissingEnvironmentError, match="cannot build the deployconv CUDA kernels") as e:
        cuda_ext.load_extension()
    assert e.value.exit_code == 3 and e.value.details


def test_wrappers_refuse_cpu_tensors_before_building():
    x = torch.randn(1, 8, 5, 5)
    with pytest.raises(BadInputError, match="cpu"):
        cuda_ext.ska(x, torch.randn(1, 1, 9, 5, 5))
    with pytest.raises(BadInputError, match="cpu"):
        cuda_ext.dwconv2d(x, torch.randn(8, 1, 3, 3))
    with pytest.raises(BadInputError, match="cpu"):
        cuda_ext.deform_conv2d(x, torch.zeros(1, 18, 5, 5), torch.randn(4, 8, 3, 3), padding=1)
    with pytest.raises(BadInputError, match="cpu"):
        cuda_ext.dcnv4(torch.randn(1, 5, 5, 16), torch.zeros(1, 5, 5, 32), 3, 3, 1, 1, 1, 1, 1, 1, 1, 16, 1.0, 0)


def test_dwconv_wrapper_checks_its_own_arguments():
    x = torch.randn(1, 8, 5, 5)
    with pytest.raises(BadInputError, match="stride"):
        cuda_ext.dwconv2d(x, torch.randn(8, 1, 3, 3), stride=3)
    with pytest.raises(BadInputError, match="weight"):
        cuda_ext.dwconv2d(x, torch.randn(8, 2, 3, 3))
    with pytest.raises(BadInputError, match="empty"):
        cuda_ext.dwconv2d(x, torch.randn(8, 1, 7, 7), padding=0)


# --- deployconv.ops.cuda_swap without a GPU -------------------------------------------------------------------


@pytest.fixture(scope="module")
def twice_op():
    """A throwaway custom op (reference: 2x) to exercise the swap on CPU, leaving deployconv's ops alone."""

    @torch.library.custom_op("deployconv_swap_test::twice", mutates_args=())
    def twice(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    return torch.ops.deployconv_swap_test.twice


def test_kernel_swap_switches_only_inside_the_block_and_only_for_supported_inputs(twice_op):
    from deployconv.ops.cuda_swap import KernelSwap, enabled

    swap = KernelSwap("deployconv_swap_test::twice", "cpu", lambda x: x * 3, lambda x: x * 2,
                      lambda x: x.dtype == torch.float32)
    x = torch.ones(3)
    assert torch.equal(twice_op(x), x * 2)
    with enabled([swap]):
        assert torch.equal(twice_op(x), x * 3)
        with enabled([swap]):  # nesting keeps it on until the outer block ends
            pass
        assert torch.equal(twice_op(x), x * 3)
        assert torch.equal(twice_op(x.double()), x.double() * 2)  # unsupported: the reference
    assert torch.equal(twice_op(x), x * 2) and swap.active == 0 and swap.registered
    with enabled([swap]):  # registering again is a no-op, the switch still works
        assert torch.equal(twice_op(x), x * 3)


def test_op_swaps_cover_deployconvs_ops_and_leave_cpu_calls_alone():
    from deployconv.ops.cuda_swap import SWAPPABLE_OPS, cuda_kernels, op_swaps
    from deployconv.ops.ska import ska as ska_ref

    assert [s.qualname for s in op_swaps()] == [f"deployconv::{o}" for o in SWAPPABLE_OPS]
    with pytest.raises(ValueError, match="no CUDA kernel swap"):
        op_swaps(("conv2d",))
    x, w = torch.randn(1, 8, 5, 5), torch.randn(1, 1, 9, 5, 5)
    with cuda_kernels():  # registers CUDA kernels; CPU tensors still take the reference
        assert torch.equal(torch.ops.deployconv.ska(x, w), ska_ref(x, w))


@pytest.mark.parametrize("conv, reason", [
    (torch.nn.Conv2d(8, 8, 7, padding=3, groups=8), None),
    (torch.nn.Conv2d(8, 8, 13, stride=2, padding=6, groups=8), None),
    (torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), "threshold"),
    (torch.nn.Conv2d(8, 16, 7, padding=3, groups=8), "not depthwise"),
    (torch.nn.Conv2d(8, 8, 7, padding=3, groups=4), "not depthwise"),
    (torch.nn.Conv2d(8, 8, (7, 5), padding=3, groups=8), "not square"),
    (torch.nn.Conv2d(8, 8, 7, stride=3, padding=3, groups=8), "stride"),
    (torch.nn.Conv2d(8, 8, 7, padding=3, dilation=2, groups=8), "dilation"),
    (torch.nn.Conv2d(8, 8, 7, padding="same", groups=8), "padding"),
    (torch.nn.Conv2d(8, 8, 7, padding=(3, 2), groups=8), "padding"),
    (torch.nn.Conv2d(8, 8, 7, padding=3, groups=8, padding_mode="reflect"), "padding_mode"),
    (torch.nn.Linear(3, 3), "not an nn.Conv2d"),
])
def test_depthwise_swap_reason(conv, reason):
    from deployconv.ops.cuda_swap import depthwise_swap_reason

    got = depthwise_swap_reason(conv)
    assert got is None if reason is None else reason in got


def test_swap_depthwise_passes_stride_and_padding_to_the_kernel():
    """With F.conv2d standing in for the CUDA kernel the swapped model computes what the original did."""
    import torch.nn.functional as F

    from deployconv.ops.cuda_swap import swap_depthwise

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 7, padding=3, groups=4),
                              torch.nn.Sequential(torch.nn.Conv2d(4, 4, 9, stride=2, padding=4, groups=4, bias=False)),
                              torch.nn.Conv2d(4, 8, 1)).eval()
    calls = []

    def kernel(x, w, b, stride, pad):
        calls.append((tuple(w.shape), stride, pad))
        return F.conv2d(x, w, b, stride, pad, 1, x.shape[1])

    swapped, paths = swap_depthwise(net, kernel=kernel)
    assert paths == ["0", "1.0"] and type(net[0]) is torch.nn.Conv2d  # the original is untouched
    x = torch.randn(2, 4, 15, 13)
    with torch.no_grad():
        assert torch.equal(swapped(x), net(x))
    assert calls == [((4, 1, 7, 7), 1, 3), ((4, 1, 9, 9), 2, 4)]
