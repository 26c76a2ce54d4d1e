"""DLA on TensorRT 11 is strongly typed: no FP16/INT8 builder flags, the ONNX tensor types decide. The DLA fp16
export writes fp16 tensors, and that model.onnx is what the TensorRT 11.4.1 DLA plan builds from."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto

from deployconv.core.errors import BadInputError
from deployconv.engine import engine_spec_for, facts_from_model, make_recipe, read_onnx_facts, trtexec_argv
from deployconv.pipeline.export import ExportOptions, export
from tests.engine.graphs import conv_net

TINY = f"{Path(__file__).parents[1] / 'fixtures' / 'tiny_model.py'}:build"


@pytest.fixture(scope="module", params=["jetson-orin-dla-fp16", "jetson-orin-dla-fp16-trt11"])
def dla_fp16(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dla") / request.param
    res = export(TINY, request.param, out, options=ExportOptions(bench=False))
    assert res.passed, res.report["parity"]
    return out / "model.onnx"


def test_dla_fp16_export_writes_fp16_tensors_that_the_trt11_plan_builds_from(dla_fp16):
    m = onnx.load(str(dla_fp16))
    inits = {t.name: t for t in m.graph.initializer}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    assert convs and all(inits[n.input[1]].data_type == TensorProto.FLOAT16 for n in convs)
    facts = read_onnx_facts(dla_fp16)
    assert "fp16" in facts.carried_precisions
    plan = make_recipe(engine_spec_for("jetson-orin-dla-fp16-trt11"), "11.4.1", facts)
    assert plan.device == "dla" and plan.precision.strongly_typed and "fp16" in plan.precision.onnx_carries
    assert plan.builder_flags == ("GPU_FALLBACK",)  # no FP16 flag: TensorRT 11 has none
    argv = trtexec_argv(plan, "model.onnx")
    assert "--useDLACore=0" in argv and "--allowGPUFallback" in argv
    assert not {"--fp16", "--int8", "--stronglyTyped"} & set(argv)


def test_the_export_without_tensorrt_gives_the_lines_for_its_own_tensorrt(dla_fp16):
    import json

    engine = json.loads((dla_fp16.parent / "report.json").read_text())["engine"]
    assert engine["status"] == "skipped: TensorRT not installed"
    want = "TensorRT 11.x: " if dla_fp16.parent.name.endswith("-trt11") else "TensorRT 10.7: "
    assert len(engine["trtexec"]) == 1 and engine["trtexec"][0].startswith(want), engine["trtexec"]
    assert ("--fp16" in engine["trtexec"][0]) is want.startswith("TensorRT 10")


def test_trt11_dla_refuses_an_fp32_onnx_and_notes_fp32_float_layers_of_int8():
    spec = engine_spec_for("jetson-orin-dla-fp16-trt11")
    with pytest.raises(BadInputError, match="needs an fp16 ONNX"):
        make_recipe(spec, "11.4.1", facts_from_model(conv_net(batch=1)))
    int8 = make_recipe(engine_spec_for("jetson-orin-dla-int8-trt11"), "11.4.1", facts_from_model(conv_net("int8", batch=1)))
    assert int8.precision.strongly_typed and int8.builder_flags == ("GPU_FALLBACK",)
    assert any("DLA has no fp32" in n for n in int8.notes)
