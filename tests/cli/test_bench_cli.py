"""`deployconv bench`: JSON and table output, --out (atomic, no overwrite without --force), exit codes 2/3 with
clear messages and no traceback. Runs are short (--warmup 0, a few --iters); speed is never asserted."""

from __future__ import annotations

import json

import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from deployconv.cli.app import app
from deployconv.cli.bench import bench_cmd
from tests.runtime import save, tiny_classifier

# cli.py registers the command (one line); until it does, register it here so these tests exercise the
# command itself. tests/test_torch_free.py runs `python -m deployconv bench` for the real registration.
if not any(c.name == "bench" for c in app.registered_commands):
    app.command("bench")(bench_cmd)

runner = CliRunner()
FAST = ["--warmup", "0", "--iters", "5"]


def bench(*args: str):
    return runner.invoke(app, ["bench", *map(str, args)])


@pytest.fixture
def model(tmp_path):
    return save(tiny_classifier(), tmp_path / "tiny.onnx")


def test_json(model):
    res = bench(model, *FAST, "--batch", "3", "--threads", "1", "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["schema"] == "deployconv.bench/1" and len(d["samples_ms"]) == 5
    assert {"median_ms", "mean_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "std_ms", "cv", "throughput"} <= set(d["stats"])
    c, fp = d["conditions"], d["fingerprint"]
    assert c["inputs"] == {"x": {"shape": [3, 3, 8, 8], "dtype": "float32"}} and c["batch"] == 3
    assert c["seed"] == 0 and c["requested_runtime"] == "ort-cpu" and c["threads"] == 1
    assert fp["threads"] == 1 and fp["runtime_version"] == ort.__version__ and len(fp["graph_sha256"]) == 64
    assert fp["cpu_model"] and fp["cpu_logical_cores"] >= 1


def test_table(model):
    res = bench(model, *FAST)
    assert res.exit_code == 0, res.output
    for word in ("median", "mean", "p90", "p99", "min", "max", "std", "CV", "throughput", "CPU", "threads",
                 "onnxruntime", "graph sha256", "x: float32[1, 3, 8, 8]"):
        assert word in res.stdout, word


def test_exported_directory(tmp_path):
    save(tiny_classifier(), tmp_path / "out" / "model.onnx")
    res = bench(tmp_path / "out", *FAST, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["conditions"]["model_file"].endswith("model.onnx")


def test_out_file_atomic_and_no_overwrite(model, tmp_path):
    out = tmp_path / "runs" / "run.json"
    res = bench(model, *FAST, "--out", out)
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["schema"] == "deployconv.bench/1" and len(d["samples_ms"]) == 5 and "fingerprint" in d
    first = out.read_text()
    res = bench(model, *FAST, "--out", out)
    assert res.exit_code == 2 and "already exists" in res.output and "Traceback" not in res.output
    assert out.read_text() == first
    assert bench(model, *FAST, "--out", out, "--force").exit_code == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["run.json"]  # no temp files left behind


def test_corrupt_file_exit_2(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    res = bench(bad, *FAST)
    assert res.exit_code == 2 and "not a readable ONNX model" in res.output and "Traceback" not in res.output
    res = bench(tmp_path / "missing.onnx", *FAST)
    assert res.exit_code == 2 and "no such file" in res.output


def test_dynamic_dims_ask_for_shape(tmp_path):
    path = save(tiny_classifier(hw=("H", "W")), tmp_path / "dyn.onnx")
    res = bench(path, *FAST)
    assert res.exit_code == 2 and "--shape x=" in res.output
    res = bench(path, *FAST, "--shape", "x=2x3x4x4", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["conditions"]["inputs"]["x"]["shape"] == [2, 3, 4, 4]


def test_static_batch_mismatch_and_option_errors(tmp_path, model):
    static = save(tiny_classifier(batch=2), tmp_path / "static.onnx")
    res = bench(static, *FAST, "--batch", "4")
    assert res.exit_code == 2 and "static batch of 2" in res.output
    res = bench(model, "--warmup", "0", "--iters", "3", "--duration", "1")
    assert res.exit_code == 2 and "--duration and --iters" in res.output
    res = bench(model, *FAST, "--runtime", "tvm")
    assert res.exit_code == 2 and "unknown runtime" in res.output


def test_missing_runtimes_exit_3(model, tmp_path):
    res = bench(model, *FAST, "--runtime", "trt")
    assert res.exit_code == 3 and "TensorRT" in res.output and "Traceback" not in res.output
    plan = tmp_path / "engine.plan"
    plan.write_bytes(b"\0")
    res = bench(plan, *FAST)
    assert res.exit_code == 3 and "TensorRT is not installed" in res.output
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        res = bench(model, *FAST, "--runtime", "ort-cuda")
        assert res.exit_code == 3 and "CUDAExecutionProvider" in res.output and "onnxruntime-gpu" in res.output


@pytest.fixture
def fake_trt(monkeypatch):
    """A fake `tensorrt` and CUDA I/O (tests/fake_tensorrt.py): tests the command's wiring, not TensorRT."""
    from deployconv.runtime.plugin_loading import forget_loaded
    from tests.fake_tensorrt import install

    fake = install(monkeypatch)
    yield fake
    forget_loaded(fake)


def _engine(tmp_path, plan=None):
    engine = tmp_path / "engine.plan"
    engine.write_bytes(b"fake plan bytes")
    if plan is not None:
        (tmp_path / "manifest.json").write_text(json.dumps({"engine": {"file": "engine.plan", "sha256": "0" * 64, "plan": plan}}))
    return engine


def test_trt_runtime_reports_the_gpu_split(fake_trt, tmp_path):
    lib = tmp_path / "libdeployconv_plugins.so"
    lib.write_bytes(b"\x7fELF")
    res = bench(_engine(tmp_path), "--runtime", "trt", "--plugins", lib, *FAST, "--batch", "2", "--repeat", "5",
                "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["conditions"]["model_file"].endswith("engine.plan") and len(d["samples_ms"]) == 5
    assert d["split"]["compute"]["count"] == 5 and "CUDA events" in d["split"]["timer"]
    assert [c for c in fake_trt.calls if c[0] == "load_library"] == [("load_library", str(lib.resolve()))]
    table = bench(_engine(tmp_path), "--runtime", "trt", *FAST)
    assert table.exit_code == 0 and "GPU compute" in table.stdout and "H2D copies" in table.stdout


def test_trt_version_compatible_plan_needs_allow_host_code(fake_trt, tmp_path):
    engine = _engine(tmp_path, {"device": "gpu", "runtime_needs_host_code": True})
    res = bench(engine, "--runtime", "trt", *FAST)
    assert res.exit_code == 2 and "--allow-host-code" in res.output and "Traceback" not in res.output
    assert bench(engine, "--runtime", "trt", "--allow-host-code", *FAST).exit_code == 0


def test_trt_options_on_onnx_runtime_are_refused(model):
    res = bench(model, "--allow-host-code", *FAST)
    assert res.exit_code == 2 and "are for TensorRT engines" in res.output
