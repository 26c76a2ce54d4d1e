"""The C++ side of the plugin table: the generated header and CMake defaults are current, the header says what
table.py says (read back independently of the generator), every plugin and creator takes its identity and fields
from it, the ONNX schema accepts the SKA epilogue inputs, and, where TensorRT headers exist, every plugin source
compiles against them (C++17, -Wall -Wextra -Werror)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deployconv.plugins.table import PLUGINS, PluginSpec
from deployconv.plugins.trt_headers import SHARED_VERSIONS, all_headers, find_headers, shared_headers
from tools import gen_plugin_header as gen

REPO = Path(__file__).resolve().parents[2]
TRT_DIR = REPO / "plugins_cpp" / "trt"
HEADER = TRT_DIR / "plugin_table.h"


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


@pytest.mark.trt
def test_plugin_library_and_probe_compile_against_each_header_set(trt_build):
    """Every plugins_cpp/trt/*.cpp and the probe, g++ -Wall -Wextra -Wpedantic -Werror, against 10.3, 10.16 and
    11.1 (../shared) or TENSORRT_ROOT's headers, linked into a library that needs nothing from libnvinfer."""
    from deployconv.plugins import library

    assert trt_build.library.stat().st_size > 0 and trt_build.probe.stat().st_size > 0
    assert library.dynamic_symbols(trt_build.library.read_bytes()) == set(library.ENTRY_POINTS)
    print(f"TensorRT {trt_build.headers.version} ({trt_build.headers.found_via}): built in {trt_build.seconds:.0f} s")


def test_the_shared_header_sets_are_found_and_read(tmp_path):
    """Header discovery: ../shared's three releases when TENSORRT_ROOT is unset, TENSORRT_ROOT alone when set, and
    a reason naming the missing ../shared when there is nothing (a user's clone)."""
    from deployconv.plugins.trt_headers import missing_reason

    sets = shared_headers()
    if not sets:
        pytest.skip(missing_reason({}))
    assert list(sets) == list(SHARED_VERSIONS)
    assert [h.version for h in sets.values()] == ["10.3.0", "10.16.0", "11.1.0"]
    assert [h.major_minor for h in all_headers({})] == list(SHARED_VERSIONS)
    assert find_headers({}).major_minor == "11.1"
    only = find_headers({"TENSORRT_ROOT": str(sets["10.3"].root)})
    assert only.found_via == "TENSORRT_ROOT" and only.version == "10.3.0"
    assert [h.version for h in all_headers({"TENSORRT_ROOT": str(sets["10.3"].root)})] == ["10.3.0"]
    empty = tmp_path / "no-shared"
    assert find_headers({}, shared=empty, system=()) is None
    reason = missing_reason({}, shared=empty)
    assert str(empty) in reason and "TENSORRT_ROOT" in reason


def test_version_parsing_covers_both_macro_styles(tmp_path):
    """10.0-10.12 define NV_TENSORRT_MAJOR as a number; later releases through TRT_MAJOR_ENTERPRISE."""
    from deployconv.plugins.trt_headers import header_version

    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / "NvInferVersion.h").write_text("#define NV_TENSORRT_MAJOR 10\n#define NV_TENSORRT_MINOR 3\n"
                                          "#define NV_TENSORRT_PATCH 0\n")
    (new / "NvInferVersion.h").write_text("#define TRT_MAJOR_ENTERPRISE 11\n#define TRT_MINOR_ENTERPRISE 1\n"
                                          "#define TRT_PATCH_ENTERPRISE 0\n#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE\n")
    assert (header_version(old), header_version(new)) == ("10.3.0", "11.1.0")
    with pytest.raises(ValueError, match=r"NvInferVersion\.h"):
        header_version(tmp_path)


API_DIFFERENCES = {  # what differs between the header sets where our code touches it (see the test below)
    "IGpuAllocator declared in": ("NvInferRuntimeBase.h", "NvInferRuntime.h", "NvInferRuntime.h"),
    "IPluginV3OneBuild declared in": ("NvInferRuntime.h", "NvInferRuntime.h", "NvInferRuntime.h"),
    "IPluginV3 declared in": ("NvInferRuntime.h", "NvInferPluginBase.h", "NvInferPluginBase.h"),
    "IPluginCreatorInterface declared in": ("NvInferRuntimePlugin.h", "NvInferPluginBase.h", "NvInferPluginBase.h"),
    "~IPluginResourceContext": ("= default", "= default", "= 0 (defined inline below)"),
}


def test_header_differences_our_code_meets_are_what_we_think():
    """The API differences between 10.3, 10.16 and 11.1 that the plugins and the probe meet, read from the headers
    themselves: none needs an #if (the classes we derive from and call have the same members); the probe and
    plugins include NvInferRuntime.h, which declares everything in every version. This test fails when a header
    set changes what the code relies on, which is when an #if would become necessary."""
    sets = shared_headers()
    if len(sets) != len(SHARED_VERSIONS):
        pytest.skip("needs all three header sets under ../shared/third_party/tensorrt-headers")

    def declared_in(ver: str, cls: str) -> str:
        inc = sets[ver].include
        return next(p.name for p in sorted(inc.glob("*.h")) if re.search(rf"^class {cls}\b[^;]*$", p.read_text(),
                                                                          re.M))

    for cls in ("IGpuAllocator", "IPluginV3OneBuild", "IPluginV3", "IPluginCreatorInterface"):
        assert tuple(declared_in(v, cls) for v in SHARED_VERSIONS) == API_DIFFERENCES[f"{cls} declared in"], cls
    dtors = [re.search(r"virtual ~IPluginResourceContext\(\) noexcept (= \w+);",
                       (sets[v].include / "NvInferRuntime.h").read_text()).group(1) for v in SHARED_VERSIONS]
    assert dtors == ["= default", "= default", "= 0"]
    assert "inline IPluginResourceContext::~IPluginResourceContext() noexcept = default;" in \
        (sets["11.1"].include / "NvInferRuntime.h").read_text()
    for ver in SHARED_VERSIONS:  # the probe's IExprBuilder double relies on these virtuals, unchanged in all three
        impl = (sets[ver].include / "NvInferImpl.h").read_text()
        assert re.search(r"class VExprBuilder : public VRoot\s*\{\s*public:\s*virtual IDimensionExpr const\* "
                         r"constant\(int64_t value\) = 0;", impl), ver
