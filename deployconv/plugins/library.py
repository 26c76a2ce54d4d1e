"""Build, locate, inspect and register libdeployconv_plugins.so, the TensorRT plugin library of plugins_cpp/.

Front doors: `plugin_library(path=None)` finds the built library and says what it is (sha256, CUDA archs, entry
points, whether this GPU can run it); `build_plugins(archs, out, force)` runs CMake into a fresh directory that
replaces `out` only when the build succeeded. Loading into TensorRT is `deployconv.runtime.plugin_loading` (once per
process).

Every decision (where to look, what cuobjdump's listing means, which GPU runs which arch, which CMake command
to run, whether an ELF file exports TensorRT's entry points) is a pure function tested on CPU; the subprocess
and TensorRT calls at the edges only carry those decisions out. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deployconv.core.artifacts.names import PLUGIN_LIBRARY_NAME
from deployconv.core.compat import arch_key, gpu_fit
from deployconv.core.env import available_cpus, probe_gpus
from deployconv.core.errors import BadInputError, MissingEnvironmentError
from deployconv.core.fsio import atomic_dir, refuse_overwrite, sha256_file
from deployconv.core.version import __version__
from deployconv.plugins.archs import DEFAULT_ARCHS, listed_archs, supported_archs
from deployconv.plugins.table import PLUGINS

LIBRARY_NAME = PLUGIN_LIBRARY_NAME
KERNELS_NAME = "libdeployconv_kernels.a"
BUILD_INFO_NAME = "build_info.json"
BUILD_TXT_NAME = "deployconv_build.txt"  # CMakeLists.txt writes it next to what it built
ENV_VAR = "DEPLOYCONV_PLUGINS"
# What TensorRT's IPluginRegistry::loadLibrary / trtexec --dynamicPlugins call in a plugin library (TensorRT 10+).
ENTRY_POINTS = ("getCreators", "setLoggerFinder")
REQUIRED_ENTRY_POINT = "getCreators"

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIR = REPO_ROOT / "plugins_cpp"
DEFAULT_OUT = REPO_ROOT / "build" / "plugins"  # ignored by git (build/)

_BUILD_HINT = "run `deployconv plugins build` (CUDA toolkit + TensorRT 10+ headers via TENSORRT_ROOT)"


# --- results ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginLibrary:
    """A located plugin library and what could be read from it without loading it."""

    path: str
    found_via: str  # "argument" | "DEPLOYCONV_PLUGINS" | "default build dir"
    sha256: str
    size_bytes: int
    entry_points: tuple[str, ...]  # which of ENTRY_POINTS it exports
    sass_archs: tuple[str, ...] | None  # cubins it carries ("87", "90"); None: not known (no cuobjdump)
    ptx_archs: tuple[str, ...] | None
    archs_note: str  # how the archs were read, or why they are unknown
    gpu: dict | None = None  # {"compute_capability": "8.7", "runs": "..."} when a GPU was found and checked
    build_info: dict | None = None  # build_info.json written next to it by build_plugins, when present

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BuildResult:
    out_dir: str
    built: str  # "kernels+tensorrt" | "kernels"
    archs: tuple[int, ...]
    cuda_version: str
    tensorrt_version: str | None
    tensorrt_missing: str | None  # why the TensorRT part was skipped
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256
    seconds: float = 0.0
    library: str | None = None  # path of libdeployconv_plugins.so when built

    def to_dict(self) -> dict:
        return asdict(self)


# --- locating (pure) -------------------------------------------------------------------------------------------


def locate(path: str | Path | None, env: Mapping[str, str], default_dir: Path = DEFAULT_OUT) -> tuple[Path, str]:
    """(library path, how it was found): explicit `path`, else $DEPLOYCONV_PLUGINS, else the default build dir.
    A directory stands for the library inside it."""
    if path is not None:
        p, via = Path(path), "argument"
    elif env.get(ENV_VAR):
        p, via = Path(env[ENV_VAR]), ENV_VAR
    else:
        return Path(default_dir) / LIBRARY_NAME, "default build dir"
    p = p.expanduser()
    if p.is_dir():
        p = p / LIBRARY_NAME
    return p, via


# --- ELF dynamic symbols (pure) --------------------------------------------------------------------------------

_SHT_DYNSYM = 11


def dynamic_symbols(data: bytes) -> set[str]:
    """Names an ELF shared object exports: defined GLOBAL/WEAK/GNU_UNIQUE entries of its .dynsym with default or
    protected visibility. What `nm -D --defined-only` lists, read without binutils. Raises ValueError for non-ELF
    data."""
    if data[:4] != b"\x7fELF" or len(data) < 52:
        raise ValueError("not an ELF file")
    wide = {1: False, 2: True}.get(data[4])
    endian = {1: "<", 2: ">"}.get(data[5])
    if wide is None or endian is None:
        raise ValueError("unknown ELF class or byte order")
    if wide:
        shoff, = struct.unpack_from(endian + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(endian + "HH", data, 0x3A)
        sh_fmt, sym_fmt = endian + "IIQQQQIIQQ", endian + "IBBHQQ"
    else:
        shoff, = struct.unpack_from(endian + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(endian + "HH", data, 0x2E)
        sh_fmt, sym_fmt = endian + "IIIIIIIIII", endian + "IIIBBH"
    if shoff == 0 or shoff + shnum * shentsize > len(data):
        raise ValueError("no readable section headers")
    sections = [struct.unpack_from(sh_fmt, data, shoff + i * shentsize) for i in range(shnum)]
    names: set[str] = set()
    for sh in sections:
        sh_type, sh_offset, sh_size, sh_link, sh_entsize = sh[1], sh[4], sh[5], sh[6], sh[9]
        if sh_type != _SHT_DYNSYM or sh_entsize == 0:
            continue
        strtab = sections[sh_link]
        str_off, str_size = strtab[4], strtab[5]
        for off in range(sh_offset, sh_offset + sh_size, sh_entsize):
            fields = struct.unpack_from(sym_fmt, data, off)
            if wide:
                st_name, st_info, st_other, st_shndx = fields[0], fields[1], fields[2], fields[3]
            else:
                st_name, st_info, st_other, st_shndx = fields[0], fields[3], fields[4], fields[5]
            binding, visibility = st_info >> 4, st_other & 0x3
            if st_shndx == 0 or binding not in (1, 2, 10) or visibility not in (0, 3) or st_name >= str_size:
                continue
            end = data.index(b"\0", str_off + st_name)
            names.add(data[str_off + st_name : end].decode("utf-8", "replace"))
    return names


# --- CUDA archs (pure) -----------------------------------------------------------------------------------------

_CUOBJDUMP_ENTRY = re.compile(r"^(ELF|PTX) file\s+\d+:\s*\S*?\.sm_(\d+[a-z]?)\.(?:cubin|ptx)\s*$", re.MULTILINE)


def parse_cuobjdump_listing(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(SASS archs, PTX archs) from `cuobjdump --list-elf --list-ptx` output, whose lines read
    `ELF file    1: libdeployconv_plugins.1.sm_87.cubin` / `PTX file    1: ....sm_90.ptx`. Sorted, unique."""
    found: dict[str, set[str]] = {"ELF": set(), "PTX": set()}
    for kind, arch in _CUOBJDUMP_ENTRY.findall(text):
        found[kind].add(arch)
    return tuple(sorted(found["ELF"], key=arch_key)), tuple(sorted(found["PTX"], key=arch_key))


