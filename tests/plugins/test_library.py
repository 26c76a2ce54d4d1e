"""deployconv.plugins.library and `deployconv plugins`: locating the library, reading its exported symbols and
CUDA archs, deciding whether a GPU runs it, choosing build archs, and the errors a user sees. Pure decisions are
tested on literal inputs; the ELF reader on tiny shared objects compiled here (and against `nm -D`)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployconv.cli.plugins import plugins_app
from deployconv.core.env import Gpu, GpuProbe
from deployconv.core.errors import BadInputError, MissingEnvironmentError
from deployconv.plugins import library
from deployconv.plugins.library import (
    ENV_VAR,
    LIBRARY_NAME,
    cmake_configure_command,
    dynamic_symbols,
    gpu_fit,
    locate,
    parse_archs_option,
    parse_build_txt,
    parse_cuobjdump_listing,
    plugin_library,
    resolve_build_archs,
)

# --- tiny shared objects -----------------------------------------------------------------------------------------

_LIB_SOURCE = r"""
extern "C" {
__attribute__((visibility("default"))) void* getCreators(int& n) { n = 0; return 0; }
__attribute__((visibility("default"))) void setLoggerFinder(void*) {}
__attribute__((visibility("hidden"))) int hidden_helper() { return 1; }
__attribute__((weak, visibility("default"))) int weak_symbol() { return 2; }
int exported_data = 3;
extern int undefined_elsewhere();
int calls_undefined() { return undefined_elsewhere(); }
}
static int file_local() { return 4; }
int use_local() { return file_local(); }
"""
_EXPORTED = {"getCreators", "setLoggerFinder", "weak_symbol", "exported_data", "calls_undefined", "_Z9use_localv"}


def _compile_so(tmp: Path, source: str, name: str) -> Path:
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: cannot compile a test shared object")
    src = tmp / f"{name}.cpp"
    src.write_text(source)
    out = tmp / f"{name}.so"
    subprocess.run(["g++", "-shared", "-fPIC", "-O0", str(src), "-o", str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def plugin_like_so(tmp_path_factory) -> Path:
    """A shared object exporting TensorRT's two entry points (no plugins inside: only the symbols matter here)."""
    d = tmp_path_factory.mktemp("so")
    return _compile_so(d, _LIB_SOURCE, LIBRARY_NAME.removesuffix(".so"))


