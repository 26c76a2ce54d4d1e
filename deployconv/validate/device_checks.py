"""The device checks of `deployconv check`, decided from plain data: what the target needs against what
probing found (`Environment`). Pure, so every decision is tested on any machine; probing is
deployconv.validate.device_probe, the front function deployconv.validate.device.

Each check has a name, a status (pass / fail / skip), what it found, what it expected and how to fix it:
the TensorRT version against the target's range; the GPU architecture; the Jetson model and JetPack release;
the DLA cores; the plugin library and the archs it was built for. With ONNX Runtime (`ort=True`) the
TensorRT checks are skipped and onnxruntime is required instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deployconv.core.artifacts.manifest import Manifest
from deployconv.core.artifacts.names import PLUGIN_LIBRARY
from deployconv.core.compat import arch_key, runs_on, version_in_range
from deployconv.core.env import JETSON_FAMILIES, TEGRA_RELEASE, jetpack_for, jetpack_matches
from deployconv.core.support_matrix import device_verdict

PASS, FAIL, SKIP = "pass", "fail", "skip"
BUILD_INFO = "deployconv_build.txt"  # written by plugins_cpp/CMakeLists.txt next to the library
ORT_INSTEAD = "checked with ONNX Runtime instead"

Arch = int | str  # 87, or "90a" when an arch-specific variant is meant


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "pass" | "fail" | "skip"
    found: str
    expected: str
    fix: str = ""
    missing: bool = False  # failed because a piece of the environment is absent (exit 3, not 1)


@dataclass(frozen=True)
class Environment:
    """What probing found on this machine, as plain data."""

    tensorrt: str | None = None  # version
    tensorrt_detail: str = ""
    onnxruntime: str | None = None
    compute_caps: tuple[int, ...] = ()  # 87 for sm_87, one per GPU
    gpu_detail: str = ""
    jetson_model: str | None = None  # /proc/device-tree/model
    l4t: tuple[int, int, int] | None = None  # (36, 4, 0) from /etc/nv_tegra_release
    dla_cores: int | None = None
    dla_detail: str = ""
    plugin_library: str | None = None
    plugin_archs: tuple[Arch, ...] | None = None  # SASS it carries (suffix kept: "90a"); None: archs unknown
    plugin_ptx: tuple[Arch, ...] | None = None  # PTX it carries; None: unknown (CMake puts the highest arch's)
    plugin_detail: str = ""


def _tensorrt_fix(target: Any) -> str:
    dev = target.device
    if dev is not None and dev.family.startswith("jetson"):
        jp = "/".join(dev.jetpack) or "the target's"
        how = (f"TensorRT comes with JetPack {jp} (`sudo apt install nvidia-jetpack` installs it); use the system python3, "
               "pip cannot install tensorrt on Jetson")
    else:
        lo = target.tensorrt.min_version if target.tensorrt else "10"
        how = f"pip install 'tensorrt>={lo}'"
    return how + "; or run `deployconv check DIR --runtime ort-cpu` to check with ONNX Runtime instead"


def _skip_trt(name: str, found: str, expected: str) -> Check:
    return Check(name, SKIP, f"{found}; {ORT_INSTEAD}", expected)


def _check_tensorrt(target: Any, env: Environment, ort: bool) -> Check:
    spec = target.tensorrt
    expected = (f"TensorRT {spec.min_version}" + (f" to {spec.max_version}.x" if spec.max_version else " or newer")
                if spec else "TensorRT")
    found = f"TensorRT {env.tensorrt}" if env.tensorrt else f"not installed{f' ({env.tensorrt_detail})' if env.tensorrt_detail else ''}"
    if ort:
        return _skip_trt("tensorrt", found, expected)
    if env.tensorrt is None:
        return Check("tensorrt", FAIL, found, expected, _tensorrt_fix(target), missing=True)
    if spec and not version_in_range(env.tensorrt, spec.min_version, spec.max_version):
        return Check("tensorrt", FAIL, found, expected,
                     f"install a TensorRT in that range, or export for a target made for TensorRT {env.tensorrt}")
    return Check("tensorrt", PASS, found, expected)


def _expected_archs(target: Any, uses_plugins: bool) -> tuple[int, ...]:
    if target.device is not None and target.device.sm:
        return tuple(target.device.sm)
    if uses_plugins and target.tensorrt is not None:
        return tuple(target.tensorrt.plugin_archs)
    return ()


def _sm(archs: tuple[Arch, ...]) -> str:
    return ", ".join(f"sm_{a}" for a in archs)


def _check_gpu(target: Any, env: Environment, ort: bool, uses_plugins: bool) -> Check:
    archs = _expected_archs(target, uses_plugins)
    expected = _sm(archs) if archs else "an NVIDIA GPU"
    found = _sm(env.compute_caps) if env.compute_caps else (env.gpu_detail or "no NVIDIA GPU visible")
    if ort:
        return _skip_trt("gpu", found, expected)
    if not env.compute_caps:
        return Check("gpu", FAIL, found, expected,
                     "check the driver (`nvidia-smi`; on Jetson, `cat /proc/device-tree/model`)", missing=True)
    if archs and not set(env.compute_caps) & set(archs):
        return Check("gpu", FAIL, found, expected, f"run on a {expected} device, or export for a target for "
                                                   f"{_sm(env.compute_caps)}")
    return Check("gpu", PASS, found, expected)


def _check_jetson(target: Any, env: Environment, ort: bool) -> Check:
    dev = target.device
    family = dev.family.removeprefix("jetson-")
    expected = f"{dev.family}" + (f", JetPack {'/'.join(dev.jetpack)}" if dev.jetpack else "")
    model = env.jetson_model
    l4t = ".".join(map(str, env.l4t)) if env.l4t else None
    jp = jetpack_for(env.l4t) if env.l4t else None
    found = (model or "not a Jetson (no Jetson in /proc/device-tree/model)") + \
        (f", L4T R{l4t}" + (f" = JetPack {jp}" if jp else "") if l4t else "")
    if ort:
        return _skip_trt("jetson", found, expected)
    if model is None:
        return Check("jetson", FAIL, found, expected, "run on the Jetson the target is for, or export for a target "
                                                      "made for this machine")
    if family not in model.lower():
        return Check("jetson", FAIL, found, expected, f"this target is for Jetson {family.capitalize()}; choose a "
                                                      "target for this Jetson")
    if not dev.jetpack:
        return Check("jetson", PASS, found, expected)
    if env.l4t is None:
        return Check("jetson", FAIL, found, expected, f"{TEGRA_RELEASE} is missing or unreadable: flash a JetPack "
                                                      "release (SDK Manager)", missing=True)
    if jp is None:
        return Check("jetson", SKIP, found + " (a JetPack release deployconv does not know)", expected,
                     f"compare `cat {TEGRA_RELEASE}` with NVIDIA's JetPack archive by hand")
    if not jetpack_matches(jp, tuple(dev.jetpack)):
        return Check("jetson", FAIL, found, expected, f"flash JetPack {'/'.join(dev.jetpack)}, or choose a target "
                                                      f"for JetPack {jp}")
    return Check("jetson", PASS, found, expected)


def _check_dla(target: Any, env: Environment, ort: bool) -> Check:
    core = target.tensorrt.dla_core
    expected = f"DLA core {core} (at least {core + 1} core(s))"
    found = f"{env.dla_cores} DLA core(s)" if env.dla_cores is not None else "no DLA found"
    found += f" ({env.dla_detail})" if env.dla_detail else ""
    if ort:
        return _skip_trt("dla", found, expected)
    if not env.dla_cores:
        return Check("dla", FAIL, found, expected, "this device has no DLA (Thor, desktop GPUs): use the GPU target "
                                                   "(without -dla), or run on a Jetson Orin/Xavier", missing=True)
    if env.dla_cores <= core:
        return Check("dla", FAIL, found, expected, f"use a DLA core below {env.dla_cores} ([tensorrt] dla_core)")
    return Check("dla", PASS, found, expected)


def _check_plugins(target: Any, env: Environment, ort: bool, plugins: list[str]) -> Check:
    archs = tuple(target.tensorrt.plugin_archs) if target.tensorrt else ()
    expected = f"{PLUGIN_LIBRARY} registering {', '.join(plugins)}, built for " + \
        (_sm(env.compute_caps) if env.compute_caps else _sm(archs) or "this GPU")
    if env.plugin_library is None:
        found = env.plugin_detail or "no plugin library built"
    else:
        built = _sm(env.plugin_archs) if env.plugin_archs else "unknown archs"
        found = f"{env.plugin_library} (built for {built})"
    if ort:
        return _skip_trt("plugins", found, expected)
    build = (f"cmake -S plugins -B plugins/build -DDEPLOYCONV_CUDA_ARCHS=\"{';'.join(map(str, archs))}\" "
             "-DTENSORRT_ROOT=/usr && cmake --build plugins/build -j (see README.md)")
    if env.plugin_library is None:
        return Check("plugins", FAIL, found, expected, build, missing=True)
    if env.plugin_archs is None:
        return Check("plugins", SKIP, found, expected, f"put cuobjdump (CUDA toolkit) on PATH, or rebuild with CMake "
                                                       f"so {BUILD_INFO} records the archs")
    want = env.compute_caps or archs
    # Unknown PTX: plugins_cpp/CMakeLists.txt embeds it for the highest arch built.
    ptx = env.plugin_ptx if env.plugin_ptx is not None else \
        (max(env.plugin_archs, key=arch_key),) if env.plugin_archs else ()
    if not want or not all(runs_on(c, env.plugin_archs, ptx) for c in want):
        return Check("plugins", FAIL, found, expected, build)
    return Check("plugins", PASS, found, expected)


def _check_platform(target: Any, env: Environment, ort: bool) -> Check:
    """This Jetson's JetPack and TensorRT against deployconv.core.support_matrix (and DLA, when the target uses it)."""
    model = (env.jetson_model or "").lower()
    family = next((f"jetson-{f}" for f in JETSON_FAMILIES if f in model), None)
    jp = jetpack_for(env.l4t) if env.l4t else None
    expected = "a JetPack / TensorRT" + (" / DLA" if target.uses_dla else "") + " combination NVIDIA supports " \
        "(deployconv/core/support_matrix.py)"
    missing = [what for what, have in (("Jetson model unknown", family), ("JetPack release unknown", jp),
                                       ("TensorRT not installed", env.tensorrt)) if not have]
    if ort or missing:
        found = "not checked: " + (ORT_INSTEAD if ort else "; ".join(missing))
        return Check("platform", SKIP, found, expected)
    verdict = device_verdict(family, jp, env.tensorrt, wants_dla=target.uses_dla, model=env.jetson_model or "")
    status = SKIP if verdict.ok is None else PASS if verdict.ok else FAIL
    return Check("platform", status, verdict.found, verdict.expected, verdict.fix)


def environment_checks(target: Any, manifest: Manifest, env: Environment, ort: bool) -> list[Check]:
    """The environment checks for `target` from probed facts. Pure."""
    plugins = manifest.plugin_names
    checks = [_check_tensorrt(target, env, ort), _check_gpu(target, env, ort, bool(plugins))]
    if target.device is not None and target.device.family.startswith("jetson"):
        checks.append(_check_jetson(target, env, ort))
        checks.append(_check_platform(target, env, ort))
    if target.uses_dla:
        checks.append(_check_dla(target, env, ort))
    if plugins:
        checks.append(_check_plugins(target, env, ort, plugins))
    if ort:
        checks.append(Check("onnxruntime", PASS if env.onnxruntime else FAIL,
                            f"onnxruntime {env.onnxruntime}" if env.onnxruntime else "not installed",
                            "onnxruntime (to run model.onnx against reference.npz)",
                            "" if env.onnxruntime else "pip install onnxruntime (or deployconv[ort])",
                            missing=not env.onnxruntime))
    return checks