def parse_archs_option(text: str) -> tuple[int, ...]:
    """`--archs 87,90` (also "sm_87;90") -> (87, 90). Raises BadInputError naming the bad part."""
    out = []
    for part in re.split(r"[,;\s]+", text.strip()):
        m = re.fullmatch(r"(?:sm_|compute_)?(\d{2,3})", part)
        if not m:
            raise BadInputError(f"bad CUDA arch {part!r} in --archs {text!r}",
                                fix="give compute capabilities without the dot, comma separated: --archs 87,90")
        out.append(int(m.group(1)))
    return tuple(sorted(set(out)))


def resolve_build_archs(requested: Sequence[int] | None, nvcc_listing: str) -> tuple[int, ...]:
    """The archs to build: `requested` (each must be known to this nvcc) or archs.py's defaults this nvcc knows."""
    known = listed_archs(nvcc_listing)
    if requested is None:
        chosen = tuple(supported_archs(nvcc_listing))
        if not chosen:
            raise MissingEnvironmentError(
                "this nvcc supports none of the default CUDA archs",
                why=f"defaults {list(DEFAULT_ARCHS)}; nvcc lists {sorted(known) or 'nothing'}",
                fix="pass --archs with an arch your nvcc supports, or install a newer CUDA toolkit")
        return chosen
    unknown = sorted(set(requested) - known)
    if unknown:
        raise BadInputError(f"this nvcc cannot compile for sm_{', sm_'.join(map(str, unknown))}",
                            why=f"`nvcc --list-gpu-code` lists {sorted(known)}",
                            fix="drop those archs, or use a CUDA toolkit that supports them")
    return tuple(sorted(set(requested)))


