"""plugins_cpp/CMakeLists.txt through `build_plugins`: CUDA arch selection (CMake and archs.py agree), a real
build for one arch into an atomically replaced output directory (kernels only without TensorRT headers, the plugin
library with them), and, where the library was built, its creators and plugins driven through their IPluginV3
interfaces by plugins_cpp/trt/probe (dlopen + getCreators, as TensorRT's loadLibrary does; no TensorRT runtime,
no GPU, no kernel launches)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from deployconv.core.errors import BadInputError, MissingEnvironmentError
from deployconv.core.fsio import sha256_file
from deployconv.plugins import library
from deployconv.plugins.probe import run_probe
from deployconv.plugins.table import PLUGINS
from deployconv.plugins.trt_headers import find_headers, missing_reason
from tests.plugins.conftest import BUILD_ARCH
from tests.plugins.conftest import need_tools as _need

REPO = Path(__file__).resolve().parents[2]
CMAKE_DIR = REPO / "plugins_cpp" / "cmake"


# --- arch selection in CMake -------------------------------------------------------------------------------------


def _resolve_in_cmake(tmp_path: Path, nvcc: str, archs: str | None) -> subprocess.CompletedProcess:
    script = tmp_path / "resolve.cmake"
    script.write_text(
        "cmake_minimum_required(VERSION 3.18)\n"
        f'set(CMAKE_CUDA_COMPILER "{nvcc}")\n'
        f'include("{CMAKE_DIR}/cuda_archs.cmake")\n'
        "deployconv_resolve_cuda_archs()\n"
        'message("RESOLVED=${DEPLOYCONV_RESOLVED_CUDA_ARCHS}")\n'
        'message("CMAKE=${CMAKE_CUDA_ARCHITECTURES}")\n')
    args = ["cmake"] + ([f"-DDEPLOYCONV_CUDA_ARCHS={archs}"] if archs is not None else []) + ["-P", str(script)]
    return subprocess.run(args, capture_output=True, text=True)


def _fake_nvcc(tmp_path: Path, codes: list[str]) -> str:
    exe = tmp_path / "nvcc"
    exe.write_text("#!/bin/sh\nprintf '" + "\\n".join(f"sm_{c}" for c in codes) + "\\n'\n")
    exe.chmod(0o755)
    return str(exe)


def _resolved(proc: subprocess.CompletedProcess) -> tuple[str, str]:
    out = dict(line.split("=", 1) for line in proc.stderr.splitlines() if line.startswith(("RESOLVED=", "CMAKE=")))
    return out["RESOLVED"], out["CMAKE"]


def test_cmake_filters_the_defaults_like_archs_py(tmp_path):
    _need("cmake")
    from deployconv.plugins.archs import supported_archs

    listing = ["75", "80", "87", "90"]  # an nvcc without 89, 100, 110
    proc = _resolve_in_cmake(tmp_path, _fake_nvcc(tmp_path, listing), None)
    assert proc.returncode == 0, proc.stderr
    expected = supported_archs("\n".join(f"sm_{a}" for a in listing))
    assert _resolved(proc) == (";".join(map(str, expected)), "87-real;90")  # SASS for all, PTX for the newest
    assert "skipped: not supported by this nvcc" in proc.stdout  # a STATUS message


def test_cmake_defaults_match_archs_py_for_this_nvcc(tmp_path):
    _need("cmake", "nvcc")
    from deployconv.plugins.archs import supported_archs

    nvcc = library._tool("nvcc")
    listing = subprocess.run([nvcc, "--list-gpu-code"], capture_output=True, text=True).stdout
    proc = _resolve_in_cmake(tmp_path, nvcc, None)
    assert proc.returncode == 0, proc.stderr
    assert _resolved(proc)[0] == ";".join(map(str, supported_archs(listing)))


def test_cmake_refuses_an_explicit_arch_nvcc_lacks(tmp_path):
    _need("cmake")
    proc = _resolve_in_cmake(tmp_path, _fake_nvcc(tmp_path, ["87", "90"]), "87,100")
    assert proc.returncode != 0 and "asks for 100" in proc.stderr
    proc = _resolve_in_cmake(tmp_path, _fake_nvcc(tmp_path, ["87", "90"]), "90;87")
    assert _resolved(proc) == ("87;90", "87-real;90")


# --- a real build --------------------------------------------------------------------------------------------------


@pytest.fixture
def build(cmake_build):
    return cmake_build


@pytest.mark.slow
def test_build_writes_what_it_built(build):
    result, out = build
    info = json.loads((out / library.BUILD_INFO_NAME).read_text())
    assert result.archs == (BUILD_ARCH,) and info["archs"] == [BUILD_ARCH]
    assert (out / library.KERNELS_NAME).stat().st_size > 0
    assert (out / "include" / "deployconv_kernels.h").is_file()
    assert library.parse_build_txt((out / library.BUILD_TXT_NAME).read_text())["cuda_archs"] == str(BUILD_ARCH)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700: other users may load it
    assert info["files"][library.KERNELS_NAME] == sha256_file(out / library.KERNELS_NAME)
    assert [p["name"] for p in info["plugins"]] == list(PLUGINS)
    assert not list(out.parent.glob(".out.*")), "temporary build trees must be gone after a successful build"


@pytest.mark.slow
def test_without_tensorrt_headers_only_the_kernels_are_built(build):
    if find_headers(os.environ) is not None:
        pytest.skip("TensorRT headers are present here: the plugin library was built (see the next test)")
    result, out = build
    assert result.built == "kernels" and result.library is None
    assert "NvInfer.h not found" in result.tensorrt_missing and "TENSORRT_ROOT" in result.tensorrt_missing
    assert not (out / library.LIBRARY_NAME).exists()


@pytest.mark.slow
@pytest.mark.trt
def test_with_tensorrt_headers_the_plugin_library_is_built(build):
    if find_headers(os.environ) is None:
        pytest.skip(missing_reason(os.environ))
    result, out = build
    assert result.built == "kernels+tensorrt" and result.tensorrt_missing is None
    lib = library.plugin_library(out, check_gpu=False)
    assert lib.path == str(out / library.LIBRARY_NAME) and lib.sha256 == result.files[library.LIBRARY_NAME]
    assert lib.entry_points == library.ENTRY_POINTS
    # exports.map: TensorRT's entry points and nothing else (no clash with the host's symbols or CUDA runtime)
    assert library.dynamic_symbols(Path(lib.path).read_bytes()) == set(library.ENTRY_POINTS)
    assert lib.build_info["tensorrt_version"] == result.tensorrt_version


def test_an_existing_output_is_kept_without_force(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(BadInputError, match="--force"):
        library.build_plugins((BUILD_ARCH,), tmp_path / "out")


def test_a_failed_build_leaves_the_previous_output(tmp_path):
    _need("cmake", "nvcc")
    source = tmp_path / "src"
    (source / "kernels").mkdir(parents=True)
    (source / "CMakeLists.txt").write_text('cmake_minimum_required(VERSION 3.18)\nmessage(FATAL_ERROR "boom")\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "previous.txt").write_text("kept")
    with pytest.raises(MissingEnvironmentError, match=r"(?s)failed.*boom.*full log: (\S+)") as e:
        library.build_plugins((BUILD_ARCH,), out, force=True, source=source)
    assert (out / "previous.txt").read_text() == "kept"
    log = Path(str(e.value.fix).removeprefix("full log: ").split(" (")[0])
    assert "boom" in log.read_text()


# --- the built library through its IPluginV3 interfaces --------------------------------------------------------------

VALID_FIELDS = {
    "DeployconvSKA": {},
    "DeployconvDeformConv2d": {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": [1],
                               "offset_group": [1]},
    "DeployconvDCNv4": {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1],
                        "group": [4], "group_channels": [16], "offset_scale": [1.0], "remove_center": [0]},
}
FLOAT, HALF, BF16, LINEAR, CHW32 = 0, 1, 7, 0, 3  # nvinfer1::DataType / TensorFormat values


@pytest.fixture
def probe(trt_build):
    """plugin_probe on the library built against one header set (each test runs once per set: 10.3, 10.16, 11.1)."""

    def run(*lines: str) -> list[dict]:
        return run_probe(trt_build.probe, trt_build.library, lines)

    return run


def _fields(name: str, **override) -> list[str]:
    spec = PLUGINS[name]
    values = VALID_FIELDS[name] | override
    kinds = {a.name: a.kind for a in spec.attrs}
    return [f"field {k} {'f' if kinds.get(k) == 'float' else 'i'} {' '.join(map(str, v))}"
            for k, v in values.items() if v is not None]


def _tensor(kind: str, dtype: int, *dims: int, fmt: int = LINEAR) -> str:
    return f"{kind} {dtype} {fmt} {' '.join(map(str, dims))}"


@pytest.mark.slow
@pytest.mark.trt
def test_creators_advertise_the_table(probe):
    creators = {c["name"]: c for c in probe("creators")}
    assert list(creators) == list(PLUGINS)
    wire = {"int": 5, "ints": 5, "float": 1}  # PluginFieldType kINT32 / kFLOAT32
    for name, spec in PLUGINS.items():
        c = creators[name]
        assert (c["kind"], c["version"], c["namespace"]) == ("PLUGIN CREATOR_V3ONE", spec.version, spec.namespace)
        assert c["fields"] == [{"name": a.name, "type": wire[a.kind], "length": a.count()} for a in spec.attrs]


@pytest.mark.slow
@pytest.mark.trt
@pytest.mark.parametrize("name", list(PLUGINS))
def test_plugins_are_created_and_round_trip_their_fields(probe, name):
    created = probe(f"plugin {name}", *_fields(name), "create")[0]
    assert created["ok"], created["log"]
    assert (created["name"], created["version"], created["namespace"], created["interface"]) == (
        name, PLUGINS[name].version, PLUGINS[name].namespace, "PLUGIN")
    assert created["roundtrip"], created  # kBUILD fields == getFieldsToSerialize -> kRUNTIME -> clone
    assert [f["name"] for f in created["serialized"]] == PLUGINS[name].attr_names()


@pytest.mark.slow
@pytest.mark.trt
@pytest.mark.parametrize("name,override,message", [
    ("DeployconvDeformConv2d", {"group": None}, "field 'group' is missing"),
    ("DeployconvDeformConv2d", {"pads": [1, 1, 0, 1]}, "pads must be symmetric"),
    ("DeployconvDeformConv2d", {"strides": [1]}, "field 'strides' has 1 elements, expected 2"),
    ("DeployconvDeformConv2d", {"dilation": [1, 1]}, "unknown field 'dilation'"),
    ("DeployconvDCNv4", {"remove_center": [2]}, "remove_center 0 or 1"),
    ("DeployconvDCNv4", {"group_channels": [0]}, "group_channels must be >= 1"),
])
def test_bad_fields_are_refused_through_the_logger(probe, name, override, message):
    created = probe(f"plugin {name}", *_fields(name, **override), "create")[0]
    assert not created["ok"]
    assert name in created["log"] and message in created["log"]  # via setLoggerFinder's logger, no exception


@pytest.mark.slow
@pytest.mark.trt
def test_a_float_field_given_as_int_is_refused(probe):
    lines = [ln.replace("offset_scale f", "offset_scale i") for ln in _fields("DeployconvDCNv4")]
    created = probe("plugin DeployconvDCNv4", *lines, "create")[0]
    assert not created["ok"] and "'offset_scale' has PluginFieldType 5, expected 1" in created["log"]


SKA_IO = [(HALF, 2, 16, 5, 6), (HALF, 2, 2, 9, 5, 6), (FLOAT, 16), (FLOAT, 16), (HALF, 2, 16, 5, 6)]


@pytest.mark.slow
@pytest.mark.trt
@pytest.mark.parametrize("types,out_type,expected", [
    ((HALF, HALF, FLOAT, FLOAT, HALF), HALF, [True] * 6),  # epilogue: scale/shift fp32 with fp16 data
    ((FLOAT, FLOAT, FLOAT, FLOAT, FLOAT), FLOAT, [True] * 6),
    ((HALF, HALF, HALF, FLOAT, HALF), HALF, [True, True, False, True, True, True]),  # scale must be fp32
    ((HALF, FLOAT, FLOAT, FLOAT, HALF), HALF, [True, False, True, True, True, True]),  # w follows x
    ((BF16, BF16, FLOAT, FLOAT, BF16), BF16, [False, True, True, True, True, True]),  # no bf16 in the table
])
def test_ska_formats(probe, types, out_type, expected):
    tensors = [_tensor("in", t, *io[1:]) for t, io in zip(types, SKA_IO)] + [_tensor("out", out_type, 2, 16, 5, 6)]
    assert probe("plugin DeployconvSKA", *tensors, "formats")[0]["formats"] == expected


@pytest.mark.slow
@pytest.mark.trt
def test_dcnv4_takes_bf16_and_linear_only(probe):
    fields = _fields("DeployconvDCNv4")
    io = [_tensor("in", BF16, 2, 8, 8, 64), _tensor("in", BF16, 2, 8, 8, 112), _tensor("out", BF16, 2, 8, 8, 64)]
    assert probe("plugin DeployconvDCNv4", *fields, *io, "formats")[0]["formats"] == [True] * 3
    assert probe("plugin DeployconvDCNv4", *fields, *io, "types")[0] == {"rc": 0, "type": BF16, "log": ""}
    blocked = [_tensor("in", HALF, 2, 8, 8, 64, fmt=CHW32), *io[1:]]
    assert probe("plugin DeployconvDCNv4", *fields, *blocked, "formats")[0]["formats"][0] is False
    ska_bf16 = probe("plugin DeployconvSKA", _tensor("in", BF16, 2, 16, 5, 6), _tensor("in", BF16, 2, 2, 9, 5, 6),
                     "types")[0]
    assert ska_bf16["rc"] != 0 and "float32 or float16" in ska_bf16["log"]


def _configure(probe, name: str, inputs: list[tuple], output: tuple) -> dict:
    tensors = [_tensor("in", FLOAT, *dims) for dims in inputs] + [_tensor("out", FLOAT, *output)]
    return probe(f"plugin {name}", *_fields(name), *tensors, "configure")[0]


@pytest.mark.slow
@pytest.mark.trt
@pytest.mark.parametrize("name,inputs,output,message", [
    ("DeployconvSKA", [(2, 16, 5, 6), (2, 2, 9, 5, 6)], (2, 16, 5, 6), None),
    ("DeployconvSKA", [(2, 16, 5, 6), (2, 2, 9, 5, 6), (16,), (16,), (2, 16, 5, 6)], (2, 16, 5, 6), None),
    ("DeployconvSKA", [(2, 16, 5, 6), (2, 3, 9, 5, 6)], (2, 16, 5, 6), "G = w.shape[1] dividing C = 16"),
    ("DeployconvSKA", [(2, 16, 5, 6), (2, 2, 9, 5, 6), (8,)], (2, 16, 5, 6), "input 'scale' has shape (8)"),
    ("DeployconvSKA", [(2, 16, 5, 6)], (2, 16, 5, 6), "got 1 inputs"),
    ("DeployconvDeformConv2d", [(2, 8, 7, 7), (4, 8, 3, 3), (2, 18, 7, 7), (4,), (2, 9, 7, 7)], (2, 4, 7, 7), None),
    ("DeployconvDeformConv2d", [(2, 8, 7, 7), (4, 8, 3, 3), (2, 18, 6, 7)], (2, 4, 7, 7), "Ho = 7, Wo = 7"),
    ("DeployconvDeformConv2d", [(2, 8, 7, 7), (4, 8, 3, 3), (2, 18, 7, 7), (4,), (2, 18, 7, 7)], (2, 4, 7, 7),
     "input 'mask'"),
    ("DeployconvDCNv4", [(2, 8, 8, 64), (2, 8, 8, 112)], (2, 8, 8, 64), None),
    ("DeployconvDCNv4", [(-1, 8, 8, 64), (-1, 8, 8, 112)], (-1, 8, 8, 64), None),  # dynamic batch
    ("DeployconvDCNv4", [(2, 8, 8, 64), (2, 8, 8, 108)], (2, 8, 8, 64), "P = ceil(group*K*3/8)*8"),
    ("DeployconvDCNv4", [(2, 8, 8, 48), (2, 8, 8, 112)], (2, 8, 8, 48), "group*group_channels = 64"),
])
def test_shapes_are_checked_at_build_and_run_time(probe, name, inputs, output, message):
    got = _configure(probe, name, inputs, output)
    if message is None:
        assert (got["configure"], got["shape_change"]) == (0, 0), got
    else:
        assert got["configure"] != 0 and message in got["configure_log"], got
        assert got["shape_change"] != 0 and message in got["shape_change_log"], got


@pytest.mark.slow
@pytest.mark.trt
def test_enqueue_mode_is_built_in_and_says_when_there_is_no_gpu(probe):
    """The probe links the CUDA runtime (statically) for its enqueue mode; without a GPU its other modes still run
    and `enqueue` reports the missing device instead of crashing. (With a GPU: tests/gpu/test_plugin_enqueue.py.)"""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: tests/gpu/test_plugin_enqueue.py runs the enqueue mode for real")
    out = probe("plugin DeployconvSKA", _tensor("in", FLOAT, 1, 8, 5, 5), _tensor("in", FLOAT, 1, 2, 9, 5, 5),
                _tensor("out", FLOAT, 1, 8, 5, 5), "shapes", "enqueue /nonexistent")
    assert out[0]["dims"] == [1, 8, 5, 5]
    assert out[1] == {"ok": False, "step": "cuda", "error": "no CUDA device", "log": ""}


def test_kernels_archive_commands_match_cmake_flags(tmp_path):
    """The nvcc-only kernels build (used where CMake is missing, e.g. the GPU check) compiles every kernel with
    CMakeLists.txt's flags: -O3, SASS + PTX for the arch, and no --use_fast_math."""
    from deployconv.plugins.probe import kernels_commands

    cmds, ar = kernels_commands("nvcc", 90, tmp_path, tmp_path / "k.a")
    sources = sorted((REPO / "plugins_cpp" / "kernels").glob("*.cu"))
    assert [c[-3] for c in cmds] == [str(s) for s in sources]
    for c in cmds:
        assert "-O3" in c and "-gencode=arch=compute_90,code=[sm_90,compute_90]" in c
        assert not any("fast_math" in a for a in c)
    assert ar[:3] == ["ar", "rcs", str(tmp_path / "k.a")] and ar[3:] == [c[-1] for c in cmds]
    cmake = (REPO / "plugins_cpp" / "CMakeLists.txt").read_text()
    assert "-O3 -Xcompiler=-O3" in cmake and "--use_fast_math" not in cmake.split("Deliberately NOT")[0]
