"""reference.npz is read by one function (deployconv.core.reference.load_reference), strictly: a reference crosses
the trust boundary with a bundle, so a malformed one is a BadInputError naming the array, in both layouts."""

from __future__ import annotations

import numpy as np
import pytest

from deployconv.core.errors import BadInputError
from deployconv.core.reference import RefPoint, load_reference, save_reference

X = np.ones((2, 3), np.float32)


@pytest.mark.parametrize(("arrays", "words"), [
    ({"input": X}, "has no expected"),
    ({"input": X, "expected": X.astype(np.int32)}, "not a float type"),
    ({"input": X, "expected": X[:1]}, "disagree on the number of samples"),
    ({"input": X, "expected": X * np.nan}, "NaN or Inf"),
    ({"input": X[:0], "expected": X[:0]}, "no samples"),
    ({"input": np.array([{"a": 1}], dtype=object), "expected": X}, "without running code"),
    ({"opt/input/a": X, "opt/input/b": X[:1], "opt/expected/y": X}, "disagree on the number of samples"),
    ({"min/input/a": X, "min/expected/y": X * np.inf}, "NaN or Inf"),
])
def test_malformed_references_are_bad_input(tmp_path, arrays, words):
    path = tmp_path / "reference.npz"
    np.savez(path, **arrays)  # an object array is written as a pickle
    with pytest.raises(BadInputError, match=words):
        load_reference(path)


def test_not_an_npz_and_shapes_against_the_manifest(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(BadInputError, match=r"malformed|not a valid \.npz"):
        load_reference(tmp_path / "bad.npz")
    save_reference(tmp_path / "r.npz", [RefPoint("opt", {"input": X}, {"output": X}, {"output": X.astype(float)})])
    io = {"inputs": [{"name": "input", "shape": ["batch", 4]}], "outputs": [{"name": "output", "shape": ["b", 3]}]}
    with pytest.raises(BadInputError, match="the model takes input of shape"):
        load_reference(tmp_path / "r.npz", io=io)
    (point,) = load_reference(tmp_path / "r.npz", io={**io, "inputs": [{"name": "input", "shape": ["batch", 3]}]})
    assert point.batch().shape == (2, 3) and point.expected_batch().dtype == np.float64
