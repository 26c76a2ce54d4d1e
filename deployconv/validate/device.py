"""`deployconv check DIR`: is this device what the bundle's target needs? Torch-free.

The front function and the bundle's own checks (file hashes, parity on ONNX Runtime, DLA placement). The
environment checks are decided from plain data in deployconv.validate.device_checks; probing the machine is
deployconv.validate.device_probe (over deployconv.core.env); binding the manifest to a pin or signature is
deployconv.validate.binding. With ONNX Runtime instead of TensorRT (`runtime="ort-cpu"`, automatic for onnxruntime
targets) the TensorRT checks are skipped and the model runs on ONNX Runtime against reference.npz instead (the
torch-free path of `deployconv validate`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deployconv.core.artifacts.manifest import Manifest
from deployconv.core.artifacts.names import DLA_FILE, MANIFEST
from deployconv.core.errors import EXIT_CHECK_FAILED, EXIT_MISSING_ENV, BadInputError, DeployconvError
from deployconv.core.target import get_target, target_from_dict
from deployconv.trust.closed import verify_closed
from deployconv.trust.manifest import read_manifest
from deployconv.validate.binding import bind_manifest
from deployconv.validate.device_checks import FAIL, PASS, SKIP, Check, Environment, environment_checks
from deployconv.validate.device_probe import probe_environment
from deployconv.validate.export_dir import RUNTIME_CHOICES, reference_parity

__all__ = ["FAIL", "PASS", "SKIP", "Check", "CheckReport", "Environment", "check_bundle", "environment_checks",
           "probe_environment"]


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


def _target_of(directory: Path, manifest: Manifest) -> Any:
    """The bundle's target: built-in by name, else the full definition the manifest records (user targets travel
    with it). report.json is not consulted: only the manifest is verified (and pinned or signed)."""
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
    try:
        parity = reference_parity(directory, manifest, target, runtime="ort-cpu")["parity"]
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
    onnxruntime targets, TensorRT otherwise), "trt" or "ort-cpu". `probe` is how the environment is read.
    `expect` (a manifest sha256) and `trust` (an Ed25519 public key) bind the manifest first: CheckFailedError
    when it is not the pinned or signed one. `fresh`: device-built outputs count as unlisted files."""
    directory = Path(directory)
    if runtime not in RUNTIME_CHOICES:
        raise BadInputError(f"unknown runtime {runtime!r}", fix=f"use one of {', '.join(RUNTIME_CHOICES)}")
    if not directory.is_dir():
        raise BadInputError(f"{directory} is not a directory", fix="pass a folder made by `deployconv bundle`")
    bound = bind_manifest(directory, expect, trust)
    manifest = read_manifest(directory)
    checks = [_hash_check(directory, manifest, fresh)]
    if bound:
        checks.insert(0, Check("manifest", PASS, "; ".join(bound), "the manifest pinned (--expect) or signed "
                                                                   "(--trust) on the workstation"))
    target = _target_of(directory, manifest)
    ort = runtime == "ort-cpu" or (runtime == "auto" and target.runtime == "onnxruntime")
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