# --- CMake (pure) ----------------------------------------------------------------------------------------------


def cmake_configure_command(source: Path, build_dir: Path, archs: Sequence[int], nvcc: str,
                            tensorrt_root: str | None) -> list[str]:
    cmd = ["cmake", "-S", str(source), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
           f"-DCMAKE_CUDA_COMPILER={nvcc}", f"-DDEPLOYCONV_CUDA_ARCHS={';'.join(map(str, archs))}"]
    if tensorrt_root:
        cmd.append(f"-DTENSORRT_ROOT={tensorrt_root}")
    return cmd


def cmake_build_command(build_dir: Path, jobs: int) -> list[str]:
    return ["cmake", "--build", str(build_dir), "--parallel", str(jobs)]


def parse_build_txt(text: str) -> dict[str, str]:
    """deployconv_build.txt (written by CMakeLists.txt): KEY=VALUE per line."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# --- environment (impure edges) --------------------------------------------------------------------------------


def _tool(name: str) -> str | None:
    """A CUDA tool on PATH or in the toolkit's bin/ (on Jetson, cuobjdump is in /usr/local/cuda/bin, off PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and (Path(root) / "bin" / name).is_file():
            return str(Path(root) / "bin" / name)
    return None


def _run(cmd: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)


def _read_archs(path: Path) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None, str]:
    tool = _tool("cuobjdump")
    if tool is None:
        return None, None, "unknown: cuobjdump not found (it comes with the CUDA toolkit)"
    proc = _run([tool, "--list-elf", "--list-ptx", str(path)])
    sass, ptx = parse_cuobjdump_listing(proc.stdout)
    if proc.returncode != 0 and not (sass or ptx):
        return None, None, f"unknown: cuobjdump failed: {(proc.stderr or proc.stdout).strip()[:200]}"
    return sass, ptx, f"read with {tool}"


# --- front doors -----------------------------------------------------------------------------------------------


def plugin_library(path: str | Path | None = None, *, check_gpu: bool = True) -> PluginLibrary:
    """Find libdeployconv_plugins.so (`path`, $DEPLOYCONV_PLUGINS or the default build dir) and inspect it.

    Raises MissingEnvironmentError when nothing was built at the default place, BadInputError when a given
    path is missing, is no ELF library, lacks TensorRT's `getCreators` entry point, or carries no code this
    machine's GPU can run (checked only where nvidia-smi reports a GPU and cuobjdump lists the archs)."""
    lib, via = locate(path, os.environ, DEFAULT_OUT)
    if not lib.is_file():
        if via == "default build dir":
            raise MissingEnvironmentError(f"no plugin library at {lib}", why="the plugins have not been built",
                                          fix=f"{_BUILD_HINT}, or set {ENV_VAR}=/path/to/{LIBRARY_NAME}")
        raise BadInputError(f"no plugin library at {lib} (from {via})", fix=f"point it at a built {LIBRARY_NAME}")
    data = lib.read_bytes()
    try:
        symbols = dynamic_symbols(data)
    except ValueError as e:
        raise BadInputError(f"{lib} is not a shared library TensorRT can load", why=str(e),
                            fix=f"point at {LIBRARY_NAME} from `deployconv plugins build`") from None
    if REQUIRED_ENTRY_POINT not in symbols:
        raise BadInputError(f"{lib} does not export {REQUIRED_ENTRY_POINT}",
                            why="TensorRT 10+ loads a plugin library through its extern \"C\" getCreators; "
                                "without it no plugin gets registered",
                            fix=f"rebuild: {_BUILD_HINT}")
    sass, ptx, note = _read_archs(lib)
    info_file = lib.parent / BUILD_INFO_NAME
    build_info = json.loads(info_file.read_text()) if info_file.is_file() else None
    gpu = None
    gpus = probe_gpus().gpus if check_gpu else ()
    cc = f"{gpus[0].compute_capability // 10}.{gpus[0].compute_capability % 10}" if gpus else None
    if cc is not None and sass is not None and ptx is not None:
        runs = gpu_fit(sass, ptx, cc)
        if runs is None:
            raise BadInputError(
                f"{lib} has no code for this GPU (compute capability {cc})",
                why=f"it carries cubins for sm_{', sm_'.join(sass) or '-'} and PTX for "
                    f"compute_{', compute_'.join(ptx) or '-'}",
                fix=f"deployconv plugins build --archs {cc.replace('.', '')} --force")
        gpu = {"compute_capability": cc, "runs": runs}
    return PluginLibrary(path=str(lib), found_via=via, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                         entry_points=tuple(e for e in ENTRY_POINTS if e in symbols), sass_archs=sass,
                         ptx_archs=ptx, archs_note=note, gpu=gpu, build_info=build_info)


