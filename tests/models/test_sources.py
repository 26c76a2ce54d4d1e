"""User model sources: file.py:factory and package.module:factory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deployconv.core.errors import BadInputError
from deployconv.models import create_model

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_model.py"


def test_file_source_and_module_source_agree():
    a = create_model(f"{FIXTURE}:build")
    b = create_model("tests.fixtures.tiny_model:build", num_classes=10)
    assert not a.training and not b.training
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(a(x), b(x))
    assert a.deployconv_name.endswith("tiny_model.py:build")


@pytest.mark.parametrize("source,match", [
    ("nope/missing.py:build", "not found"),
    (f"{FIXTURE}:nothing", "has no attribute 'nothing'"),
    (f"{FIXTURE}:not_a_module", "not a torch.nn.Module"),
    ("no_such_pkg_xyz.mod:build", "cannot import module"),
    ("lsnet_tt", "unknown model"),
])
def test_bad_sources(source, match):
    with pytest.raises(BadInputError, match=match):
        create_model(source)
