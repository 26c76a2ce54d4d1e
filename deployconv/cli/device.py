"""`deployconv bundle` and `deployconv check`: pack an export for a device, and check a device against it.

`check` is torch-free; `bundle` runs the export and so needs the export extras (imported when it runs).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from deployconv.cli.options import (
    DimsOpt,
    ExpectOpt,
    ForceOpt,
    InputsOpt,
    JsonOpt,
    ModelOpt,
    TrustOpt,
    WeightsOpt,
    out_option,
    runtime_option,
    target_option,
)
from deployconv.core.console import err, out, print_json, table
from deployconv.core.errors import CheckFailedError, MissingEnvironmentError
from deployconv.core.fsio import refuse_overwrite
from deployconv.pipeline.bundle import BundleResult, make_bundle, tarball_for
from deployconv.trust.pin import pin_path
from deployconv.trust.signing import load_private_key
from deployconv.validate.device import CheckReport, check_bundle
from deployconv.validate.export_dir import RUNTIME_CHOICES

CHECK_RUNTIMES = RUNTIME_CHOICES  # what deployconv.validate can run

BundleOutOpt = Annotated[Path, out_option("Bundle folder to write; OUT.tar.gz is written next to it.",
                                          show_default=False)]
BundleTargetOpt = Annotated[str, target_option(
    "Deployment target (see `deployconv targets`), or a target .toml file.", show_default=False)]
SignOpt = Annotated[Path | None, typer.Option(
    "--sign", help="Ed25519 private key (`deployconv keygen`): sign manifest.json (manifest.json.sig in the bundle).",
    show_default=False)]
FreshOpt = Annotated[bool, typer.Option(
    "--fresh", help="A just-unpacked bundle: device-built outputs (plugins/build/, engine.plan) count as unlisted "
                    "files too.")]
CheckRuntimeOpt = Annotated[str, runtime_option(
    "check", CHECK_RUNTIMES, auto="ONNX Runtime for onnxruntime targets, else TensorRT (ort-cpu: check with ONNX "
                                  "Runtime where TensorRT is not installed)")]


def bundle_cmd(
    model: ModelOpt,
    target: BundleTargetOpt,
    out_dir: BundleOutOpt,
    weights: WeightsOpt = None,
    sign: SignOpt = None,
    inputs: InputsOpt = None,
    dims: DimsOpt = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Export a model for a device and pack everything the device needs (ONNX, reference outputs, plugin
    sources, the torch-free deployconv, README with the exact commands) into OUT/ and OUT.tar.gz. Prints the
    manifest's sha256 (also in OUT.manifest.sha256) for `deployconv check --expect` on the device."""
    _bundle(model, target=target, out_dir=out_dir, weights=weights, json_out=json_out, force=force, sign=sign,
            inputs=tuple(inputs or ()), dims=tuple(dims or ()))


def check_cmd(
    directory: Annotated[Path, typer.Argument(help="A folder made by `deployconv bundle` (or `deployconv export`).",
                                              show_default=False)],
    runtime: CheckRuntimeOpt = "auto",
    expect: ExpectOpt = None,
    trust: TrustOpt = None,
    fresh: FreshOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Check this device against a bundle: exactly the files the manifest lists (hashes, nothing added or
    missing), TensorRT version, GPU arch, JetPack, DLA, plugin library; with ONNX Runtime, the model's outputs
    against reference.npz. --expect/--trust bind the manifest itself. Exit 0 all passed, 1 a check failed,
    2 bad input, 3 something is not installed."""
    _check(directory, runtime=runtime, json_out=json_out, expect=expect, trust=trust,
           fresh=fresh)


def _bundle(model: str, *, target: str, out_dir: Path, weights: Path | None, json_out: bool, force: bool,
            sign: Path | None = None, inputs: tuple[str, ...] = (), dims: tuple[str, ...] = ()) -> None:
    from deployconv.pipeline.export import ExportOptions, export  # torch, onnx

    refuse_overwrite(out_dir, force)  # before the export: fail in a second, not after a minute
    refuse_overwrite(tarball_for(out_dir), force)
    refuse_overwrite(pin_path(out_dir), force)
    if sign is not None:
        load_private_key(sign)
    with tempfile.TemporaryDirectory(prefix="deployconv-bundle-") as tmp:
        export_dir = Path(tmp) / "export"
        with err.status("exporting") as status:
            result = export(model, target, export_dir, options=ExportOptions(weights=weights, bench=False,
                                                                               inputs=inputs, dims=dims),
                            progress=lambda s: status.update(f"[bold]{model}[/] -> {target}: {s}"))
        if not result.passed:
            p = result.report["parity"]
            raise CheckFailedError(f"parity failed at stage {p['broke_at']}: no bundle written",
                                   why="; ".join(next(s for s in p["stages"] if not s["passed"])["failures"]),
                                   fix=f"`deployconv export --model {model} --target {target}` shows the whole "
                                       "report (first_divergence names the first layer out of budget)")
        bundle = make_bundle(export_dir, out_dir, force=force, sign_key=sign)
    if json_out:
        print_json(bundle.to_dict())
    else:
        render_bundle(bundle)


def render_bundle(bundle: BundleResult) -> None:
    out.print(f"bundle: {bundle.out} ({bundle.files} files)")
    out.print(f"archive: {bundle.tarball} (sha256 {bundle.tar_sha256})")
    out.print(f"manifest sha256: {bundle.manifest_sha256} (in {bundle.pin_file}); on the device: "
              f"deployconv check {bundle.out.name} --expect {bundle.manifest_sha256}", soft_wrap=True)
    if bundle.signer:
        out.print(f"signed: manifest.json.sig by key sha256 {bundle.signer}; on the device: "
                  f"deployconv check {bundle.out.name} --trust KEY.pub", soft_wrap=True)
    if bundle.dla:
        c = bundle.dla["counts"]
        out.print(f"DLA: {c['DLA']} of {c['total']} layers on DLA, {c['GPU']} on the GPU (dla.json)")
    if bundle.trtexec:
        out.print(f"trtexec: {bundle.trtexec}", highlight=False, soft_wrap=True)
    if bundle.trtexec_run:
        out.print(f"trtexec run: {bundle.trtexec_run}", highlight=False, soft_wrap=True)
    for note in bundle.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)
    out.print(f"next, on the device: see {bundle.out / 'README.md'}")


def _check(directory: Path, *, runtime: str, json_out: bool, expect: str | None = None, trust: Path | None = None,
           fresh: bool = False) -> None:
    report = check_bundle(directory, runtime=runtime, expect=expect, trust=trust, fresh=fresh)
    if json_out:
        print_json(report.to_dict())
    else:
        render_checks(report)
    failed = report.failed
    if not failed:
        return
    names = ", ".join(c.name for c in failed)
    if report.exit_code == MissingEnvironmentError.exit_code:
        raise MissingEnvironmentError(f"{directory}: missing on this device: {names}",
                                      fix="; ".join(f"{c.name}: {c.fix}" for c in failed if c.fix))
    raise CheckFailedError(f"{directory}: {len(failed)} check(s) failed: {names}",
                           fix="; ".join(f"{c.name}: {c.fix}" for c in failed if c.fix))


_STATUS = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "skip": "[yellow]skip[/]"}


def render_checks(report: CheckReport, console: Any = None) -> None:
    rows = [[c.name, _STATUS[c.status], c.found, c.expected, c.fix] for c in report.checks]
    (console or out).print(table(f"{report.directory}: target {report.target}, checked with {report.runtime}",
                                 ["check", "status", "found", "expected", "fix"], rows))

