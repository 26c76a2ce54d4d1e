"""The C++ side of the plugin table: the generated header and CMake defaults are current, the header says what
table.py says (read back independently of the generator), every plugin and creator takes its identity and fields
from it, the ONNX schema accepts the SKA epilogue inputs, and, where TensorRT headers exist, every plugin source
compiles against them (C++17, -Wall -Wextra -Werror)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from deployconv.plugins.table import PLUGINS, PluginSpec
from tools import gen_plugin_header as gen

REPO = Path(__file__).resolve().parents[2]
TRT_DIR = REPO / "plugins_cpp" / "trt"
HEADER = TRT_DIR / "plugin_table.h"
NO_TRT = "TensorRT headers not found (set TENSORRT_ROOT)"


def trt_include_dir() -> Path | None:
    """Where NvInfer.h is: $TENSORRT_ROOT/include, or the system locations TensorRT's packages use."""
    roots = [Path(os.environ["TENSORRT_ROOT"]) / "include"] if os.environ.get("TENSORRT_ROOT") else []
    roots += [Path("/usr/include/x86_64-linux-gnu"), Path("/usr/include/aarch64-linux-gnu"), Path("/usr/include")]
    return next((r for r in roots if (r / "NvInfer.h").is_file()), None)


def cuda_include_dir() -> Path | None:
    nvcc = shutil.which("nvcc")
    candidates = [Path(os.environ[v]) / "include" for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)]
    candidates += [Path("/usr/local/cuda/include")]
    if nvcc:
        candidates.append(Path(nvcc).resolve().parent.parent / "include")
    return next((c for c in candidates if (c / "cuda_runtime_api.h").is_file()), None)


def trt_version(include: Path) -> str:
    text = (include / "NvInferVersion.h").read_text()
    parts = []
    for part in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(rf"#define TRT_{part}_ENTERPRISE (\d+)", text) or re.search(
            rf"#define NV_TENSORRT_{part} (\d+)", text)
        parts.append(m.group(1) if m else "?")
    return ".".join(parts)


# --- generated files -----------------------------------------------------------------------------------------------


def test_generated_files_are_current():
    outputs = gen.rendered()
    assert gen.ARCHS_CMAKE in outputs, "deployconv/plugins/archs.py is missing: default_archs.cmake cannot be checked"
    stale = [str(p.relative_to(REPO)) for p in gen.stale(outputs)]
    assert not stale, f"stale generated files {stale}: run `.venv/bin/python tools/gen_plugin_header.py`"


def test_default_archs_cmake_lists_archs_py_defaults():
    from deployconv.plugins.archs import DEFAULT_ARCHS

    text = gen.ARCHS_CMAKE.read_text()
    listed = re.search(r'set\(DEPLOYCONV_DEFAULT_CUDA_ARCHS "([^"]*)"\)', text).group(1).split(";")
    assert [int(a) for a in listed] == list(DEFAULT_ARCHS)


def _namespace_block(header: str, spec: PluginSpec) -> str:
    ns = spec.op.split("::")[-1]
    m = re.search(rf"^namespace {ns}\n\{{\n(.*?)^\}} // namespace {ns}$", header, re.S | re.M)
    assert m, f"no namespace {ns} block for {spec.name} in plugin_table.h"
    return m.group(1)


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_header_says_what_the_table_says(name):
    """Read back from the header text, not from the generator: names, version, namespace, inputs, fields."""
    spec = PLUGINS[name]
    block = _namespace_block(HEADER.read_text(), spec)
    ident = re.search(r'kSpec\{\s*"([^"]*)", "([^"]*)", "([^"]*)",\s*/\*minInputs=\*/(\d+), /\*maxInputs=\*/(\d+)',
                      block)
    assert ident.groups() == (spec.name, spec.version, spec.namespace, str(spec.min_inputs()),
                              str(len(spec.node_inputs())))
    inputs = re.search(r"kInputNames\[\] = \{(.*?)\};", block).group(1)
    assert re.findall(r'"([^"]*)"', inputs) == list(spec.node_inputs())
    fp32 = re.search(r"kInputIsFp32\[\] = \{(.*?)\};", block).group(1)
    assert [v.strip() == "true" for v in fp32.split(",")] == [n in spec.fp32_inputs for n in spec.node_inputs()]
    fields = re.findall(r'\{"([^"]*)", FieldKind::(\w+), (-?\d+)\}', block)
    kinds = {"int": "kInt", "ints": "kInts", "float": "kFloat", "string": "kString"}
    assert fields == [(a.name, kinds[a.kind], str(a.count())) for a in spec.attrs]
    index = dict(re.findall(r"inline constexpr int32_t kField(\w+) = (\d+);", block))
    assert index == {gen.camel(a.name): str(i) for i, a in enumerate(spec.attrs)}
    dtypes = re.search(r"/\*fp32=\*/(\w+), /\*fp16=\*/(\w+), /\*bf16=\*/(\w+)", block).groups()
    assert dtypes == tuple(str(d in spec.dtypes).lower() for d in ("float", "float16", "bfloat16"))


