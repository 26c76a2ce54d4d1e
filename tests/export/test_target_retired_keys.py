"""`benchmark_runtime` is retired: it was set in the built-in TensorRT target files and read nowhere (the runtime a
target is timed and validated on is its `runtime`). Exports made before still load; a typo is still an error."""

from __future__ import annotations

from dataclasses import fields

import pytest

from deployconv.core.errors import BadInputError
from deployconv.core.target import TARGET_DIR, Target, get_target, target_from_dict


def test_benchmark_runtime_is_gone_from_the_schema_and_the_files():
    assert "benchmark_runtime" not in {f.name for f in fields(Target)}
    assert not [p.name for p in TARGET_DIR.glob("*.toml") if "benchmark_runtime" in p.read_text()]


def test_a_manifest_target_spec_written_before_still_loads():
    old = {**get_target("trt-fp16").to_dict(), "benchmark_runtime": "tensorrt"}  # what exports recorded before
    assert target_from_dict(old, "an older manifest") == get_target("trt-fp16")
    with pytest.raises(BadInputError, match="unknown key"):
        target_from_dict({**get_target("trt-fp16").to_dict(), "benchmark_runtimes": "tensorrt"}, "a typo")
