"""The job graph and cell specs: dependencies, what each step consumes, and what a spec may not ask for."""

from __future__ import annotations

import pytest

from deployconv.core.errors import BadInputError
from deployconv.matrix.graph import build_jobs, check_graph, dependents
from deployconv.matrix.spec import (
    HOST,
    JobSpec,
    MatrixSpec,
    parse_devices,
    parse_models,
    parse_steps,
    parse_targets,
    validate_job,
)

RUNTIME = {"onnx": "onnxruntime", "ort-cpu-int8": "onnxruntime", "trt-fp16": "tensorrt"}
ZOO = ["repvgg_a0", "lsnet_t"]


def jobs_of(devices=(HOST,), steps=("export", "validate", "bench", "check", "build-engine"), targets=("onnx",)):
    return {j.id: j for j in build_jobs(MatrixSpec(("repvgg_a0",), targets, devices, steps), RUNTIME)}


def test_host_only_has_no_bundle_and_device_steps_read_the_export():
    jobs = jobs_of()
    assert "repvgg_a0|onnx|*|bundle" not in jobs
    assert "repvgg_a0|onnx|host|build-engine" not in jobs  # onnxruntime target: no engine
    for step in ("validate", "bench", "check"):
        assert jobs[f"repvgg_a0|onnx|host|{step}"].deps == ("repvgg_a0|onnx|*|export",)


def test_device_jobs_wait_for_the_bundle_and_tensorrt_benches_for_the_engine():
    jobs = jobs_of(devices=(HOST, "jetson-orin"), targets=("trt-fp16",))
    bundle = "repvgg_a0|trt-fp16|*|bundle"
    assert jobs[bundle].deps == ("repvgg_a0|trt-fp16|*|export",)
    engine = "repvgg_a0|trt-fp16|jetson-orin|build-engine"
    assert jobs[engine].deps == (bundle,)
    assert jobs[engine].resource == "jetson-orin"
    bench = jobs["repvgg_a0|trt-fp16|jetson-orin|bench"]
    assert bench.deps == (bundle, engine) and bench.soft == (engine,)
    assert jobs["repvgg_a0|trt-fp16|jetson-orin|check"].deps == (bundle,)
    # the host reads the export directly, needs no resource
    assert jobs["repvgg_a0|trt-fp16|host|check"].deps == ("repvgg_a0|trt-fp16|*|export",)
    assert jobs["repvgg_a0|trt-fp16|host|check"].resource is None
    assert jobs["repvgg_a0|trt-fp16|*|export"].resource is None


def test_graph_is_topological_and_dependents_are_transitive():
    jobs = build_jobs(MatrixSpec(("repvgg_a0", "lsnet_t"), ("onnx", "trt-fp16"), (HOST, "agx"),
                                 ("export", "validate", "bench", "check", "build-engine")), RUNTIME)
    check_graph(jobs)
    assert len({j.id for j in jobs}) == len(jobs)
    down = dependents(jobs, "repvgg_a0|trt-fp16|*|export")
    assert "repvgg_a0|trt-fp16|agx|bench" in down and "repvgg_a0|trt-fp16|*|bundle" in down
    assert not any(d.startswith("lsnet_t") or "|onnx|" in d for d in down)
    with pytest.raises(ValueError, match="depends on"):
        check_graph(list(reversed(jobs)))


def test_parse_steps_always_exports_and_refuses_eval_and_unknown_steps():
    assert parse_steps("bench") == ("export", "bench")
    assert parse_steps(None)[0] == "export"
    with pytest.raises(BadInputError, match="not available"):
        parse_steps("export,eval")
    with pytest.raises(BadInputError, match="unknown step"):
        parse_steps("export,rm -rf")


def test_parse_models_targets_devices():
    assert parse_models("all", ZOO, lambda n: False) == (tuple(ZOO), ())
    assert parse_models("lsnet_t,my.py:build", ZOO, lambda n: n.endswith(":build")) == (
        ("lsnet_t", "my.py:build"), ("my.py:build",))
    with pytest.raises(BadInputError, match="unknown model"):
        parse_models("nope", ZOO, lambda n: False)
    with pytest.raises(BadInputError, match="twice"):
        parse_models("lsnet_t,lsnet_t", ZOO, lambda n: False)
    with pytest.raises(BadInputError, match="unknown target"):
        parse_targets("onnx,trt-fp99", RUNTIME)
    assert parse_devices(None) == (HOST,)
    assert parse_devices("host,jetson-orin") == (HOST, "jetson-orin")
    for bad in ("CPU", "a b", "x;y", '{"a":1}'):
        with pytest.raises(BadInputError):
            parse_devices(bad)


def test_validate_job_refuses_what_the_command_line_did_not_name():
    ok = JobSpec("repvgg_a0", "onnx", "export")
    validate_job(ok, ZOO, (), RUNTIME)
    with pytest.raises(BadInputError, match="neither a zoo model"):
        validate_job(JobSpec("evil.py:run", "onnx", "export"), ZOO, (), RUNTIME)
    validate_job(JobSpec("mine.py:build", "onnx", "export"), ZOO, ("mine.py:build",), RUNTIME)
    with pytest.raises(BadInputError, match="not a deployconv matrix step"):
        validate_job(JobSpec("repvgg_a0", "onnx", "shell"), ZOO, (), RUNTIME)
    with pytest.raises(BadInputError, match="not a deployconv matrix step"):
        validate_job(JobSpec("repvgg_a0", "onnx", "eval", HOST), ZOO, (), RUNTIME)
    with pytest.raises(BadInputError, match="do not fit"):
        validate_job(JobSpec("repvgg_a0", "onnx", "bench"), ZOO, (), RUNTIME)
    with pytest.raises(BadInputError, match="unknown target"):
        validate_job(JobSpec("repvgg_a0", "x.toml", "export"), ZOO, (), RUNTIME)
    # device steps never build the model: a worker without the zoo (no torch) checks the rest
    validate_job(JobSpec("repvgg_a0", "onnx", "bench", "agx"), None, (), RUNTIME)