def test_every_plugin_takes_its_identity_from_the_header():
    """Each <op>_plugin.h returns table::<op>::kSpec; library.cpp registers one creator per table entry; no
    plugin source spells a field name as a string literal (fields come from the header only)."""
    header = HEADER.read_text()
    library_cpp = (TRT_DIR / "library.cpp").read_text()
    field_names = {a.name for s in PLUGINS.values() for a in s.attrs}
    for spec in PLUGINS.values():
        ns = spec.op.split("::")[-1]
        plugin_h = (TRT_DIR / f"{ns}_plugin.h").read_text()
        assert f"return table::{ns}::kSpec;" in plugin_h, f"{ns}_plugin.h does not use the generated spec"
        creator = re.search(r"using (\w+Creator) = PluginCreator<(\w+)>;", plugin_h)
        assert creator, f"no creator alias in {ns}_plugin.h"
        assert re.search(rf"\b{creator.group(1)} g\w+;", library_cpp), f"{creator.group(1)} not registered"
        assert f"&{ns}::kSpec" in header
    for src in TRT_DIR.glob("*_plugin.*"):
        literals = set(re.findall(r'"([a-z_]+)"', src.read_text()))
        assert not literals & field_names, f"{src.name} spells field names {literals & field_names}"
    assert "kNbPlugins" in library_cpp  # the static_assert tying the creator array to the table


def test_ska_epilogue_inputs_pass_the_onnx_checker():
    """The table extension: an fp16 SKA node with fp32 scale/shift and an fp16 residual is valid ONNX, and the
    plain two-input node the lowering emits still is."""
    import onnx
    from onnx import TensorProto, helper

    from deployconv.plugins.onnx_schemas import register_plugin_schemas
    from deployconv.plugins.table import ONNX_DOMAIN, ONNX_DOMAIN_VERSION

    register_plugin_schemas()
    spec = PLUGINS["DeployconvSKA"]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2, 16, 5, 6])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT16, [2, 2, 9, 5, 6])
    scale = helper.make_tensor_value_info("scale", TensorProto.FLOAT, [16])
    shift = helper.make_tensor_value_info("shift", TensorProto.FLOAT, [16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2, 16, 5, 6])
    attrs = {"plugin_version": spec.version, "plugin_namespace": spec.namespace}

    def model(inputs: list[str], graph_inputs: list) -> onnx.ModelProto:
        node = helper.make_node(spec.name, inputs, ["y"], domain=ONNX_DOMAIN, **attrs)
        graph = helper.make_graph([node], "g", graph_inputs, [y])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                       helper.make_opsetid(ONNX_DOMAIN, ONNX_DOMAIN_VERSION)])

    onnx.checker.check_model(model(["x", "w", "scale", "shift", "x"], [x, w, scale, shift]), full_check=True)
    onnx.checker.check_model(model(["x", "w"], [x, w]), full_check=True)
    half_scale = helper.make_tensor_value_info("scale", TensorProto.FLOAT16, [16])
    with pytest.raises(onnx.shape_inference.InferenceError, match="scale"):
        onnx.checker.check_model(model(["x", "w", "scale"], [x, w, half_scale]), full_check=True)


# --- compiling against TensorRT's headers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compile_flags() -> list[str]:
    trt = trt_include_dir()
    if trt is None:
        pytest.skip(NO_TRT)
    cuda = cuda_include_dir()
    if cuda is None:
        pytest.skip("CUDA headers (cuda_runtime_api.h) not found: install the CUDA toolkit or set CUDA_HOME")
    if shutil.which("g++") is None:
        pytest.skip("g++ not found")
    print(f"compiling against TensorRT {trt_version(trt)} headers at {trt}")
    return ["g++", "-std=c++17", "-O0", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fPIC", "-isystem", str(trt),
            "-isystem", str(cuda), "-I", str(REPO / "plugins_cpp" / "kernels"), "-I", str(TRT_DIR)]


@pytest.mark.trt
@pytest.mark.slow
@pytest.mark.parametrize("source", [*sorted(p.name for p in TRT_DIR.glob("*.cpp")), "probe/plugin_probe.cpp"])
def test_plugin_source_compiles_against_tensorrt_headers(source, compile_flags, tmp_path):
    proc = subprocess.run([*compile_flags, "-c", str(TRT_DIR / source), "-o", str(tmp_path / "out.o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "out.o").stat().st_size > 0
