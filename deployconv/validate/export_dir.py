"""`deployconv validate DIR`: re-check an exported directory or device bundle.

Hashes against manifest.json, then the model against reference.npz (inputs and the train-form outputs recorded at
export), within the chain's budgets (deployconv.core.target.chain_budget): the ONNX on ONNX Runtime where it is
installed, and engine.plan on TensorRT for TensorRT targets where both exist. Where PyTorch and the model source
are available the whole chain re-runs first. Torch-free otherwise: a Jetson with TensorRT, numpy and cuda-python
validates its engine."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployconv.core.artifacts.manifest import Manifest
from deployconv.core.artifacts.names import ENGINE, MANIFEST, PLUGIN_LIBRARY, REFERENCE
from deployconv.core.errors import BadInputError, CheckFailedError, MissingEnvironmentError
from deployconv.core.fsio import sha256_file
from deployconv.core.reference import load_reference
from deployconv.core.target import chain_budget, onnx_precision, target_of_manifest
from deployconv.models.seeded import create_seeded
from deployconv.plugins.library import plugin_library
from deployconv.runtime.ort import OrtRunner
from deployconv.trust.closed import require_closed
from deployconv.trust.manifest import read_manifest
from deployconv.trust.source import source_sha256
from deployconv.validate.binding import bind_manifest
from deployconv.validate.chain import Stage, engine_runner, reference_stages, runner_stage, torch_stages
from deployconv.validate.io_layout import io_layout_from_manifest
from deployconv.validate.parity import merge_points, run_chain

ONNX_STAGE = "onnx (ort-cpu)"
ENGINE_STAGE = "engine (tensorrt)"


def source_decision(manifest: Manifest, model: str | None, trust_source: bool) -> tuple[str | None, str]:
    """Which model source `validate` may run, or None and why not. Pure apart from hashing a file.

    Nothing named only by a manifest is executed: a user source (`file.py:factory`, `pkg.module:factory`) runs
    when the user names it again (`--model`), or with `--trust-source` when the file's sha256 equals the one the
    export recorded. A zoo name runs deployconv's own code, so it needs neither."""
    if model is not None:
        return model, f"model source {model} named with --model"
    recorded = manifest.model
    if ":" not in recorded:  # deployconv.models.registry.is_user_source, without importing torch
        return recorded, f"zoo model {recorded} (deployconv's own code)"
    if not trust_source:
        return None, (f"the manifest names user code ({recorded}); it is not run unless you name it again "
                      "(--model) or pass --trust-source: checked ONNX against the recorded reference only")
    want = manifest.model_source_sha256
    if want is None:
        return None, (f"--trust-source: the manifest records no sha256 for {recorded} (exported by an older "
                      "deployconv): pass --model to run it; checked ONNX against the recorded reference only")
    try:
        found = source_sha256(recorded)
    except BadInputError as e:
        return None, f"--trust-source: {e.what}: checked ONNX against the recorded reference only"
    if found != want:
        raise CheckFailedError(f"--trust-source: {recorded} is not the source that was exported",
                               details=[f"recorded sha256 {want}", f"found    sha256 {found}"],
                               why="running a changed model source would validate (and execute) other code",
                               fix="restore the exported source, or name the source to run with --model")
    return recorded, f"model source {recorded} (sha256 matches the manifest; --trust-source)"


def _torch_chain(manifest: Manifest, source: str | None, why: str) -> tuple[list[Stage] | None, str]:
    """The PyTorch stages rebuilt from `source` (see source_decision), or None with the reason they cannot be."""
    if source is None:
        return None, why
    if importlib.util.find_spec("torch") is None:
        return None, "torch not installed: checked ONNX against the recorded reference only"
    if not manifest.reproducible:
        return None, "exported from an in-memory module: checked ONNX against the recorded reference only"
    weights = manifest.weights
    if weights:
        if not Path(weights).is_file():
            return None, f"weights {weights} not found here: checked ONNX against the recorded reference only"
        if sha256_file(Path(weights)) != manifest.weights_sha256:
            raise BadInputError(f"weights {weights} differ from the ones exported (sha256)",
                                fix="pass the directory exported from these weights, or re-export")
    from deployconv.reparam import reparameterize  # torch

    train = create_seeded(source, weights, manifest.allow_missing, manifest.init_seed)
    if manifest.io_spec:  # named inputs/outputs: the stages feed and name them as the export did
        layout = io_layout_from_manifest(manifest.io_spec, manifest.init_seed)
        return torch_stages(train, reparameterize(train, probe=layout.small_probe), layout), \
            f"full chain re-run: {why}"
    return torch_stages(train, reparameterize(train)), f"full chain re-run: {why}"


RUNTIME_CHOICES = ("auto", "ort-cpu", "trt")  # the CLI's --runtime names


@dataclass(frozen=True)
class RuntimeChoice:
    """Which runtimes re-run the model against reference.npz, and why the others do not."""

    ort: bool
    trt: bool
    notes: tuple[str, ...]


