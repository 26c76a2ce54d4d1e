"""Where TensorRT's C++ headers are, and which release they are.

The plugin library needs only TensorRT's headers (never libnvinfer), so it can be built and checked where TensorRT
cannot be installed. Order: $TENSORRT_ROOT; the header sets of a project checkout's `../shared/third_party/
tensorrt-headers/<ver>/include` (10.3 = JetPack 6, 10.16, 11.1: NVIDIA's public headers, Apache-2.0); the system
locations TensorRT's packages use. Pure apart from reading files; torch-free.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_HEADERS = REPO_ROOT.parent / "shared" / "third_party" / "tensorrt-headers"
SHARED_VERSIONS = ("10.3", "10.16", "11.1")  # JetPack 6's TensorRT, the last 10.x, the newest 11.x
SYSTEM_INCLUDES = (Path("/usr/include/x86_64-linux-gnu"), Path("/usr/include/aarch64-linux-gnu"),
                   Path("/usr/include"))


@dataclass(frozen=True)
class TrtHeaders:
    include: Path  # the directory holding NvInfer.h
    version: str  # "10.16.0", read from NvInferVersion.h
    found_via: str  # "TENSORRT_ROOT" | "../shared (10.16)" | "system"

    @property
    def root(self) -> Path:
        """What CMake's -DTENSORRT_ROOT takes (it looks under include/)."""
        return self.include.parent

    @property
    def major_minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


def header_version(include: Path) -> str:
    """"10.16.0" from NvInferVersion.h: 10.0-10.12 define NV_TENSORRT_<PART> as numbers, later releases through
    TRT_<PART>_ENTERPRISE. Raises ValueError when the file or a part is missing."""
    path = include / "NvInferVersion.h"
    if not path.is_file():
        raise ValueError(f"{include} has no NvInferVersion.h")
    text = path.read_text(errors="replace")
    parts = []
    for part in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(rf"#define TRT_{part}_ENTERPRISE (\d+)", text) or re.search(
            rf"#define NV_TENSORRT_{part} (\d+)", text)
        if m is None:
            raise ValueError(f"{path} defines no TensorRT {part.lower()} version")
        parts.append(m.group(1))
    return ".".join(parts)


def _at(include: Path, via: str) -> TrtHeaders | None:
    if not (include / "NvInfer.h").is_file():
        return None
    try:
        return TrtHeaders(include, header_version(include), via)
    except ValueError:
        return None


def shared_headers(shared: Path = SHARED_HEADERS) -> dict[str, TrtHeaders]:
    """{"10.3": headers, ...} for every header set present under ../shared (empty without it)."""
    found = {}
    for ver in SHARED_VERSIONS:
        h = _at(shared / ver / "include", f"../shared ({ver})")
        if h is not None:
            found[ver] = h
    return found


def find_headers(env: Mapping[str, str], shared: Path = SHARED_HEADERS,
                 system: tuple[Path, ...] = SYSTEM_INCLUDES) -> TrtHeaders | None:
    """The one header set a single build uses: $TENSORRT_ROOT/include, else ../shared's newest, else the system's."""
    if env.get("TENSORRT_ROOT"):
        return _at(Path(env["TENSORRT_ROOT"]) / "include", "TENSORRT_ROOT")
    in_shared = shared_headers(shared)
    if in_shared:
        return in_shared[SHARED_VERSIONS[-1]] if SHARED_VERSIONS[-1] in in_shared else list(in_shared.values())[-1]
    return next((h for h in (_at(p, "system") for p in system) if h is not None), None)


def all_headers(env: Mapping[str, str], shared: Path = SHARED_HEADERS,
                system: tuple[Path, ...] = SYSTEM_INCLUDES) -> list[TrtHeaders]:
    """Every header set to check against: $TENSORRT_ROOT's alone when set (the user chose it), else all of
    ../shared's, else the system's."""
    if env.get("TENSORRT_ROOT"):
        one = find_headers(env, shared, system)
        return [one] if one else []
    in_shared = list(shared_headers(shared).values())
    if in_shared:
        return in_shared
    one = find_headers(env, shared, system)
    return [one] if one else []


def missing_reason(env: Mapping[str, str], shared: Path = SHARED_HEADERS) -> str:
    """Why no headers were found, and how to get them (a skip reason / error text)."""
    if env.get("TENSORRT_ROOT"):
        return (f"TENSORRT_ROOT={env['TENSORRT_ROOT']} has no include/NvInfer.h with NvInferVersion.h: point it at a "
                "TensorRT 10+ install or header set")
    return (f"TensorRT headers not found: TENSORRT_ROOT is unset, {shared} does not exist (a checkout without "
            "../shared beside it) and the system has no NvInfer.h; set TENSORRT_ROOT=<dir with include/NvInfer.h>")
