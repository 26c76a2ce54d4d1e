"""`deployconv export`: a model to a verified export directory (the steps live in deployconv.pipeline; this module
parses, calls and renders). The pipeline needs torch, so it is imported when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deployconv.cli.options import (
    CALIB_METHODS,
    IO_DTYPES,
    AllowMissingOpt,
    DimsOpt,
    ForceOpt,
    InputsOpt,
    JsonOpt,
    ModelOpt,
    ProfilesOpt,
    SimplifierOpt,
    TargetOpt,
    WeightsOpt,
    batch_option,
    calib_option,
    calib_samples_option,
    one_of,
    out_option,
    plugins_option,
)
from deployconv.cli.render import render_export
from deployconv.core.console import err, out, print_json
from deployconv.core.errors import CheckFailedError
from deployconv.core.fsio import refuse_overwrite
from deployconv.trust.pin import pin_path, write_pin


def export_cmd(
    model: ModelOpt,
    target: TargetOpt = "onnx",
    weights: WeightsOpt = None,
    allow_missing: AllowMissingOpt = None,
    out_dir: Annotated[Path | None, out_option("Output directory (default: deployconv_out/<model>-<target>).")] = None,
    batch: Annotated[int | None, batch_option(
        "Batch for validation and the short benchmark (default 1). Dynamic-batch targets keep a free batch axis; "
        "static-shape targets (DLA) are built for this batch.")] = None,
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset (default: the target's).")] = None,
    simplifier: SimplifierOpt = "onnxslim",
    images: Annotated[Path | None, typer.Option(
        "--images", help="Folder of images, fed through the model's preprocessing into the parity chain.")] = None,
    no_bench: Annotated[bool, typer.Option("--no-bench", help="Skip the short latency benchmark.")] = False,
    io_dtype: Annotated[str | None, typer.Option(
        "--io-dtype", help="fp32 | fp16 graph inputs/outputs for fp16 targets (default: the target's, fp32).",
        callback=one_of("--io-dtype", IO_DTYPES))] = None,
    calib: Annotated[Path | None, calib_option(
        "int8: folder of calibration images (the model's preprocessing). Without it, synthetic data is used and "
        "accuracy is not representative.")] = None,
    calib_samples: Annotated[int | None, calib_samples_option(
        "int8: calibration samples (default: the target's).")] = None,
    calib_method: Annotated[str | None, typer.Option(
        "--calib-method", help="int8: minmax | entropy | percentile (default: the target's).",
        callback=one_of("--calib-method", CALIB_METHODS))] = None,
    plugins: Annotated[Path | None, plugins_option(
        "TensorRT targets: libdeployconv_plugins.so to build the engine with (default: located by "
        "`deployconv plugins info`).")] = None,
    require_engine: Annotated[bool, typer.Option(
        "--require-engine", help="TensorRT targets: exit 3 when no engine could be built here (default: export, "
                                 "report the skip, exit 0).")] = False,
    inputs: InputsOpt = None,
    dims: DimsOpt = None,
    profiles: ProfilesOpt = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Export a model: create -> reparameterize -> ONNX -> simplify -> check -> parity chain -> precision ->
    short benchmark -> (TensorRT engine where installed)."""
    from deployconv.pipeline.export import ExportOptions, export  # torch, onnx

    opts = ExportOptions(weights=weights, allow_missing=tuple(allow_missing or ()), batch=batch or 1,
                         batch_given=batch is not None, opset=opset, simplifier=simplifier, images=images,
                         bench=not no_bench, io_dtype=io_dtype, calib=calib, calib_samples=calib_samples,
                         calib_method=calib_method, plugins=plugins, require_engine=require_engine,
                         inputs=tuple(inputs or ()), dims=tuple(dims or ()),
                         profiles=tuple(profiles or ()))
    if out_dir is not None:
        refuse_overwrite(pin_path(out_dir), force)
    with err.status("exporting") as status:
        result = export(model, target, out_dir, options=opts, force=force,
                        progress=lambda s: status.update(f"[bold]{model}[/] -> {target}: {s}"))
    digest, pin = write_pin(result.out)
    if json_out:
        print_json({"out": str(result.out), "passed": result.passed, "manifest_sha256": digest,
                    "pin_file": str(pin), "report": result.report})
    else:
        render_export(result.report, result.out)
        out.print(f"manifest sha256: {digest} (in {pin}); `deployconv validate {result.out} --expect {digest}`",
                  highlight=False, soft_wrap=True)
    if not result.passed:
        p = result.report["parity"]
        raise CheckFailedError(f"parity failed at stage {p['broke_at']}",
                               why="; ".join(next(s for s in p["stages"] if not s["passed"])["failures"]),
                               fix="see report.json (first_divergence names the first layer out of budget)")
