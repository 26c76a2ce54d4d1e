"""Precision plans per TensorRT major x target precision x what the ONNX carries (plain fp32, fp16, bf16,
explicit Q/DQ), written out as a table; policies (always / never), DLA, TensorRT 8.5; the error texts say
what to export instead."""

from __future__ import annotations

import pytest

from deployconv.core.errors import EXIT_BAD_INPUT, EXIT_MISSING_ENV, BadInputError, MissingEnvironmentError
from deployconv.engine.onnx_facts import facts_from_model
from deployconv.engine.precision import choose_precision
from tests.engine import error_of
from tests.engine.graphs import conv_net

FACTS = {form: facts_from_model(conv_net(form)) for form in ("fp32", "fp16", "bf16", "int8")}
ERR = "error"

# (trt major, target precision, ONNX form) -> (strongly typed, builder flags) or ERR
EXPECTED = {
    (10, "fp32", "fp32"): (False, ()), (10, "fp32", "fp16"): (True, ()), (10, "fp32", "bf16"): (True, ()),
    (10, "fp32", "int8"): (True, ()),
    (10, "fp16", "fp32"): (False, ("FP16",)), (10, "fp16", "fp16"): (True, ()),
    (10, "fp16", "bf16"): (False, ("FP16", "BF16")), (10, "fp16", "int8"): (False, ("FP16", "INT8")),
    (10, "int8", "fp32"): ERR, (10, "int8", "fp16"): ERR, (10, "int8", "bf16"): ERR, (10, "int8", "int8"): (True, ()),
    (10, "bf16", "fp32"): (False, ("BF16",)), (10, "bf16", "fp16"): (False, ("FP16", "BF16")),
    (10, "bf16", "bf16"): (True, ()), (10, "bf16", "int8"): (False, ("BF16", "INT8")),
    (11, "fp32", "fp32"): (True, ()), (11, "fp32", "fp16"): (True, ()), (11, "fp32", "bf16"): (True, ()),
    (11, "fp32", "int8"): (True, ()),
    (11, "fp16", "fp32"): ERR, (11, "fp16", "fp16"): (True, ()), (11, "fp16", "bf16"): ERR, (11, "fp16", "int8"): ERR,
    (11, "int8", "fp32"): ERR, (11, "int8", "fp16"): ERR, (11, "int8", "bf16"): ERR, (11, "int8", "int8"): (True, ()),
    (11, "bf16", "fp32"): ERR, (11, "bf16", "fp16"): ERR, (11, "bf16", "bf16"): (True, ()), (11, "bf16", "int8"): ERR,
}


@pytest.mark.parametrize("major, precision, form", sorted(EXPECTED))
def test_precision_matrix(major, precision, form):
    expected = EXPECTED[(major, precision, form)]
    if expected == ERR:
        with pytest.raises(BadInputError) as e:
            choose_precision(precision, major, FACTS[form])
        assert e.value.exit_code == EXIT_BAD_INPUT
        assert f"onnx-{precision}" in e.value.fix  # what to export instead
        return
    plan = choose_precision(precision, major, FACTS[form])
    assert (plan.strongly_typed, plan.builder_flags) == expected
    assert plan.precision == precision and plan.trt_major == major
    assert plan.onnx_carries == (() if form == "fp32" else (form,))


def test_trt11_plain_fp32_error_says_what_why_fix():
    err = error_of(BadInputError, choose_precision, "fp16", 11, FACTS["fp32"])
    assert "an fp16 engine on TensorRT 11 needs an fp16 ONNX" in err.what and "plain fp32" in err.what
    assert "always strongly typed" in err.why and "float16 tensors" in err.why
    assert "--target onnx-fp16" in err.fix and "fp32" in err.fix


def test_int8_without_qdq_never_calibrates():
    for major in (10, 11):
        err = error_of(BadInputError, choose_precision, "int8", major, FACTS["fp32"])
        assert "explicit Q/DQ" in err.what and "no calibrator" in err.why and "onnx-int8" in err.fix


def test_extra_carried_precision_is_noted():
    plan = choose_precision("fp32", 11, FACTS["fp16"])
    assert any("also carries fp16" in n for n in plan.notes)
    assert choose_precision("fp16", 11, FACTS["fp16"]).notes == ()


@pytest.mark.parametrize("form, expected", [("fp32", ERR), ("fp16", (True, ())), ("int8", ERR)])
def test_trt10_always_strongly_typed_needs_the_precision_in_the_onnx(form, expected):
    if expected == ERR:
        with pytest.raises(BadInputError, match=r"needs an fp16 ONNX|explicit Q/DQ"):
            choose_precision("fp16", 10, FACTS[form], strongly_typed="always")
    else:
        plan = choose_precision("fp16", 10, FACTS[form], strongly_typed="always")
        assert (plan.strongly_typed, plan.builder_flags) == expected
    plan = choose_precision("fp32", 10, FACTS["fp32"], strongly_typed="always")
    assert plan.strongly_typed and plan.builder_flags == ()


def test_trt10_never_uses_flags_even_for_carried_precision():
    plan = choose_precision("fp16", 10, FACTS["fp16"], strongly_typed="never")
    assert (plan.strongly_typed, plan.builder_flags) == (False, ("FP16",))
    plan = choose_precision("int8", 10, FACTS["int8"], strongly_typed="never")
    assert (plan.strongly_typed, plan.builder_flags) == (False, ("INT8",))


def test_trt11_cannot_be_weakly_typed():
    with pytest.raises(BadInputError, match="impossible on TensorRT 11"):
        choose_precision("fp32", 11, FACTS["fp32"], strongly_typed="never")


@pytest.mark.parametrize("precision, form, flags", [("fp16", "fp32", ("FP16",)), ("fp16", "fp16", ("FP16",)),
                                                    ("int8", "int8", ("FP16", "INT8"))])
def test_dla_on_trt10_uses_flags(precision, form, flags):
    plan = choose_precision(precision, 10, FACTS[form], dla=True)
    assert (plan.strongly_typed, plan.builder_flags) == (False, flags)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_dla_runs_fp16_and_int8_only(precision):
    with pytest.raises(BadInputError, match="DLA runs fp16 and int8 only"):
        choose_precision(precision, 10, FACTS["fp32"], dla=True)


def test_dla_policies():
    with pytest.raises(BadInputError, match="DLA on TensorRT 10 is built with the FP16/INT8 builder flags"):
        choose_precision("fp16", 10, FACTS["fp16"], strongly_typed="always", dla=True)
    with pytest.raises(BadInputError, match="needs an fp16 ONNX"):
        choose_precision("fp16", 11, FACTS["fp32"], dla=True)
    plan = choose_precision("fp16", 11, FACTS["fp16"], dla=True)
    assert plan.strongly_typed and any("DLA on TensorRT 11" in n for n in plan.notes)


def test_trt8_is_weakly_typed_without_bf16():
    plan = choose_precision("fp16", 8, FACTS["fp32"])
    assert (plan.strongly_typed, plan.builder_flags) == (False, ("FP16",))
    assert choose_precision("int8", 8, FACTS["int8"]).builder_flags == ("INT8",)
    err = error_of(MissingEnvironmentError, choose_precision, "bf16", 8, FACTS["fp32"])
    assert err.exit_code == EXIT_MISSING_ENV and "bf16 needs TensorRT 10" in err.what
    with pytest.raises(BadInputError, match="strongly_typed='always' on TensorRT 8"):
        choose_precision("fp32", 8, FACTS["fp32"], strongly_typed="always")
