"""TrtRunner's thin TensorRT layer, driven by a fake `tensorrt` and a numpy-backed CudaIO (tests/fake_tensorrt.py).

These test OUR decisions: IRuntime settings made before deserializing (DLA core, host code only when the user
allows it), plugin libraries loaded once per process and not when the plan carries them, return values
checked, one CUDA graph alive at a time. They do not verify TensorRT or CUDA: the fakes copy the bindings'
names and return conventions (pyCore.cpp, pyPlugin.cpp) and nothing else.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from deployconv.core.errors import EXIT_BAD_INPUT, BadInputError, CheckFailedError
from deployconv.runtime.load_policy import PlanFacts, plugins_to_load, runtime_settings
from deployconv.runtime.plugin_loading import forget_loaded
from deployconv.runtime.trt import TransferSplit, TrtRunner, benchmark_trt, timed_splits
from tests.fake_tensorrt import install


@pytest.fixture
def fake(monkeypatch):
    trt = install(monkeypatch)
    yield trt
    forget_loaded(trt)


def _engine_dir(tmp_path, plan: dict | None = None):
    engine = tmp_path / "engine.plan"
    engine.write_bytes(b"fake plan bytes")
    if plan is not None:
        (tmp_path / "manifest.json").write_text(json.dumps({"engine": {"file": "engine.plan", "sha256": "0" * 64, "plan": plan}}))
    return engine


def _runtime_calls(fake):
    """The IRuntime attribute writes, and whether each came before deserialize_cuda_engine."""
    names = [c[0] for c in fake.calls]
    at = names.index("deserialize_cuda_engine")
    return {c[0]: (c[1], i < at) for i, c in enumerate(fake.calls) if c[0].startswith("runtime.")}


def test_identity_engine_runs_through_the_runner(fake, tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    with TrtRunner(_engine_dir(tmp_path)) as r:
        np.testing.assert_array_equal(r.infer({"x": x})["y"], x)
        assert r.source == str(tmp_path / "engine.plan")


def test_dla_core_is_set_before_deserializing(fake, tmp_path):
    engine = _engine_dir(tmp_path, {"device": "dla", "dla_core": 1, "runtime_needs_host_code": False})
    with TrtRunner(engine):
        pass
    assert _runtime_calls(fake) == {"runtime.DLA_core": (1, True)}
    fake.calls.clear()
    with TrtRunner(engine, dla_core=0):  # the user's core wins
        pass
    assert _runtime_calls(fake) == {"runtime.DLA_core": (0, True)}


def test_version_compatible_plan_needs_the_users_permission(fake, tmp_path):
    engine = _engine_dir(tmp_path, {"device": "gpu", "runtime_needs_host_code": True,
                                    "plugins_to_serialize": ["/build/libdeployconv_plugins.so"]})
    lib = tmp_path / "libdeployconv_plugins.so"
    lib.write_bytes(b"\x7fELF")
    runner = TrtRunner(engine, plugins=[lib])
    with pytest.raises(BadInputError, match="version-compatible plan") as e:
        runner.activate()
    assert e.value.exit_code == EXIT_BAD_INPUT and "--allow-host-code" in e.value.fix
    assert "deserialize_cuda_engine" not in [c[0] for c in fake.calls] and not runner.is_active
    with TrtRunner(engine, plugins=[lib], allow_host_code=True) as r:
        assert r.info()["plugins_carried_by_plan"] == [os.path.realpath(lib)]
    assert _runtime_calls(fake) == {"runtime.engine_host_code_allowed": (True, True)}
    # the plan carries the plugin library: loading it again would register its plugins twice
    assert "load_library" not in [c[0] for c in fake.calls]


def test_plugins_load_once_across_activations(fake, tmp_path):
    lib = tmp_path / "libdeployconv_plugins.so"
    lib.write_bytes(b"\x7fELF")
    runner = TrtRunner(_engine_dir(tmp_path), plugins=[lib])
    for _ in range(3):  # bench --repeat re-activates between blocks
        runner.activate()
        runner.deactivate()
    assert [c for c in fake.calls if c[0] == "load_library"] == [("load_library", os.path.realpath(lib))]


def test_refused_tensor_address_raises(fake, tmp_path):
    fake.address_ok = False
    with TrtRunner(_engine_dir(tmp_path)) as r, pytest.raises(CheckFailedError, match="refused the device address"):
        r.infer({"x": np.zeros((2, 4), np.float32)})


def test_one_cuda_graph_alive_across_shape_changes(fake, tmp_path):
    with TrtRunner(_engine_dir(tmp_path), cuda_graph=True) as r:
        io = fake.ios[-1]
        for n in (1, 2, 3, 2):
            x = np.full((n, 4), float(n), np.float32)
            np.testing.assert_array_equal(r.infer({"x": x})["y"], x)
            assert len(io.live_graphs) == 1
        assert r.info()["cuda_graph_captured"]
    assert io.live_graphs == set()


def test_bench_split_excludes_every_blocks_warmup(fake, tmp_path):
    runner = TrtRunner(_engine_dir(tmp_path))
    result = benchmark_trt(runner, {"x": np.zeros((2, 4), np.float32)}, iters=6, repeat=3, warmup_s=0.0)
    assert result.split.compute.count == 6 == len(result.bench.samples_ms)
    splits = [TransferSplit(float(i), 0, 0) for i in range(7)]
    blocks = [{"warmup_iters": 1, "count": 2}, {"warmup_iters": 2, "count": 2}]
    assert [s.h2d_ms for s in timed_splits(splits, blocks)] == [1.0, 2.0, 5.0, 6.0]


def test_policy_is_pure():
    assert runtime_settings(PlanFacts(), allow_host_code=False).items() == []
    assert runtime_settings(PlanFacts(False, 1), allow_host_code=True).items() == [
        ("DLA_core", 1), ("engine_host_code_allowed", True)]
    with pytest.raises(BadInputError):
        runtime_settings(PlanFacts(True), allow_host_code=False)
    assert plugins_to_load(["/x/libdeployconv_plugins.so", "/x/libother.so"],
                           PlanFacts(True, None, ("/build/libdeployconv_plugins.so",))) == ("/x/libother.so",)


def test_plan_facts_read_both_manifest_shapes(tmp_path):
    from deployconv.runtime.load_policy import plan_facts_near

    plan = {"device": "dla", "dla_core": 1, "runtime_needs_host_code": True, "plugins_to_serialize": ["/b/lib.so"]}
    engine = tmp_path / "engine.plan"
    engine.write_bytes(b"x")
    want = PlanFacts(True, 1, ("/b/lib.so",))
    built = {"file": "engine.plan", "sha256": "0" * 64, "plan": plan}
    for manifest in ({"engine": built},  # build-engine before the one EngineEntry (schema /1 still reads)
                     {"engine": {"status": "built", "engine": built}}):  # export, and both writers now
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
        assert plan_facts_near(engine) == want
    (tmp_path / "manifest.json").write_text(json.dumps({"engine": {**built, "file": "other.plan"}}))
    assert plan_facts_near(engine) == PlanFacts()


def test_several_profiles_the_runner_switches_to_the_one_holding_the_shapes(fake, tmp_path):
    """An engine with two optimization profiles (export --profile): each shape runs in the first profile that
    holds it, switched before the shapes are set; a shape no profile holds is exit 2."""
    fake.profile_bounds = [(1, 4, 8), (9, 12, 16)]
    switches = lambda: [c[1] for c in fake.calls if c[0] == "context.set_optimization_profile_async"]  # noqa: E731
    with TrtRunner(_engine_dir(tmp_path)) as r:
        for n in (3, 12, 16, 2):
            x = np.full((n, 4), n, dtype=np.float32)
            np.testing.assert_array_equal(r.infer({"x": x})["y"], x)
        assert switches() == [1, 0]  # batch 3 in profile 0 (no switch), 12 and 16 in profile 1, then back
        with pytest.raises(BadInputError, match="engine profile") as e:
            r.infer({"x": np.zeros((17, 4), np.float32)})
        assert e.value.exit_code == EXIT_BAD_INPUT
