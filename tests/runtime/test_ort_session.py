"""runtime.ort.ort_session, the one ONNX Runtime session loader: the same options for runners, the fp16/int8
sensitivity scans, the precision search and bisection (those three used to build their own sessions, with
ORT's default thread count and, for bisection, ORT's warnings on)."""

from __future__ import annotations

import numpy as np
import pytest

from deployconv.core.env import available_cpus
from deployconv.core.errors import BadInputError
from deployconv.runtime.ort import ort_session
from tests.runtime import save, tiny_classifier


def test_path_and_bytes_load_alike_under_the_fixed_options(tmp_path):
    path = save(tiny_classifier(), tmp_path / "tiny.onnx")
    by_path, by_bytes = ort_session(path, threads=1), ort_session(path.read_bytes())
    so = by_bytes.get_session_options()
    assert so.intra_op_num_threads == available_cpus() and so.inter_op_num_threads == 1
    assert so.log_severity_level == 3 and by_path.get_session_options().intra_op_num_threads == 1
    assert by_bytes.get_providers() == ["CPUExecutionProvider"]
    name = by_path.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal(tuple(d if isinstance(d, int) else 1 for d in
                                                       by_path.get_inputs()[0].shape)).astype(np.float32)
    np.testing.assert_array_equal(by_path.run(None, {name: x})[0], by_bytes.run(None, {name: x})[0])


def test_bad_models_and_options_are_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="not a readable ONNX model"):
        ort_session(b"not a model")
    path = save(tiny_classifier(), tmp_path / "tiny.onnx")
    with pytest.raises(BadInputError, match="unknown graph optimization"):
        ort_session(path, optimization="max")
    with pytest.raises(BadInputError, match="threads"):
        ort_session(path, threads=0)
    ort_session(path, optimization="disabled")  # every documented level opens
