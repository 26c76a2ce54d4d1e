"""`deployconv check DIR`: is this device what the bundle's target needs? Torch-free.

Each check has a name, a status (pass / fail / skip), what it found, what it expected and how to fix it:
bundle file hashes; the TensorRT version against the target's range; the GPU architecture; the Jetson model
and JetPack release; the DLA cores; the plugin library and the archs it was built for. With ONNX Runtime
instead of TensorRT (`runtime="ort"`, automatic for onnxruntime targets) the TensorRT checks are skipped and
the model runs on ONNX Runtime against reference.npz instead (the torch-free path of `deployconv validate`).

Probing (`probe_environment`) is the only part that touches the machine; `environment_checks` decides from
plain data, so every decision is tested on any machine.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deployconv.core.artifacts.manifest import Manifest
from deployconv.core.artifacts.names import DLA_FILE, MANIFEST, PLUGIN_LIBRARY
from deployconv.core.errors import EXIT_CHECK_FAILED, EXIT_MISSING_ENV, BadInputError, DeployconvError
from deployconv.trust.manifest import read_manifest

PASS, FAIL, SKIP = "pass", "fail", "skip"
BUILD_INFO = "deployconv_build.txt"  # written by plugins_cpp/CMakeLists.txt next to the library
DLA_NODES = ("/dev/nvhost-nvdla*", "/dev/nvhost-ctrl-nvdla*")
DEVICE_TREE_MODEL = "/proc/device-tree/model"
TEGRA_RELEASE = "/etc/nv_tegra_release"
ORT_INSTEAD = "checked with ONNX Runtime instead"
# Jetson Linux (L4T) release -> JetPack, from NVIDIA's JetPack archive. (major, minor, first revision) rows,
# the last row whose revision is <= the found one wins.
L4T_JETPACK: tuple[tuple[int, int, int, str], ...] = (
    (35, 2, 0, "5.1"), (35, 3, 0, "5.1.1"), (35, 4, 0, "5.1.2"), (35, 5, 0, "5.1.3"), (35, 6, 0, "5.1.4"),
    (36, 3, 0, "6.0"), (36, 4, 0, "6.1"), (36, 4, 3, "6.2"), (36, 4, 4, "6.2.1"), (38, 2, 0, "7.0"),
)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "pass" | "fail" | "skip"
    found: str
    expected: str
    fix: str = ""
    missing: bool = False  # failed because a piece of the environment is absent (exit 3, not 1)


@dataclass
class CheckReport:
    directory: str
    target: str
    runtime: str  # "tensorrt" | "onnxruntime": what the checks ran against
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        """0 all passed; 3 only missing pieces of the environment failed; 1 any other failure."""
        if not self.failed:
            return 0
        return EXIT_MISSING_ENV if all(c.missing for c in self.failed) else EXIT_CHECK_FAILED

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"], d["exit_code"] = self.passed, self.exit_code
        return d


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
    plugin_archs: tuple[int, ...] | None = None  # SASS it carries; None: library found, archs unknown
    plugin_ptx: tuple[int, ...] | None = None  # PTX it carries; None: unknown (CMake puts the highest arch's)
    plugin_detail: str = ""


# --- pure decisions ---------------------------------------------------------------------------------------------

def version_tuple(text: str) -> tuple[int, ...]:
    m = re.match(r"\s*(\d+(?:\.\d+)*)", str(text))
    return tuple(int(p) for p in m.group(1).split(".")) if m else ()


def version_in_range(found: str, lo: str, hi: str | None) -> bool:
    """lo <= found, and found <= hi compared on hi's own components (hi "8.5" admits 8.5.2)."""
    f = version_tuple(found)
    low = version_tuple(lo)
    pad = max(len(f), len(low))
    if f + (0,) * (pad - len(f)) < low + (0,) * (pad - len(low)):
        return False
    if hi:
        high = version_tuple(hi)
        return f[:len(high)] <= high
    return True


