"""CUDA architectures the plugin kernels are built for: one list, shared by the compile test, CMake and the
plugin build. Pure (no torch, no CUDA): the nvcc query is the caller's job, its output is parsed here.

Default archs and why: sm_87 Jetson Orin (JetPack 5/6), sm_89 Ada (L4, RTX 40), sm_90 Hopper (H100/H200),
sm_100 Blackwell datacenter (B200), sm_110 Jetson Thor (JetPack 7, CUDA 13). An nvcc that does not know one
of them (sm_110 needs CUDA 13; CUDA 13 dropped nothing on this list) simply builds the others.
"""

from __future__ import annotations

import re

DEFAULT_ARCHS: tuple[int, ...] = (87, 89, 90, 100, 110)

_ARCH = re.compile(r"\b(?:compute|sm)_(\d+)[a-z]?\b")


def listed_archs(nvcc_list_output: str) -> set[int]:
    """The architectures named in `nvcc --list-gpu-arch` (compute_XX lines) or `--list-gpu-code` (sm_XX)."""
    return {int(m.group(1)) for m in _ARCH.finditer(nvcc_list_output)}


def supported_archs(nvcc_list_output: str, wanted: tuple[int, ...] = DEFAULT_ARCHS) -> list[int]:
    """`wanted` (default DEFAULT_ARCHS) filtered to those the nvcc that printed `nvcc_list_output` knows, in
    ascending order. Architecture-specific variants (sm_90a) count as their base arch."""
    known = listed_archs(nvcc_list_output)
    return sorted(a for a in set(wanted) if a in known)


def gencode_flags(archs: list[int] | tuple[int, ...]) -> list[str]:
    """nvcc flags building SASS for each arch (`-gencode arch=compute_XX,code=sm_XX`), plus PTX for the newest
    so that a later GPU can JIT-compile it."""
    flags: list[str] = []
    for a in sorted(set(archs)):
        flags += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    if archs:
        newest = max(archs)
        flags += ["-gencode", f"arch=compute_{newest},code=compute_{newest}"]
    return flags


def cmake_cuda_architectures(archs: list[int] | tuple[int, ...]) -> str:
    """The same list as CMake's CUDA_ARCHITECTURES wants it: "87-real;89-real;...;110" (PTX for the newest)."""
    ordered = sorted(set(archs))
    return ";".join([f"{a}-real" for a in ordered[:-1]] + [str(a) for a in ordered[-1:]])