def build_plugins(archs: Sequence[int] | None = None, out: str | Path | None = None, force: bool = False, *,
                  tensorrt_root: str | None = None, jobs: int | None = None,
                  source: Path = SOURCE_DIR) -> BuildResult:
    """Configure and build plugins_cpp/ with CMake; `out` (default build/plugins) receives the library, the kernels
    archive, the kernel header and build_info.json. The CMake tree lives in a temporary directory and `out` is
    replaced in one rename after a successful build, so a failed build leaves the previous one intact.
    The TensorRT library is built where TensorRT 10+ headers are found (`tensorrt_root` or $TENSORRT_ROOT or the
    system), otherwise only the kernels: the result says which and why."""
    out_dir = Path(out) if out is not None else DEFAULT_OUT
    refuse_overwrite(out_dir, force)  # before minutes of compiling, not after
    tools = {"cmake": shutil.which("cmake"), "nvcc": _tool("nvcc")}
    missing = [name for name, found in tools.items() if found is None]
    if missing:
        raise MissingEnvironmentError(f"cannot build the plugins: {' and '.join(missing)} not found",
                                      fix="install CMake >= 3.18 and the CUDA toolkit (nvcc on PATH or CUDA_HOME)")
    if not (source / "CMakeLists.txt").is_file():
        raise MissingEnvironmentError(f"no plugin sources at {source}",
                                      why="building needs a source checkout of deployconv (plugins_cpp/)")
    nvcc = str(tools["nvcc"])
    chosen = resolve_build_archs(archs, _run([nvcc, "--list-gpu-code"]).stdout)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    build_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.cmake-", dir=out_dir.parent))
    trt_root = tensorrt_root or os.environ.get("TENSORRT_ROOT")
    start = time.perf_counter()
    for cmd in (cmake_configure_command(source, build_dir, chosen, nvcc, trt_root),
                cmake_build_command(build_dir, jobs or available_cpus())):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            log = build_dir / "deployconv_build.log"
            log.write_text(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise MissingEnvironmentError(f"`{' '.join(cmd[:2])}` failed while building the plugins", why=tail,
                                          fix=f"full log: {log} (the build tree is kept there)")
    seconds = time.perf_counter() - start
    info = parse_build_txt((build_dir / BUILD_TXT_NAME).read_text())
    products = [info["kernels"]] + ([info["plugins"]] if info.get("plugins") else [])
    with atomic_dir(out_dir, force) as tmp:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would hide the library from a TensorRT service user
        for name in [*products, BUILD_TXT_NAME]:  # the .txt keeps the layout of a plain CMake build dir
            shutil.copy2(build_dir / name, tmp / name)
        (tmp / "include").mkdir()
        shutil.copy2(source / "kernels" / "deployconv_kernels.h", tmp / "include" / "deployconv_kernels.h")
        files = {name: sha256_file(tmp / name) for name in products}
        result = BuildResult(
            out_dir=str(out_dir), built="kernels+tensorrt" if info.get("plugins") else "kernels", archs=chosen,
            cuda_version=info.get("cuda_version", ""), tensorrt_version=info.get("tensorrt_version") or None,
            tensorrt_missing=info.get("tensorrt_missing") or None, files=files, seconds=round(seconds, 1),
            library=str(out_dir / info["plugins"]) if info.get("plugins") else None)
        record = result.to_dict() | {
            "deployconv_version": __version__,
            "plugins": [{"name": s.name, "version": s.version, "namespace": s.namespace} for s in PLUGINS.values()],
        }
        (tmp / BUILD_INFO_NAME).write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(build_dir, ignore_errors=True)
    return result


def plugins_to_serialize(lib: PluginLibrary) -> list[str]:
    """For `IBuilderConfig.plugins_to_serialize`: version-compatible engines then carry the library inside."""
    return [lib.path]