def jetpack_for(l4t: tuple[int, int, int]) -> str | None:
    """The JetPack release of a Jetson Linux (L4T) version, None when not in the table."""
    best = None
    for major, minor, rev, jp in L4T_JETPACK:
        if (major, minor) == l4t[:2] and rev <= l4t[2]:
            best = jp
    return best


def jetpack_matches(found: str, allowed: tuple[str, ...]) -> bool:
    """`found` is one of `allowed`: "6.1" admits 6.1 and 6.1.x; "7.2.2+" admits 7.2.2 and every later release."""
    return any(version_tuple(found) >= version_tuple(a[:-1]) if a.endswith("+")
               else (found == a or found.startswith(a + ".")) for a in allowed)


def runs_on(cap: int, sass: tuple[int, ...], ptx: tuple[int, ...]) -> bool:
    """Can a GPU of compute capability `cap` run a library with these cubins and PTX? A cubin runs on GPUs of
    its major version and a minor >= its own; PTX is JIT-compiled for any GPU >= its arch."""
    return any(s // 10 == cap // 10 and s <= cap for s in sass) or any(p <= cap for p in ptx)


def _tensorrt_fix(target: Any) -> str:
    dev = target.device
    if dev is not None and dev.family.startswith("jetson"):
        jp = "/".join(dev.jetpack) or "the target's"
        how = (f"TensorRT comes with JetPack {jp} (`sudo apt install nvidia-jetpack` installs it); use the system python3, "
               "pip cannot install tensorrt on Jetson")
    else:
        lo = target.tensorrt.min_version if target.tensorrt else "10"
        how = f"pip install 'tensorrt>={lo}'"
    return how + "; or run `deployconv check DIR --runtime ort` to check with ONNX Runtime instead"


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


def _sm(archs: tuple[int, ...]) -> str:
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
    ptx = env.plugin_ptx if env.plugin_ptx is not None else (max(env.plugin_archs),) if env.plugin_archs else ()
    if not want or not all(runs_on(c, env.plugin_archs, ptx) for c in want):
        return Check("plugins", FAIL, found, expected, build)
    return Check("plugins", PASS, found, expected)


JETSON_FAMILIES = ("orin", "thor", "xavier")


def _check_platform(target: Any, env: Environment, ort: bool) -> Check:
    """This Jetson's JetPack and TensorRT against deployconv.core.support_matrix (and DLA, when the target uses it)."""
    from deployconv.core.support_matrix import device_verdict

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


# --- probing: the only part that touches the machine ------------------------------------------------------------

def _run(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def parse_compute_caps(text: str) -> tuple[int, ...]:
    """`nvidia-smi --query-gpu=compute_cap --format=csv,noheader` lines ("8.7") -> (87,)."""
    caps = []
    for line in text.splitlines():
        m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", line)
        if m:
            caps.append(int(m.group(1)) * 10 + int(m.group(2)))
    return tuple(caps)


def parse_tegra_release(text: str) -> tuple[int, int, int] | None:
    """`# R36 (release), REVISION: 4.0, ...` -> (36, 4, 0)."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def parse_build_info(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _probe_tensorrt() -> tuple[str | None, str]:
    if importlib.util.find_spec("tensorrt") is None:
        return None, "the tensorrt Python module is not importable"
    try:
        import tensorrt
    except Exception as e:  # a broken install (missing libnvinfer) is as good as none, and says why
        return None, f"import tensorrt failed: {e}"
    return str(tensorrt.__version__), ""


def _probe_gpu() -> tuple[tuple[int, ...], str]:
    smi = shutil.which("nvidia-smi")
    text = _run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"]) if smi else None
    caps = parse_compute_caps(text or "")
    if caps:
        return caps, "nvidia-smi"
    try:  # cuda-python (Jetsons without nvidia-smi)
        try:
            from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
        except ImportError:
            from cuda import cudart  # type: ignore[import-not-found,no-redef]
        err, count = cudart.cudaGetDeviceCount()
        found = []
        for dev in range(int(count) if int(err) == 0 else 0):
            _, major = cudart.cudaDeviceGetAttribute(cudart.cudaDeviceAttr.cudaDevAttrComputeCapabilityMajor, dev)
            _, minor = cudart.cudaDeviceGetAttribute(cudart.cudaDeviceAttr.cudaDevAttrComputeCapabilityMinor, dev)
            found.append(int(major) * 10 + int(minor))
        if found:
            return tuple(found), "cuda-python"
    except Exception:  # no cuda-python, no driver: fall through to "none visible"
        pass
    return (), "no NVIDIA GPU visible (nvidia-smi" + (" found none" if smi else " not installed") + \
        ", cuda-python found none)"


def _read(path: str) -> str | None:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return data.replace(b"\x00", b"").decode(errors="replace").strip()


def _probe_jetson() -> tuple[str | None, tuple[int, int, int] | None]:
    model = _read(DEVICE_TREE_MODEL)
    release = _read(TEGRA_RELEASE)
    return (model if model and "jetson" in model.lower() else None,
            parse_tegra_release(release) if release else None)


def _probe_dla(trt_found: bool) -> tuple[int | None, str]:
    nodes = sorted({p for pattern in DLA_NODES for p in glob.glob(pattern)})
    indices = {m.group(1) for p in nodes if (m := re.search(r"nvdla(\d+)$", p))}
    if trt_found:
        try:
            import tensorrt as trt

            cores = int(trt.Builder(trt.Logger(trt.Logger.ERROR)).num_DLA_cores)
            return cores, "TensorRT builder.num_DLA_cores"
        except Exception as e:  # no CUDA device for the builder: fall back to the device nodes
            if indices:
                return len(indices), f"{', '.join(nodes)} (TensorRT builder failed: {e})"
            return None, f"TensorRT builder failed: {e}"
    if indices:
        return len(indices), ", ".join(nodes)
    return None, f"no {' or '.join(DLA_NODES)}"


def _arch_numbers(archs: Any) -> tuple[int, ...]:
    """("87", "90a") -> (87, 90): an arch-specific variant runs on its base arch's GPU."""
    return tuple(int(m.group()) for a in archs if (m := re.match(r"\d+", str(a))))


def _archs_from_build_info(lib: Path) -> tuple[int, ...] | None:
    text = _read(str(lib.parent / BUILD_INFO))
    if not text:
        return None
    return tuple(int(a) for a in re.findall(r"\d+", parse_build_info(text).get("cuda_archs", ""))) or None


def _probe_plugins(directory: Path) -> tuple[str | None, tuple[int, ...] | None, tuple[int, ...] | None, str]:
    """(library, SASS archs, PTX archs, detail): the bundle's own build (plugins/build) first, else deployconv's
    usual places, inspected by deployconv.plugins.library where it exists (cuobjdump reads the real archs),
    else by the deployconv_build.txt CMake writes next to the library."""
    local = directory / PLUGIN_LIBRARY
    try:
        from deployconv.plugins.library import plugin_library
    except ImportError:  # an older deployconv without the library module: only the bundle's own build counts
        if not local.is_file():
            return None, None, None, f"no {PLUGIN_LIBRARY}"
        return str(local), _archs_from_build_info(local), None, ""
    try:
        lib = plugin_library(local if local.is_file() else None, check_gpu=False)
    except DeployconvError as e:
        return None, None, None, (f"{PLUGIN_LIBRARY} unusable: {e.what}" if local.is_file()
                                  else f"no {PLUGIN_LIBRARY}; elsewhere: {e.what}")
    path = Path(lib.path)
    sass = _arch_numbers(lib.sass_archs) if lib.sass_archs is not None else _archs_from_build_info(path)
    ptx = _arch_numbers(lib.ptx_archs) if lib.ptx_archs is not None else None
    return str(path), sass or None, ptx, ""


def _probe_onnxruntime() -> str | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    from importlib import metadata

    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown version"


def probe_environment(directory: Path) -> Environment:
    trt, trt_detail = _probe_tensorrt()
    caps, gpu_detail = _probe_gpu()
    model, l4t = _probe_jetson()
    dla, dla_detail = _probe_dla(trt is not None)
    lib, archs, ptx, lib_detail = _probe_plugins(Path(directory))
    return Environment(tensorrt=trt, tensorrt_detail=trt_detail, onnxruntime=_probe_onnxruntime(),
                       compute_caps=caps, gpu_detail=gpu_detail, jetson_model=model, l4t=l4t, dla_cores=dla,
                       dla_detail=dla_detail, plugin_library=lib, plugin_archs=archs, plugin_ptx=ptx,
                       plugin_detail=lib_detail)


# --- the front function -----------------------------------------------------------------------------------------

def bind_manifest(directory: Path, expect: str | None, trust: Path | None) -> list[str]:
    """Check the pin and/or the signature of DIR/manifest.json before anything in it is used; what was bound."""
    from deployconv.trust.pin import check_pin, parse_expect
    from deployconv.trust.signing import verify_signature

    bound = []
    if expect is not None:
        bound.append(f"manifest sha256 {check_pin(directory, parse_expect(expect))} (pinned)")
    if trust is not None:
        bound.append(f"signed by key sha256 {verify_signature(directory, Path(trust))}")
    return bound


def _target_of(directory: Path, manifest: Manifest) -> Any:
    """The bundle's target: built-in by name, else the full definition the manifest records (user targets travel
    with it). report.json is not consulted: only the manifest is verified (and pinned or signed)."""
    from deployconv.core.target import get_target, target_from_dict

    try:
        return get_target(manifest.target)  # the schema admits names only, never a .toml path
    except BadInputError:
        spec = manifest.target_spec
        if not spec:
            raise
        data = {k: v for k, v in spec.items() if v is not None and k != "source"}
        return target_from_dict(data, f"{directory / MANIFEST} (target_spec)")


def _hash_check(directory: Path, manifest: Manifest, fresh: bool = False) -> Check:
    """The closed manifest (deployconv.trust.closed): every file listed, every listed file present and equal."""
    from deployconv.trust.closed import verify_closed

    found = verify_closed(directory, manifest, fresh=fresh)
    bad = found.problems
    expected = f"exactly the {found.listed} files listed in manifest.json, each with its sha256"
    built = (f"; built here, not covered by the manifest: {', '.join(_short(found.device_outputs))}"
             if found.device_outputs else "")
    if bad:
        return Check("files", FAIL, "; ".join(bad[:10]) + (f"; ... {len(bad) - 10} more" if len(bad) > 10 else ""),
                     expected, "copy the bundle again (or unpack the .tar.gz again into an empty folder); never "
                               "edit files inside it")
    return Check("files", PASS, f"all {found.listed} match, nothing unlisted{built}", expected)


def _short(paths: list[str]) -> list[str]:
    """Device outputs by top folder: plugins/build/ (12 files), engine.plan."""
    groups: dict[str, int] = {}
    for p in paths:
        key = "/".join(p.split("/")[:2]) + "/" if p.count("/") >= 2 else p
        groups[key] = groups.get(key, 0) + 1
    return [k if n == 1 and not k.endswith("/") else f"{k} ({n} files)" for k, n in groups.items()]


def _parity_check(directory: Path, manifest: Manifest, target: Any, env: Environment) -> Check:
    budget = target.budget
    expected = f"ONNX Runtime vs reference.npz: max abs/scale <= {budget.max_abs_rel_scale:g}, cosine >= " \
               f"{budget.min_cosine}"
    plugins = manifest.plugin_names
    if plugins and not manifest.has_ort_twin:
        return Check("parity", SKIP, f"the ONNX has plugin nodes ({', '.join(plugins)}) ONNX Runtime cannot run",
                     expected, "check parity with TensorRT: `deployconv validate .` after build-engine")
    if env.onnxruntime is None:
        return Check("parity", SKIP, "onnxruntime not installed (see the onnxruntime check)", expected)
    from deployconv.validate.export_dir import reference_parity

    try:
        parity = reference_parity(directory, manifest, target, runtime="ort")["parity"]
    except BadInputError:
        raise  # a malformed reference or model is bad input (exit 2), not a failed check
    except DeployconvError as e:
        return Check("parity", FAIL, e.what, expected, e.fix)
    m = parity["stages"][-1].get("vs_previous") or {}
    twin = f"{manifest.ort_model} (the plugin graph's ONNX Runtime twin): " if plugins else ""
    found = twin + f"max abs/scale {m.get('max_abs_rel_scale', float('nan')):.2e}, cosine {m.get('cosine', float('nan')):.8f}"
    if not parity["passed"]:
        failures = "; ".join(f for s in parity["stages"] for f in s.get("failures", []))
        return Check("parity", FAIL, f"{found} ({failures})", expected,
                     "the model on this device disagrees with the recorded reference: re-export, and see "
                     "`deployconv validate . --json`")
    return Check("parity", PASS, found, expected)


def _dla_placement(directory: Path) -> Check | None:
    path = directory / DLA_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return _placement(data)
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as e:
        return Check("dla placement", FAIL, f"dla.json is unreadable ({type(e).__name__})", "dla.json as bundled",
                     "copy the bundle again")


def _placement(data: dict[str, Any]) -> Check:
    c = data.get("counts", {})
    gpu = [r["name"] for r in data.get("layers", []) if r["device"] == "GPU"]
    found = f"{c.get('DLA', 0)} of {c.get('total', 0)} layers on DLA" + (
        f"; on the GPU: {', '.join(gpu[:8])}{' ...' if len(gpu) > 8 else ''}" if gpu else "")
    if gpu and not data.get("gpu_fallback", True):
        return Check("dla placement", FAIL, found, "every layer on DLA (GPU fallback is off)",
                     "set [tensorrt] gpu_fallback = true, or change the layers named in dla.json")
    return Check("dla placement", PASS, found, "layers DLA cannot run fall back to the GPU (dla.json says why)")


def check_bundle(directory: Path, *, runtime: str = "auto",
                 probe: Callable[[Path], Environment] = probe_environment, expect: str | None = None,
                 trust: Path | None = None, fresh: bool = False) -> CheckReport:
    """Check the bundle (or export) in `directory` against this machine. `runtime`: "auto" (ONNX Runtime for
    onnxruntime targets, TensorRT otherwise), "trt" or "ort". `probe` is how the environment is read.
    `expect` (a manifest sha256) and `trust` (an Ed25519 public key) bind the manifest first: CheckFailedError
    when it is not the pinned or signed one. `fresh`: device-built outputs count as unlisted files."""
    directory = Path(directory)
    if runtime not in ("auto", "trt", "ort"):
        raise BadInputError(f"unknown runtime {runtime!r}", fix="use auto, trt or ort")
    if not directory.is_dir():
        raise BadInputError(f"{directory} is not a directory", fix="pass a folder made by `deployconv bundle`")
    bound = bind_manifest(directory, expect, trust)
    manifest = read_manifest(directory)
    checks = [_hash_check(directory, manifest, fresh)]
    if bound:
        checks.insert(0, Check("manifest", PASS, "; ".join(bound), "the manifest pinned (--expect) or signed "
                                                                   "(--trust) on the workstation"))
    target = _target_of(directory, manifest)
    ort = runtime == "ort" or (runtime == "auto" and target.runtime == "onnxruntime")
    env = probe(directory)
    checks += environment_checks(target, manifest, env, ort)
    files = next(c for c in checks if c.name == "files")
    if ort and files.status == FAIL:
        checks.append(Check("parity", SKIP, "not run: the files check failed (the model may not be the exported "
                                            "one)", "the model against reference.npz", files.fix))
    elif ort:
        checks.append(_parity_check(directory, manifest, target, env))
    else:
        checks.append(Check("parity", SKIP, "needs the engine", "the engine against reference.npz",
                            "after `deployconv build-engine`, run `deployconv validate .`"))
    placement = _dla_placement(directory)
    if placement is not None:
        checks.append(placement)
    return CheckReport(str(directory), target.name, "onnxruntime" if ort else "tensorrt", checks)