@pytest.fixture(scope="module")
def plain_so(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("plain")
    return _compile_so(d, 'extern "C" int something_else() { return 0; }\n', "libplain")


# --- ELF symbols ---------------------------------------------------------------------------------------------------


def test_dynamic_symbols_are_the_defined_exported_ones(plugin_like_so):
    assert dynamic_symbols(plugin_like_so.read_bytes()) == _EXPORTED  # no hidden, static or undefined names


def test_dynamic_symbols_agree_with_nm(plugin_like_so):
    if shutil.which("nm") is None:
        pytest.skip("nm (binutils) not installed: nothing to cross-check against")
    listing = subprocess.run(["nm", "-D", "--defined-only", str(plugin_like_so)], capture_output=True, text=True,
                             check=True).stdout
    assert {line.split()[-1] for line in listing.splitlines() if line.strip()} == _EXPORTED


@pytest.mark.parametrize("data", [b"", b"not an elf file at all, just some text" * 3, b"\x7fELF" + b"\x09" * 60])
def test_dynamic_symbols_refuses_non_elf(data):
    with pytest.raises(ValueError):
        dynamic_symbols(data)


def test_dynamic_symbols_refuses_truncated_elf(plugin_like_so):
    with pytest.raises(ValueError):
        dynamic_symbols(plugin_like_so.read_bytes()[:200])  # header intact, section table cut off


# --- cuobjdump, GPUs, archs ----------------------------------------------------------------------------------------

# The line format of `cuobjdump --list-elf --list-ptx` (CUDA binary utilities).
_CUOBJDUMP = """\
ELF file    1: libdeployconv_plugins.1.sm_87.cubin
ELF file    2: libdeployconv_plugins.2.sm_90.cubin
ELF file    3: libdeployconv_plugins.3.sm_100.cubin
ELF file    4: libdeployconv_plugins.4.sm_87.cubin
ELF file    5: libdeployconv_plugins.5.sm_90a.cubin
PTX file    1: libdeployconv_plugins.1.sm_100.ptx
"""


def test_cuobjdump_listing_is_parsed_into_sorted_unique_archs():
    assert parse_cuobjdump_listing(_CUOBJDUMP) == (("87", "90", "90a", "100"), ("100",))


def test_cuobjdump_listing_without_device_code_is_empty():
    msg = "cuobjdump info    : File 'libz.so.1' does not contain device code\n"
    assert parse_cuobjdump_listing(msg) == ((), ())


@pytest.mark.parametrize("sass,ptx,cc,expected", [
    (["87"], [], "8.7", "sm_87 cubin"),
    (["80"], [], "8.6", "sm_80 cubin (binary compatible)"),  # same major, lower minor
    (["80", "86"], [], "8.7", "sm_86 cubin (binary compatible)"),  # the closest one
    (["86"], [], "8.0", None),  # a newer minor does not run on an older GPU
    (["80"], [], "9.0", None),  # cubins never cross a major
    (["90a"], [], "9.0", "sm_90a cubin"),
    (["90a"], [], "10.0", None),  # arch-specific: exactly 9.0
    (["87"], ["90"], "10.0", "compute_90 PTX, JIT-compiled by the driver at first load"),
    (["87"], ["100"], "9.0", None),  # PTX only JITs forward
    (["87", "110"], ["110"], "11.0", "sm_110 cubin"),
    ([], [], "8.7", None),
])
def test_gpu_fit_follows_cuda_compatibility_rules(sass, ptx, cc, expected):
    assert gpu_fit(sass, ptx, cc) == expected


def test_archs_option():
    assert parse_archs_option("87,90") == (87, 90)
    assert parse_archs_option("sm_90; 87 ,87") == (87, 90)
    for bad in ("8.7", "ampere", "87,,x"):
        with pytest.raises(BadInputError, match="--archs"):
            parse_archs_option(bad)


_NVCC_13 = "sm_75\nsm_80\nsm_86\nsm_87\nsm_88\nsm_89\nsm_90\nsm_100\nsm_110\nsm_103\nsm_120\nsm_121\n"
_NVCC_12_2 = "sm_50\nsm_52\nsm_53\nsm_60\nsm_61\nsm_62\nsm_70\nsm_72\nsm_75\nsm_80\nsm_86\nsm_87\nsm_89\nsm_90\n"


def test_build_archs_default_to_archs_py_filtered_by_nvcc():
    from deployconv.plugins.archs import DEFAULT_ARCHS

    assert resolve_build_archs(None, _NVCC_13) == tuple(sorted(DEFAULT_ARCHS))
    assert resolve_build_archs(None, _NVCC_12_2) == tuple(a for a in sorted(DEFAULT_ARCHS) if a <= 90)
    with pytest.raises(MissingEnvironmentError, match="none of the default"):
        resolve_build_archs(None, "sm_50\nsm_52\n")


def test_requested_archs_must_be_known_to_nvcc():
    assert resolve_build_archs((90, 87), _NVCC_13) == (87, 90)
    with pytest.raises(BadInputError, match=r"sm_110"):
        resolve_build_archs((87, 110), _NVCC_12_2)


def test_cmake_command_carries_archs_and_tensorrt_root(tmp_path):
    cmd = cmake_configure_command(Path("src"), tmp_path, (87, 90), "/opt/cuda/bin/nvcc", "/opt/trt")
    assert cmd[:5] == ["cmake", "-S", "src", "-B", str(tmp_path)]
    assert "-DDEPLOYCONV_CUDA_ARCHS=87;90" in cmd and "-DTENSORRT_ROOT=/opt/trt" in cmd
    assert "-DCMAKE_CUDA_COMPILER=/opt/cuda/bin/nvcc" in cmd
    assert not any(c.startswith("-DTENSORRT_ROOT") for c in cmake_configure_command(Path("s"), tmp_path, (87,), "n", None))


def test_build_txt_is_key_value():
    text = "cuda_archs=87;90\ntensorrt_version=\ntensorrt_missing=NvInfer.h not found (set X=1)\n"
    assert parse_build_txt(text) == {"cuda_archs": "87;90", "tensorrt_version": "",
                                     "tensorrt_missing": "NvInfer.h not found (set X=1)"}


# --- locating and inspecting -------------------------------------------------------------------------------------


def test_locate_prefers_argument_then_env_then_default(tmp_path):
    (tmp_path / "env").mkdir()
    default = tmp_path / "default"
    assert locate(tmp_path / "x.so", {ENV_VAR: "/elsewhere"}, default) == (tmp_path / "x.so", "argument")
    assert locate(None, {ENV_VAR: str(tmp_path / "env")}, default) == (tmp_path / "env" / LIBRARY_NAME, ENV_VAR)
    assert locate(None, {}, default) == (default / LIBRARY_NAME, "default build dir")


def test_not_built_is_a_missing_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(library, "DEFAULT_OUT", tmp_path / "never-built")
    with pytest.raises(MissingEnvironmentError, match=r"(?s)no plugin library.*deployconv plugins build"):
        plugin_library()


def test_a_wrong_path_is_bad_input(monkeypatch, tmp_path):
    with pytest.raises(BadInputError, match="from argument"):
        plugin_library(tmp_path / "nope.so")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope.so"))
    with pytest.raises(BadInputError, match=f"from {ENV_VAR}"):
        plugin_library()


def test_a_file_that_is_no_library_is_bad_input(tmp_path):
    f = tmp_path / LIBRARY_NAME
    f.write_text("hello")
    with pytest.raises(BadInputError, match="not a shared library"):
        plugin_library(f, check_gpu=False)


def test_a_library_without_get_creators_is_bad_input(plain_so):
    with pytest.raises(BadInputError, match="does not export getCreators"):
        plugin_library(plain_so, check_gpu=False)


def test_a_plugin_library_is_described(plugin_like_so, monkeypatch):
    monkeypatch.setattr(library, "_read_archs", lambda p: ((), (), "test"))  # no cuobjdump needed here
    lib = plugin_library(plugin_like_so.parent, check_gpu=False)  # a directory stands for the library in it
    assert lib.path == str(plugin_like_so) and lib.found_via == "argument"
    assert lib.sha256 == hashlib.sha256(plugin_like_so.read_bytes()).hexdigest()
    assert lib.entry_points == ("getCreators", "setLoggerFinder")
    assert library.plugins_to_serialize(lib) == [str(plugin_like_so)]


def test_a_library_this_gpu_cannot_run_is_refused(plugin_like_so, monkeypatch):
    """The decision wiring: archs as cuobjdump would list them, compute capability as nvidia-smi would say."""
    monkeypatch.setattr(library, "_read_archs", lambda p: (("87",), (), "cuobjdump"))
    monkeypatch.setattr(library, "probe_gpus", lambda: GpuProbe((Gpu("H100", "580.1", 90),), "nvidia-smi"))
    with pytest.raises(BadInputError, match=r"(?s)no code for this GPU \(compute capability 9.0\).*--archs 90"):
        plugin_library(plugin_like_so)
    monkeypatch.setattr(library, "probe_gpus", lambda: GpuProbe((Gpu("Orin", "540.4", 87),), "nvidia-smi"))
    assert plugin_library(plugin_like_so).gpu == {"compute_capability": "8.7", "runs": "sm_87 cubin"}


def test_archs_are_unknown_without_cuobjdump(plugin_like_so, monkeypatch):
    monkeypatch.setattr(library, "_tool", lambda name: None)
    lib = plugin_library(plugin_like_so, check_gpu=False)
    assert lib.sass_archs is None and lib.ptx_archs is None and "cuobjdump not found" in lib.archs_note


# --- CLI ---------------------------------------------------------------------------------------------------------


def test_cli_info_json(plugin_like_so, monkeypatch):
    monkeypatch.setattr(library, "_read_archs", lambda p: (("87",), ("87",), "test"))
    result = CliRunner().invoke(plugins_app, ["info", str(plugin_like_so), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["entry_points"] == ["getCreators", "setLoggerFinder"] and data["sass_archs"] == ["87"]


def test_cli_info_table_names_how_to_load(plugin_like_so, monkeypatch):
    monkeypatch.setattr(library, "_read_archs", lambda p: (None, None, "unknown: test"))
    result = CliRunner().invoke(plugins_app, ["info", str(plugin_like_so)])
    assert result.exit_code == 0, result.output
    assert f"--dynamicPlugins={plugin_like_so}" in result.output and "unknown" in result.output


def test_cli_exit_codes(plain_so, monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(library, "DEFAULT_OUT", tmp_path / "never-built")
    assert CliRunner().invoke(plugins_app, ["info"]).exit_code == 3  # not built: missing environment
    assert CliRunner().invoke(plugins_app, ["info", str(plain_so)]).exit_code == 2  # not a plugin library
    result = CliRunner().invoke(plugins_app, ["build", "--archs", "ampere", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--archs" in result.output
