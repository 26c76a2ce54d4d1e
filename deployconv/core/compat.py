"""Compatibility rules, stated once: does a version fall in a target's range, and does a GPU run this CUDA code.
Pure and torch-free, so targets, `check`, the plugin library inspection and `build-engine` all decide alike.

CUDA's fit rules (CUDA C++ Programming Guide, "Binary Compatibility" / "PTX Compatibility"; the Blackwell /
CUDA 12.9 note on family-specific features):
- a cubin for sm_XY runs on a GPU of compute capability X.Z for every Z >= Y (same major, not a later major);
- an arch-specific cubin sm_XYa runs on X.Y only (no later minor, no later major);
- a family-specific cubin sm_XYf runs on X.Z for Z >= Y (like a plain cubin; it is never forward-compatible
  across majors either);
- PTX compute_XY is JIT-compiled by the driver for any GPU of X.Y or newer; arch-specific PTX compute_XYa only
  for X.Y, family-specific compute_XYf only within major X (minor >= Y).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from deployconv.core.errors import BadInputError

Version = tuple[int, int, int]
OPEN = 10**6  # "any" component: an upper bound "10.7" covers every 10.7.x

_VERSION = re.compile(r"\s*(\d+(?:\.\d+)*)")
_ARCH = re.compile(r"(?:sm_|compute_)?(\d+)([af]?)")


# --- versions ---------------------------------------------------------------------------------------------------

def version_parts(text: str) -> tuple[int, ...]:
    """Every numeric component: "10.3.0.30" -> (10, 3, 0, 30), "8.6-ga" -> (8, 6); () when none."""
    m = _VERSION.match(str(text))
    return tuple(int(p) for p in m.group(1).split(".")) if m else ()


def parse_version(text: str) -> Version:
    """"10.3", "10.3.0.26", "11.4.1" -> (major, minor, patch); BadInputError when unreadable."""
    parts = version_parts(text)
    if not parts:
        raise BadInputError(f"cannot read a version from {text!r}", fix="write it as MAJOR.MINOR[.PATCH]")
    padded = parts[:3] + (0,) * (3 - len(parts[:3]))
    return padded[0], padded[1], padded[2]


def upper_bound(text: str) -> Version:
    """The top of `text` as an upper bound: "10.7" -> 10.7.x, "11" -> 11.x.x."""
    parts = list(version_parts(text)[:3])
    if not parts:
        raise BadInputError(f"cannot read a version from {text!r}", fix="write it as MAJOR.MINOR[.PATCH]")
    return tuple(parts + [OPEN] * (3 - len(parts)))  # type: ignore[return-value]


def version_in_range(found: str, lo: str | None, hi: str | None) -> bool:
    """lo <= found <= hi, both inclusive and optional. The upper bound is compared on its own components, so
    hi "8.5" admits 8.5.2 and "10.3.0" admits 10.3.0.30; the lower bound on every component ("10.3.0.26"
    refuses 10.3.0.20)."""
    f = version_parts(found)
    if lo:
        low = version_parts(lo)
        pad = max(len(f), len(low))
        if f + (0,) * (pad - len(f)) < low + (0,) * (pad - len(low)):
            return False
    if hi:
        high = version_parts(hi)
        return f[:len(high)] <= high
    return True


# --- GPU architectures ------------------------------------------------------------------------------------------

def arch_key(arch: str | int) -> tuple[int, str]:
    """"90a" / "sm_90a" / 90 -> (90, "a"); the suffix is "" (plain), "a" (arch-specific) or "f" (family)."""
    m = _ARCH.fullmatch(str(arch).strip())
    if not m:
        raise ValueError(f"not a CUDA arch: {arch!r}")
    return int(m.group(1)), m.group(2)


def compute_capability(cc: str | int) -> int:
    """"8.7" or 87 -> 87 (major * 10 + minor)."""
    if isinstance(cc, int):
        return cc
    m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", cc)
    if not m:
        raise ValueError(f"not a compute capability: {cc!r}")
    return int(m.group(1)) * 10 + int(m.group(2))


def cubin_runs_on(arch: str | int, cc: str | int) -> bool:
    """Does a cubin (SASS) for `arch` run on a GPU of compute capability `cc`? See the module docstring."""
    number, suffix = arch_key(arch)
    device = compute_capability(cc)
    if suffix == "a":
        return number == device
    return number // 10 == device // 10 and number <= device


def ptx_runs_on(arch: str | int, cc: str | int) -> bool:
    """Can the driver JIT-compile PTX for `arch` on a GPU of compute capability `cc`?"""
    number, suffix = arch_key(arch)
    device = compute_capability(cc)
    if suffix == "a":
        return number == device
    if suffix == "f":
        return number // 10 == device // 10 and number <= device
    return number <= device


def gpu_fit(sass: Iterable[str | int], ptx: Iterable[str | int], cc: str | int) -> str | None:
    """How a GPU of compute capability `cc` runs a binary with these cubins and PTX (the closest cubin first,
    then the newest PTX), or None when it cannot."""
    device = compute_capability(cc)
    for arch in sorted(sass, key=arch_key, reverse=True):
        if cubin_runs_on(arch, device):
            exact = arch_key(arch)[0] == device
            return f"sm_{arch} cubin" + ("" if exact else " (binary compatible)")
    for arch in sorted(ptx, key=arch_key, reverse=True):
        if ptx_runs_on(arch, device):
            return f"compute_{arch} PTX, JIT-compiled by the driver at first load"
    return None


def runs_on(cc: str | int, sass: Iterable[str | int], ptx: Iterable[str | int]) -> bool:
    """gpu_fit as a yes/no."""
    return gpu_fit(sass, ptx, cc) is not None
