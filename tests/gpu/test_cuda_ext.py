"""deployconv.plugins.cuda_ext without a GPU: what it decides (sources, cache key, missing-environment reasons)
and that it refuses clearly: CPU tensors are a BadInputError, a machine without CUDA a MissingEnvironmentError
that says what is missing. These run everywhere (no `gpu` marker)."""

from __future__ import annotations

import pytest
import torch

from deployconv.errors import BadInputError, MissingEnvironmentError
from deployconv.plugins import cuda_ext


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
