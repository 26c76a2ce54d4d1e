"""Strict checkpoint loading: wrappers, prefixes, key reports, safety."""

from __future__ import annotations

import argparse
import os

import pytest
import torch

from deployconv.core.errors import BadInputError
from deployconv.models.checkpoint import load_checkpoint, read_state_dict
from tests.fixtures.tiny_model import build


@pytest.fixture
def sd():
    return build().state_dict()


@pytest.mark.parametrize("wrap", ["raw", "model", "state_dict", "module_prefix", "model_and_args"])
def test_wrappers_and_prefix(tmp_path, sd, wrap):
    src = {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}
    payload = {
        "raw": src,
        "model": {"model": src, "epoch": 3},
        "state_dict": {"state_dict": src},
        "module_prefix": {"model": {f"module.{k}": v for k, v in src.items()}},
        # DeiT-style training scripts (LSNet's) store argparse.Namespace under 'args'
        "model_and_args": {"model": src, "args": argparse.Namespace(lr=0.1)},
    }[wrap]
    path = tmp_path / "ck.pth"
    torch.save(payload, path)
    m = build()
    rep = load_checkpoint(m, path)
    assert all(torch.equal(m.state_dict()[k], src[k]) for k in src)
    assert rep.num_tensors == len(src)
    if wrap == "module_prefix":
        assert rep.stripped_prefix == "module."


def test_key_report_lists_missing_unexpected_and_shapes(tmp_path, sd):
    bad = dict(sd)
    del bad["fc.bias"]
    bad["extra.weight"] = torch.zeros(1)
    bad["conv.weight"] = torch.zeros(3, 3)
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    with pytest.raises(BadInputError) as ei:
        load_checkpoint(build(), path)
    msg = str(ei.value)
    assert "missing keys (1): fc.bias" in msg
    assert "unexpected keys (1): extra.weight" in msg
    assert "shape mismatches (1): conv.weight (3, 3) vs model (16, 4, 3, 3)" in msg
    assert ei.value.exit_code == 2


def test_many_missing_are_counted(tmp_path, sd):
    path = tmp_path / "few.pth"
    torch.save({"fc.weight": sd["fc.weight"]}, path)
    with pytest.raises(BadInputError, match=r"missing keys \(\d+\): .*\(\+\d+ more\)"):
        load_checkpoint(build(), path)


def test_allow_missing_is_explicit_and_reported(tmp_path, sd):
    partial = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    path = tmp_path / "partial.pth"
    torch.save(partial, path)
    with pytest.raises(BadInputError):
        load_checkpoint(build(), path)
    rep = load_checkpoint(build(), path, allow_missing=("fc.*",))
    assert sorted(rep.allowed_missing) == ["fc.bias", "fc.weight"]


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_weights_only_refuses_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "x": Evil()}, path)
    with pytest.raises(BadInputError, match="weights_only"):
        read_state_dict(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_corrupt_and_missing_files(tmp_path, content):
    path = tmp_path / "c.pth"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match="cannot read checkpoint"):
        read_state_dict(path)
    with pytest.raises(BadInputError, match="not found"):
        read_state_dict(tmp_path / "nope.pth")


def test_non_state_dict_payload(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(BadInputError, match="holds no state dict"):
        read_state_dict(path)


def test_missing_bn_counters_are_tolerated(tmp_path, sd):
    path = tmp_path / "old.pth"
    torch.save({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, path)
    m = build()
    load_checkpoint(m, path)
    assert all(torch.equal(m.state_dict()[k], v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))


def test_optional_keys_name_the_exact_flag(tmp_path, sd):
    path = tmp_path / "nofc.pth"
    torch.save({k: v for k, v in sd.items() if not k.startswith("fc.")}, path)
    with pytest.raises(BadInputError, match=r"pass --allow-missing 'fc\.\*'"):
        load_checkpoint(build(), path, optional_keys=("fc.*",))