def choose_runtimes(requested: str, target_runtime: str, engine_present: bool, have_ort: bool,
                    have_trt: bool) -> RuntimeChoice:
    """Pure decision: ONNX Runtime runs the ONNX (the plugin graph's twin where there is one) wherever it is
    installed; TensorRT runs engine.plan for TensorRT targets where both exist. `requested` "ort-cpu"/"trt" insists
    on one (MissingEnvironmentError when it cannot run). A device with only TensorRT (no onnxruntime) validates
    the engine alone; with neither, nothing can run."""
    if requested not in RUNTIME_CHOICES:
        raise BadInputError(f"unknown runtime {requested!r}", fix=f"use one of {', '.join(RUNTIME_CHOICES)}")
    notes: list[str] = []
    want_trt = requested == "trt" or (requested == "auto" and target_runtime == "tensorrt")
    trt = want_trt and engine_present and have_trt
    if want_trt and not trt:
        why = "no engine.plan here (build it: `deployconv build-engine DIR`)" if not engine_present \
            else "TensorRT is not installed"
        if requested == "trt":
            raise MissingEnvironmentError(f"cannot validate with TensorRT: {why}",
                                          fix="build the engine on this device, or use --runtime ort-cpu")
        notes.append(f"engine not checked: {why}")
    ort = have_ort and requested != "trt"
    if requested == "ort-cpu" and not have_ort:
        raise MissingEnvironmentError("cannot validate with ONNX Runtime: onnxruntime is not installed",
                                      fix="pip install onnxruntime (deployconv[ort]), or use --runtime trt")
    if not ort and not trt:
        raise MissingEnvironmentError("nothing here can run the model: neither onnxruntime nor TensorRT (with "
                                      "an engine.plan) is available",
                                      fix="pip install onnxruntime, or build the engine with TensorRT: "
                                          "`deployconv build-engine DIR`")
    return RuntimeChoice(ort, trt, tuple(notes))


def _plugin_libraries(directory: Path, manifest: Manifest, plugins: list[str] | None) -> list[str]:
    if plugins or not manifest.plugins:
        return list(plugins or ())

    local = directory / PLUGIN_LIBRARY  # a device bundle builds its own
    return [plugin_library(local if local.is_file() else None).path]


def reference_parity(directory: Path, manifest: Manifest, target: Any, *, runtime: str = "auto",
                     plugins: list[str] | None = None, torch_chain: list[Stage] | None = None,
                     allow_host_code: bool = False) -> dict[str, Any]:
    """The model in `directory` against its reference.npz (every recorded shape point: min/opt/max), on the
    runtimes `choose_runtimes` picks, after the PyTorch stages `torch_chain` (fp64, fp32, deploy) when given.
    Shared by `validate` and `check`. `allow_host_code`: the user allows a version-compatible engine.plan (it
    runs code embedded in the file)."""
    io_spec = manifest.io_spec
    in_names = [i["name"] for i in io_spec["inputs"]] if io_spec else None
    out_names = list(io_spec["outputs"]) if io_spec else None
    points = load_reference(directory / REFERENCE, in_names, out_names,
                            io=None if io_spec else manifest.io)
    choice = choose_runtimes(runtime, target.runtime, (directory / ENGINE).is_file(),
                             importlib.util.find_spec("onnxruntime") is not None,
                             importlib.util.find_spec("tensorrt") is not None)
    max_batch = None if not target.dynamic_batch else target.max_batch
    runners: list[Any] = []
    model_stages: list[Stage] = []
    try:
        if choice.ort:
            runners.append(OrtRunner(directory / manifest.ort_model))
            model_stages.append((ONNX_STAGE, runner_stage(runners[-1], max_batch, out_names)))
        if choice.trt:
            runners.append(engine_runner(directory / ENGINE, _plugin_libraries(directory, manifest, plugins),
                                         allow_host_code))
            model_stages.append((ENGINE_STAGE, runner_stage(runners[-1], max_batch, out_names)))
        budgets = {ONNX_STAGE: chain_budget(target, onnx_precision(target.precision)),
                   ENGINE_STAGE: chain_budget(target, target.precision)}
        reports = {}
        for p in points:
            inputs = {REFERENCE: {"point": p.point, "shapes": {k: list(v.shape) for k, v in p.inputs.items()}}
                      if io_spec else {"samples": int(p.batch().shape[0])}}
            reports[p.point], _ = run_chain(reference_stages(p.expected_batch(), torch_chain, model_stages),
                                            [p.batch()], chain_budget(target), inputs, stage_budgets=budgets)
        by_point = {p.point: {k: tuple(v.shape) for k, v in p.inputs.items()} for p in points}
        parity = reports[points[0].point] if len(points) == 1 else merge_points(reports, by_point.__getitem__)
    finally:
        for r in runners:
            r.deactivate()
    return {"runtimes": [n for n, _ in model_stages], "notes": list(choice.notes), "parity": parity.to_dict()}


def recheck_dir(directory: Path, *, torch_free: bool = False, runtime: str = "auto",
                plugins: list[str] | None = None, allow_host_code: bool = False, model: str | None = None,
                trust_source: bool = False, expect: str | None = None, trust: Path | None = None) -> dict[str, Any]:
    """Validate `directory`: bind the manifest (--expect/--trust), the closed-manifest check (CheckFailedError
    naming each file on any difference), then the parity chain."""

    directory = Path(directory)
    if not directory.is_dir():
        raise BadInputError(f"{directory} is not a directory", fix="pass the folder written by `deployconv export`")
    bound = bind_manifest(directory, expect, trust)
    manifest = read_manifest(directory)
    integrity = require_closed(directory, manifest)
    target = target_of_manifest(manifest, str(directory / MANIFEST))
    if torch_free:
        chain, mode = None, "--torch-free: checked ONNX against the recorded reference only"
    else:
        chain, mode = _torch_chain(manifest, *source_decision(manifest, model, trust_source))
    result = reference_parity(directory, manifest, target, runtime=runtime, plugins=plugins, torch_chain=chain,
                              allow_host_code=allow_host_code)
    return {"directory": str(directory), "mode": mode, "hash_mismatches": [], "bound": bound,
            "device_outputs": integrity.device_outputs, **result}
