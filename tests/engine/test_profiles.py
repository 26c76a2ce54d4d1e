"""Optimization profiles: the batch range on dynamic batch dims (shared symbols included), static dims kept,
explicit shapes checked against the model, static engines (DLA, static targets) with min = opt = max, and the
errors that say what to give."""

from __future__ import annotations

import pytest

from deployconv.core.errors import BadInputError
from deployconv.engine.onnx_facts import facts_from_model
from deployconv.engine.profiles import make_profile
from deployconv.engine.spec import EngineSpec
from tests.engine.graphs import conv_net, two_batched_inputs
from tests.runtime import tiny_classifier


def profile_of(model, **spec):
    return make_profile(facts_from_model(model), EngineSpec("t", **spec))


def test_default_batch_policy_is_1_1_16():
    p = profile_of(conv_net())
    assert p.batch == (1, 1, 16) and p.needed and not p.static
    x = p["x"]
    assert (x.min, x.opt, x.max, x.dynamic) == ((1, 3, 8, 8), (1, 3, 8, 8), (16, 3, 8, 8), True)


@pytest.mark.parametrize("given, expected", [
    ({"min_batch": 2, "opt_batch": 8, "max_batch": 64}, (2, 8, 64)),
    ({"max_batch": 4}, (1, 1, 4)),
    ({"opt_batch": 8}, (1, 8, 16)),
    ({"opt_batch": 32}, (1, 32, 32)),
    ({"min_batch": 4}, (4, 4, 16)),
    ({"min_batch": 32}, (32, 32, 32)),
])
def test_batch_range_defaults_fill_around_what_is_given(given, expected):
    assert profile_of(conv_net(), **given).batch == expected


def test_one_batch_symbol_batches_every_input_that_carries_it():
    p = profile_of(two_batched_inputs(), max_batch=8)
    assert p["a"].max == (8, 4) and p["idx"].max == (8,)
    assert p["table"].min == p["table"].max == (5, 4) and not p["table"].dynamic
    assert [r.name for r in p.dynamic_inputs()] == ["a", "idx"]


def test_static_model_needs_no_profile():
    p = profile_of(tiny_classifier(batch=1))
    assert p.batch is None and not p.needed and p.static and p["x"].min == (1, 3, 8, 8)


def test_static_model_rejects_a_batch_to_run_at():
    with pytest.raises(BadInputError) as e:
        profile_of(tiny_classifier(batch=1), opt_batch=8)
    assert "static batch of 1" in e.value.what and "dynamic batch" in e.value.fix


def test_static_model_notes_a_max_batch_that_cannot_apply():
    p = profile_of(tiny_classifier(batch=2), max_batch=32)
    assert p.batch is None and p["x"].max == (2, 3, 8, 8)
    assert any("max batch 32 does not apply" in n for n in p.notes)
    assert profile_of(tiny_classifier(batch=2), opt_batch=2).notes == ()


def test_dynamic_hw_without_shapes_asks_for_them():
    with pytest.raises(BadInputError) as e:
        profile_of(conv_net(hw=("H", None)))
    err = e.value
    assert "dynamic dims besides the batch" in err.what
    assert err.details == ["x: float32[batch, 3, H, ?]: dynamic dim(s) 2 ('H'), 3"]
    assert "shapes={'x': (min, opt, max)}" in err.fix


def test_dynamic_hw_with_shapes():
    shapes = {"x": ((1, 3, 224, 224), (4, 3, 256, 256), (8, 3, 512, 512))}
    p = profile_of(conv_net(hw=("H", "W")), shapes=shapes)
    assert (p["x"].min, p["x"].opt, p["x"].max) == shapes["x"]
    assert p.batch == (1, 1, 16)  # the batch policy still stands for other inputs


@pytest.mark.parametrize("shapes, needle", [
    ({"x": (1, 3, 8)}, "rank 3, the model's input has rank 4"),
    ({"x": ((1, 3, 8, 8), (1, 4, 8, 8), (1, 4, 8, 8))}, "changes static dims of the model: dim 1 is static 3"),
    ({"y": (1, 3, 8, 8)}, "unknown input(s) 'y'"),
])
def test_bad_shapes_are_bad_input(shapes, needle):
    with pytest.raises(BadInputError) as e:
        profile_of(conv_net(), shapes=shapes)
    assert needle in e.value.what


def test_dla_profile_is_static_from_one_batch():
    p = profile_of(conv_net(), precision="fp16", dla_core=0, opt_batch=2)
    assert p.static and p.batch == (2, 2, 2) and p["x"].min == p["x"].max == (2, 3, 8, 8)
    assert p.needed  # the model is dynamic, so TensorRT still needs the (static) profile entry
    assert profile_of(conv_net(), precision="fp16", dla_core=0).batch == (1, 1, 1)


def test_dla_refuses_a_batch_range():
    with pytest.raises(BadInputError) as e:
        profile_of(conv_net(), precision="fp16", dla_core=0, opt_batch=1, max_batch=8)
    assert "DLA runs static shapes only" in e.value.why


def test_dla_refuses_a_shape_range():
    shapes = {"x": ((1, 3, 224, 224), (1, 3, 224, 224), (1, 3, 512, 512))}
    with pytest.raises(BadInputError) as e:
        profile_of(conv_net(hw=("H", "W")), precision="fp16", dla_core=0, shapes=shapes)
    assert "needs min = opt = max" in e.value.what and "DLA" in e.value.why
    p = profile_of(conv_net(hw=("H", "W")), precision="fp16", dla_core=0, shapes={"x": (1, 3, 224, 224)})
    assert p.static


def test_static_target_uses_its_batch():
    p = profile_of(conv_net(), dynamic_batch=False, opt_batch=4)
    assert p.batch == (4, 4, 4) and p.static
    with pytest.raises(BadInputError) as e:
        profile_of(conv_net(), dynamic_batch=False, opt_batch=4, max_batch=8)
    assert "dynamic_batch=False" in e.value.why


def test_unknown_rank_input_needs_shapes():
    model = conv_net()
    model.graph.input[0].type.tensor_type.ClearField("shape")
    with pytest.raises(BadInputError, match="unknown rank"):
        profile_of(model)
    assert profile_of(model, shapes={"x": (2, 3, 8, 8)})["x"].min == (2, 3, 8, 8)


def test_to_dict():
    d = profile_of(conv_net(), max_batch=4).to_dict()
    assert d == {"batch": [1, 1, 4], "notes": [],
                 "inputs": {"x": {"min": [1, 3, 8, 8], "opt": [1, 3, 8, 8], "max": [4, 3, 8, 8], "dynamic": True}}}
