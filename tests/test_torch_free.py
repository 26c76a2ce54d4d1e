"""The torch-free edge (ARCHITECTURE.md): on a device with numpy and a runtime but no PyTorch, deployconv
imports and `deployconv bench` runs. Proven in a subprocess where any import of torch raises ImportError (a
meta-path finder installed by a sitecustomize.py put first on PYTHONPATH)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import import_graph
from tests.runtime import save, tiny_classifier

REPO = Path(__file__).resolve().parents[1]

BLOCKER = textwrap.dedent('''
    import sys

    class _BlockTorch:
        """Any import of torch or torch.* fails, as on a device without PyTorch."""

        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the torch-free test)", name=name)
            return None

    sys.meta_path.insert(0, _BlockTorch())
''')

# Packages whose every module must import on a device without PyTorch, and the few modules that need it (why).
TORCH_FREE_PACKAGES = ("core", "trust", "plugins", "runtime", "validate", "engine", "report", "matrix", "cli")
NEEDS_TORCH = {
    "deployconv.runtime.torch_runner": "the PyTorch runner itself",
    "deployconv.validate.quick_bench": "times the PyTorch forms beside ONNX Runtime during export",
}
# Torch-free modules outside those packages: the front door, and the bundle maker (a bundle is made without torch).
ALSO_TORCH_FREE = ("deployconv", "deployconv.pipeline.bundle")


def _torch_free_layer_set() -> list[str]:
    return sorted(m for m in import_graph.modules() if import_graph.package_of(m) in TORCH_FREE_PACKAGES
                  and m not in NEEDS_TORCH)


TORCH_FREE_MODULES = [*ALSO_TORCH_FREE, *_torch_free_layer_set()]


@pytest.fixture(scope="module")
def blocked_env(tmp_path_factory):
    d = tmp_path_factory.mktemp("torch_blocked")
    (d / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE")}
    env["PYTHONPATH"] = os.pathsep.join([str(d), str(REPO)])
    env["COLUMNS"] = "200"
    return env


def run_blocked(env: dict[str, str], *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_blocker_blocks_torch(blocked_env):
    proc = run_blocked(blocked_env, "-c", "import torch")
    assert proc.returncode != 0 and "blocked by the torch-free test" in proc.stderr


def test_edge_modules_import_without_torch(blocked_env):
    """Every module of the torch-free layer set (taken from the import graph, not a sample) imports with torch
    blocked, and the runtime's front door still offers everything but the PyTorch runner."""
    assert len(TORCH_FREE_MODULES) > 100
    code = textwrap.dedent(f'''
        import importlib, sys
        for name in {TORCH_FREE_MODULES!r}:
            importlib.import_module(name)
        print("imported", len({TORCH_FREE_MODULES!r}))
        import deployconv.runtime as rt
        assert rt.load_runner and rt.OrtRunner
        leaked = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not leaked, leaked
        try:
            rt.TorchRunner
        except ImportError:
            print("torch runner unavailable, as it should be")
    ''')
    proc = run_blocked(blocked_env, "-c", code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch runner unavailable" in proc.stdout
    assert f"imported {len(TORCH_FREE_MODULES)}" in proc.stdout


def test_bench_runs_without_torch(blocked_env, tmp_path):
    model = save(tiny_classifier(), tmp_path / "tiny.onnx")
    proc = run_blocked(blocked_env, "-m", "deployconv", "bench", str(model), "--iters", "20", "--json",
                       cwd=tmp_path)
    assert "No such command 'bench'" not in proc.stderr, (
        "bench is not registered in deployconv/cli/app.py: add, after the doctor command, "
        "`from deployconv.cli.bench import bench_cmd; app.command(\"bench\")(bench_cmd)`")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert len(d["samples_ms"]) == 20 and d["fingerprint"]["runtime"] == "onnxruntime"


# --- the whole torch-free layer set, from the import graph ---

def test_the_torch_free_layers_load_no_torch_by_their_imports():
    """Static: no module of the torch-free layers imports torch at its top, directly or through what it imports."""
    bound = import_graph.heavy_modules(frozenset({"torch", "torchvision"}))
    assert set(NEEDS_TORCH) <= bound, "a module listed as needing torch no longer does: drop it from NEEDS_TORCH"
    assert not [m for m in _torch_free_layer_set() if m in bound]


# --- engine/ and the TensorRT runner: no torch AND no TensorRT (nor cuda-python) at import ---

TRT_BLOCKER = BLOCKER.replace('name == "torch" or name.startswith("torch.")', 'name.split(".")[0] in ("torch", "tensorrt", "cuda")')

ENGINE_MODULES = [
    "deployconv.engine",
    "deployconv.engine.spec",
    "deployconv.engine.onnx_facts",
    "deployconv.engine.profiles",
    "deployconv.engine.precision",
    "deployconv.engine.recipe",
    "deployconv.engine.trtexec",
    "deployconv.engine.trtexec_flags",
    "deployconv.engine.builder",
    "deployconv.runtime.trt",
    "deployconv.runtime.cuda_io",
    "deployconv.runtime.ort_cuda",
]


@pytest.fixture(scope="module")
def trt_blocked_env(tmp_path_factory):
    d = tmp_path_factory.mktemp("torch_trt_blocked")
    (d / "sitecustomize.py").write_text(TRT_BLOCKER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE")}
    env["PYTHONPATH"] = os.pathsep.join([str(d), str(REPO)])
    return env


def test_trt_blocker_blocks_all_three(trt_blocked_env):
    assert TRT_BLOCKER != BLOCKER
    for name in ("torch", "tensorrt", "cuda.bindings"):
        proc = run_blocked(trt_blocked_env, "-c", f"import {name}")
        assert proc.returncode != 0 and "blocked by the torch-free test" in proc.stderr, name


def test_engine_and_trt_runner_work_without_torch_and_tensorrt(trt_blocked_env, tmp_path):
    """Import, plan, and fail cleanly (exit 3, with the trtexec line) on a machine with neither."""
    model = save(tiny_classifier(), tmp_path / "model.onnx")
    (tmp_path / "engine.plan").write_bytes(b"\0" * 8)
    code = textwrap.dedent(f'''
        import importlib, sys
        for name in {ENGINE_MODULES!r}:
            importlib.import_module(name)
        from deployconv.engine import build_engine, engine_spec_for, make_recipe, read_onnx_facts, trtexec_command
        from deployconv.core.errors import MissingEnvironmentError
        from deployconv.runtime.trt import TrtRunner
        facts = read_onnx_facts({str(model)!r})
        plan = make_recipe(engine_spec_for("onnx", precision="fp16"), "10.3", facts)
        print(trtexec_command(plan, "model.onnx"))
        try:
            build_engine({str(model)!r}, engine_spec_for("onnx", precision="fp16"), {str(tmp_path / "out")!r})
        except MissingEnvironmentError as e:
            print("BUILD", e.exit_code, e.details[0])
        try:
            TrtRunner({str(tmp_path / "engine.plan")!r}).activate()
        except MissingEnvironmentError as e:
            print("RUN", e.exit_code)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "tensorrt", "cuda"))
        assert not leaked, leaked
    ''')
    proc = run_blocked(trt_blocked_env, "-c", code)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("trtexec --onnx=model.onnx") and "--fp16" in lines[0]
    assert lines[1].startswith("BUILD 3 TensorRT 10.x: trtexec --onnx=")
    assert lines[2] == "RUN 3"
