"""The seeded-weights recipe shared by the golden generator and the golden tests.

A value depends only on (seed, key name, shape, dtype): `numpy.random.default_rng(seed ^ crc32(key))` draws it,
so the order of keys never matters and an official model and our zoo model that share a key layout get
bit-identical weights. Integer tensors (`attention_bias_idxs`, `num_batches_tracked`) are copied from the
template, so the model under test supplies its OWN integer buffers and the golden state-dict hash catches any
difference from the official ones.

Scales are chosen so that every branch matters (normalisation statistics away from 0/1, non-zero layer scale
and GRN terms) while activations stay of order 1 through deep stacks and the logits have a std of about 0.3..3.
Only numpy and torch are needed; bump RECIPE_VERSION whenever a value changes (the goldens record it).
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import zlib

import numpy as np
import torch

RECIPE_VERSION = 1

# A rule is (kind, a, b): ("uniform", lo, hi), ("normal", std, 0) or ("fan_in", gain, 0), the last meaning
# normal * gain / sqrt(fan_in) with fan_in = prod(shape[1:]).
Rule = tuple[str, float, float]

# Overrides, first match wins (fnmatch on the full key). Without them, multi-branch blocks and residual
# branches multiply the activation variance at every block (x1.6 per RepVGG block, x100 per LSNet block pair)
# because random weights have no trained statistics to tame them. Each pattern names a normalisation that
# closes a branch (several of them are zero-initialised in the official code for the same reason) and gives
# it a smaller, still clearly non-trivial scale.
OVERRIDES: tuple[tuple[str, Rule], ...] = (
    # RepVGG: three summed branches then ReLU -> keep the pre-activation variance about 2x the input's.
    ("*.rbr_dense.bn.weight", ("uniform", 0.4, 0.9)),
    ("*.rbr_1x1.bn.weight", ("uniform", 0.4, 0.9)),
    ("*.rbr_identity.weight", ("uniform", 0.4, 0.9)),
    # LSNet: RepVGGDW (3x3 + 1x1 + identity), the FFN and attention residual branches, LSConv's BN after SKA.
    ("blocks*.mixer.conv.bn.weight", ("uniform", 0.2, 0.6)),
    ("blocks*.mixer.conv1.bn.weight", ("uniform", 0.2, 0.6)),
    ("blocks*.ffn.m.pw2.bn.weight", ("uniform", 0.2, 0.6)),
    ("blocks*.mixer.m.proj.1.bn.weight", ("uniform", 0.2, 0.6)),
    ("blocks*.mixer.bn.weight", ("uniform", 0.1, 0.3)),
)

DEFAULT_WEIGHT_GAIN = 1.0
BIAS_STD = 0.1
SCALE_STD = 0.2
OTHER_STD = 0.1


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng((int(seed) ^ zlib.crc32(key.encode("utf-8"))) & 0xFFFFFFFF)


def rule_for(key: str, shape: tuple[int, ...]) -> Rule:
    """The rule that produces a float tensor's values from its key name and shape."""
    for pattern, rule in OVERRIDES:
        if fnmatch.fnmatchcase(key, pattern):
            return rule
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return ("uniform", 0.5, 1.5)
    if leaf == "running_mean":
        return ("normal", BIAS_STD, 0.0)
    if leaf == "attention_biases":
        return ("normal", SCALE_STD, 0.0)
    if leaf in ("gamma", "beta"):  # layer scale (UniRepLKNet `gamma`, (C,)), GRN gamma/beta ((1,1,1,C))
        return ("normal", SCALE_STD, 0.0)
    if leaf == "weight" and len(shape) >= 2:  # conv / linear
        return ("fan_in", DEFAULT_WEIGHT_GAIN, 0.0)
    if leaf == "weight":  # 1-D: BatchNorm / GroupNorm / LayerNorm affine weight
        return ("uniform", 0.5, 1.5)
    if leaf == "bias":
        return ("normal", BIAS_STD, 0.0)
    return ("normal", OTHER_STD, 0.0)


def _values(key: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = _rng(seed, key)
    kind, a, b = rule_for(key, shape)
    if kind == "uniform":
        return rng.uniform(a, b, size=shape)
    v = rng.standard_normal(size=shape)
    if kind == "fan_in":
        return v * (a / math.sqrt(max(1, math.prod(shape[1:]))))
    return v * a


def seeded_state_dict(template: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Deterministic values for every key of `template` (a state dict); integer/bool tensors are copied."""
    out: dict[str, torch.Tensor] = {}
    for key, t in template.items():
        if not t.is_floating_point():
            out[key] = t.detach().clone()
            continue
        shape = tuple(t.shape)
        out[key] = torch.from_numpy(np.ascontiguousarray(_values(key, shape, seed))).to(t.dtype)
    return out


def seeded_input(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """A float32 input batch drawn from numpy default_rng(seed) standard normal."""
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(size=tuple(shape)).astype(np.float32))


def _tensor_bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().numpy().tobytes()


def _header(key: str, t: torch.Tensor) -> bytes:
    return f"{key}|{str(t.dtype).removeprefix('torch.')}|{list(t.shape)}\n".encode()


def state_dict_sha256(sd: dict[str, torch.Tensor]) -> str:
    """sha256 over `key|dtype|shape` headers and raw bytes, in sorted-key order (layout + values)."""
    h = hashlib.sha256()
    for key in sorted(sd):
        h.update(_header(key, sd[key]))
        h.update(_tensor_bytes(sd[key]))
    return h.hexdigest()


def integer_buffers_sha256(sd: dict[str, torch.Tensor]) -> dict[str, str]:
    """Per-key sha256 of the integer tables (e.g. `attention_bias_idxs`), to name the one that differs.
    `num_batches_tracked` counters are left to the whole-dict hash (there are hundreds, all alike)."""
    return {
        key: hashlib.sha256(_header("", t) + _tensor_bytes(t)).hexdigest()
        for key, t in sorted(sd.items())
        if not t.is_floating_point() and not key.endswith("num_batches_tracked")
    }


def _layout_entry(key: str, t: torch.Tensor) -> str:
    dtype = "" if t.dtype == torch.float32 else str(t.dtype).removeprefix("torch.")
    return f"{key} {dtype}{list(t.shape)}".replace(", ", ",")


def layout(sd: dict[str, torch.Tensor]) -> list[str]:
    """`"key [shape]"` (dtype written when not float32), sorted by key: names key/shape differences."""
    return [_layout_entry(key, sd[key]) for key in sorted(sd)]
