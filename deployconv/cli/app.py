"""The deployconv command line: parse, call the front door, render. No logic of its own.

Errors a user can cause become a message and an exit code here, in one place: 0 ok, 1 a check failed,
2 bad input, 3 a missing piece of the environment. `--debug` shows the traceback.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from deployconv.core.errors import DeployconvError
from deployconv.core.version import __version__

app = typer.Typer(
    name="deployconv",
    help="Deploy modern ConvNets: model zoo -> verified reparameterization -> ONNX / TensorRT, with parity proofs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}

# One definition per common option, so a flag means the same in every command.
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Zoo name (see `deployconv models`) or file.py:factory / pkg.module:factory.")]
WeightsOpt = Annotated[Path | None, typer.Option("--weights", "-w", help="Checkpoint file (official layout).")]
AllowMissingOpt = Annotated[list[str] | None, typer.Option("--allow-missing", help="fnmatch pattern of checkpoint keys the model may lack on purpose (repeatable); they are reported.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")]
InputsOpt = Annotated[list[str] | None, typer.Option("--input", help="NAME=DIMS[:DTYPE], repeatable: dims are numbers or symbols, e.g. image=Bx3xHxW, mask=BxHxW:int64 (default: the model's declared inputs).")]
DimsOpt = Annotated[list[str] | None, typer.Option("--dim", help="SYM=MIN..OPT..MAX (or MIN..MAX, or N), repeatable: a symbol's range; dynamic ONNX dims and the TensorRT profile, e.g. H=320..640..1344.")]


def _handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            if _state["debug"]:
                raise
            _print_error("interrupted:", "nothing half-written was kept")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as e:
            if _state["debug"]:
                raise
            error = _as_error(e)
            _print_error("error:", error.render())
            raise typer.Exit(error.exit_code) from None

    return wrapper


EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention


def _print_error(label: str, text: str) -> None:
    """On stderr; the message is plain text (a shape like [1, 3] must not be read as rich markup)."""
    from rich.text import Text

    from deployconv.core.console import err

    err.print(Text.assemble((label, "bold red"), " ", text), highlight=False)


def _as_error(e: Exception) -> DeployconvError:
    """Every exception as a user-facing error: ours as they are, OSError by kind (deployconv.core.os_errors), anything
    else as an internal error that asks for --debug (a bug: the fuzz suite fails on it)."""
    if isinstance(e, DeployconvError):
        return e
    if isinstance(e, OSError):
        from deployconv.core.os_errors import from_oserror

        return from_oserror(e)
    if isinstance(e, MemoryError):
        from deployconv.core.errors import MissingEnvironmentError

        return MissingEnvironmentError("out of memory", fix="free memory, or use a smaller --batch")
    from deployconv.core.errors import BadInputError

    return BadInputError(f"internal error: {type(e).__name__}: {str(e)[:300]}",
                         why="deployconv did not expect this input or state (a bug in deployconv)",
                         fix="run again with --debug for the traceback, and report it")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deployconv {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    _state["debug"] = debug


@app.command("models")
@_handle_errors
def models_cmd(
    pattern: Annotated[str | None, typer.Argument(help="fnmatch filter, e.g. 'lsnet*'.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List zoo models: family, parameters in train and deploy form, input size."""
    from deployconv.core.console import out, print_json, table
    from deployconv.reparam.summary import zoo_rows

    rows = zoo_rows(pattern)
    if json_out:
        print_json(rows)
        return
    out.print(table(None, ["name", "family", "params (train)", "params (deploy)", "input", "fixed HxW"],
                    [[r["name"], r["family"], f"{r['params_train']:,}", f"{r['params_deploy']:,}",
                      "x".join(map(str, r["input_size"])), "yes" if r["fixed_hw"] else "no"] for r in rows],
                    justify_right=["params (train)", "params (deploy)"]))


def _parse_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    from deployconv.core.errors import BadInputError

    if not re.fullmatch(r"\d+(,\d+)+", text.replace("x", ",")):
        raise BadInputError(f"bad --input-shape {text!r}", fix="use N,C,H,W, e.g. 1,3,224,224")
    return tuple(int(v) for v in text.replace("x", ",").split(","))


@app.command("reparam")
@_handle_errors
def reparam_cmd(
    model: ModelOpt,
    weights: WeightsOpt = None,
    allow_missing: AllowMissingOpt = None,
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="Where to save the deploy-form model (default: deployconv_out/<model>-deploy.pt).")] = None,
    input_shape: Annotated[str | None, typer.Option("--input-shape", help="Probe shape N,C,H,W (default: the model's input size, batch 2).")] = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Reparameterize a model into deploy form, verify it, print the fusion report and save it."""
    import torch

    from deployconv.core.fsio import refuse_overwrite, safe_name
    from deployconv.models import create_model
    from deployconv.reparam import reparameterize
    from deployconv.reparam.artifact import save_deploy
    from deployconv.reparam.render import render_report

    target = out_file or Path("deployconv_out") / f"{safe_name(model)}-deploy.pt"
    refuse_overwrite(target, force)
    m = create_model(model, weights, allow_missing=tuple(allow_missing or ()))
    shape = _parse_shape(input_shape)
    probe = torch.randn(*shape, generator=torch.Generator().manual_seed(0)) if shape else None
    deploy = reparameterize(m, probe=probe)
    save_deploy(deploy, target, force=force)
    report = deploy.reparam_report
    load = getattr(m, "load_report", None)
    if json_out:
        from deployconv.core.console import print_json

        print_json({"report": report.to_dict(), "out": str(target),
                    "weights": None if load is None else load.__dict__})
        return
    render_report(report, saved_to=target, load_report=load)


@app.command("doctor")
@_handle_errors
def doctor_cmd(json_out: JsonOpt = False) -> None:
    """Which of torch, ONNX tooling, TensorRT, CUDA, nvcc and a GPU this machine has, with versions."""
    from deployconv.core.console import out, print_json, table
    from deployconv.core.env import diagnose

    comps = diagnose()
    if json_out:
        print_json(comps)
        return
    out.print(table(f"deployconv {__version__} environment", ["component", "found", "version", "detail"],
                    [[c.name, "yes" if c.found else "no", c.version or "-", c.detail] for c in comps]))


TargetOpt = Annotated[str, typer.Option("--target", "-t", help="Deployment target: a name from `deployconv targets` or a target .toml file.")]


@app.command("targets")
@_handle_errors
def targets_cmd(json_out: JsonOpt = False) -> None:
    """List the built-in targets: runtime, precision, lowering, shapes, TensorRT range, device."""
    from deployconv.core.console import out, print_json, table
    from deployconv.core.target import builtin_targets

    targets = builtin_targets()
    if json_out:
        print_json({k: t.to_dict() for k, t in targets.items()})
        return

    def trt(t) -> str:
        if t.tensorrt is None:
            return "-"
        hi = t.tensorrt.max_version or ""
        dla = f", DLA {t.tensorrt.dla_core}" if t.uses_dla else ""
        return f"{t.tensorrt.min_version}..{hi}{dla}"

    out.print(table("deployconv targets (user targets: --target path/to/file.toml)",
                    ["name", "runtime", "precision", "lowering", "batch", "TensorRT", "description"],
                    [[t.name, t.runtime, t.precision, t.lowering,
                      "dynamic" if t.dynamic_batch else f"static {t.batch or 1}", trt(t), t.description]
                     for t in targets.values()]))


@app.command("export")
@_handle_errors
def export_cmd(
    model: ModelOpt,
    target: TargetOpt = "onnx",
    weights: WeightsOpt = None,
    allow_missing: AllowMissingOpt = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Output directory (default: deployconv_out/<model>-<target>).")] = None,
    batch: Annotated[int | None, typer.Option("--batch", min=1, help="Batch for validation and the short benchmark (default 1). Dynamic-batch targets keep a free batch axis; static-shape targets (DLA) are built for this batch.")] = None,
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset (default: the target's).")] = None,
    simplifier: Annotated[str, typer.Option("--simplifier", help="onnxslim | onnxsim | none.")] = "onnxslim",
    images: Annotated[Path | None, typer.Option("--images", help="Folder of images, fed through the model's preprocessing into the parity chain.")] = None,
    no_bench: Annotated[bool, typer.Option("--no-bench", help="Skip the short latency benchmark.")] = False,
    io_dtype: Annotated[str | None, typer.Option("--io-dtype", help="fp32 | fp16 graph inputs/outputs for fp16 targets (default: the target's, fp32).")] = None,
    calib: Annotated[Path | None, typer.Option("--calib", help="int8: folder of calibration images (the model's preprocessing). Without it, synthetic data is used and accuracy is not representative.")] = None,
    calib_samples: Annotated[int | None, typer.Option("--calib-samples", min=1, help="int8: calibration samples (default: the target's).")] = None,
    calib_method: Annotated[str | None, typer.Option("--calib-method", help="int8: minmax | entropy | percentile (default: the target's).")] = None,
    plugins: Annotated[Path | None, typer.Option("--plugins", help="TensorRT targets: libdeployconv_plugins.so to build the engine with (default: located by `deployconv plugins info`).")] = None,
    require_engine: Annotated[bool, typer.Option("--require-engine", help="TensorRT targets: exit 3 when no engine could be built here (default: export, report the skip, exit 0).")] = False,
    inputs: InputsOpt = None,
    dims: DimsOpt = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Export a model: create -> reparameterize -> ONNX -> simplify -> check -> parity chain -> precision ->
    short benchmark -> (TensorRT engine where installed)."""
    from deployconv.cli.render import render_export
    from deployconv.core.console import err, out, print_json
    from deployconv.core.errors import CheckFailedError
    from deployconv.pipeline.export import ExportOptions, export
    from deployconv.trust.pin import pin_path

    if io_dtype not in (None, "fp32", "fp16"):
        from deployconv.core.errors import BadInputError

        raise BadInputError(f"--io-dtype {io_dtype!r}", fix="use fp32 or fp16")
    if calib_method not in (None, "minmax", "entropy", "percentile"):
        from deployconv.core.errors import BadInputError

        raise BadInputError(f"--calib-method {calib_method!r}", fix="use minmax, entropy or percentile")
    opts = ExportOptions(weights=weights, allow_missing=tuple(allow_missing or ()), batch=batch or 1,
                         batch_given=batch is not None, opset=opset, simplifier=simplifier, images=images,
                         bench=not no_bench, io_dtype=io_dtype, calib=calib, calib_samples=calib_samples,
                         calib_method=calib_method, plugins=plugins, require_engine=require_engine,
                         inputs=tuple(inputs or ()), dims=tuple(dims or ()))
    if out_dir is not None:
        from deployconv.core.fsio import refuse_overwrite

        refuse_overwrite(pin_path(out_dir), force)
    with err.status("exporting") as status:
        result = export(model, target, out_dir, options=opts, force=force,
                        progress=lambda s: status.update(f"[bold]{model}[/] -> {target}: {s}"))
    from deployconv.trust.pin import write_pin

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


@app.command("validate")
@_handle_errors
def validate_cmd(
    directory: Annotated[Path, typer.Argument(help="A directory written by `deployconv export` or `deployconv bundle`.")],
    torch_free: Annotated[bool, typer.Option("--torch-free", help="Only the recorded reference.npz, even where PyTorch is installed.")] = False,
    runtime: Annotated[str, typer.Option("--runtime", "-r", help="auto (ONNX Runtime where installed, plus engine.plan on TensorRT for TensorRT targets), ort, or trt.")] = "auto",
    plugins: Annotated[list[Path] | None, typer.Option("--plugins", help="Plugin library for the engine (default: the bundle's plugins/build, then `deployconv plugins info`'s).")] = None,
    allow_host_code: Annotated[bool, typer.Option("--allow-host-code", help="Load a version-compatible engine.plan, which runs code embedded in the file (only for plans you built or trust).")] = False,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Re-run the whole chain from this model source (the manifest's own user source is never run unless named here or --trust-source).")] = None,
    trust_source: Annotated[bool, typer.Option("--trust-source", help="Run the manifest's model source if its file's sha256 equals the one recorded at export.")] = False,
    expect: Annotated[str | None, typer.Option("--expect", help="The manifest sha256 printed at export/bundle (or its .manifest.sha256 file): fail on any other.")] = None,
    trust: Annotated[Path | None, typer.Option("--trust", help="Ed25519 public key: fail unless manifest.json.sig is its valid signature.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Re-check an exported directory: file hashes, then the parity chain (the whole chain where PyTorch and the
    model source are available, else the recorded reference.npz) on ONNX Runtime and, for TensorRT targets, on
    the built engine."""
    from deployconv.core.console import err, out, print_json
    from deployconv.core.errors import CheckFailedError
    from deployconv.validate.export_dir import recheck_dir

    result = recheck_dir(directory, torch_free=torch_free, runtime=runtime,
                         plugins=[str(p) for p in plugins] if plugins else None, allow_host_code=allow_host_code,
                         model=model, trust_source=trust_source, expect=expect, trust=trust)
    if json_out:
        print_json(result)
    else:
        from deployconv.cli.render import parity_table

        out.print(parity_table(result["parity"]))
        out.print(f"files: exactly as listed in manifest.json; {result['mode']}; "
                  f"ran on: {', '.join(result['runtimes'])}", highlight=False, soft_wrap=True)
        for line in result["bound"]:
            out.print(f"manifest: {line}", highlight=False)
        for note in result["notes"]:
            err.print(f"[yellow]note:[/] {note}")
    if result["hash_mismatches"] or not result["parity"]["passed"]:
        raise CheckFailedError(f"{directory} failed validation",
                               why="; ".join(result["hash_mismatches"]) or f"parity broke at {result['parity']['broke_at']}")


from deployconv.cli.bench import bench_cmd  # noqa: E402

app.command("bench")(bench_cmd)

from deployconv.cli.device import bundle_cmd, check_cmd  # noqa: E402
from deployconv.cli.engine import build_engine_cmd  # noqa: E402
from deployconv.cli.gate import gate_cmd  # noqa: E402
from deployconv.cli.matrix import matrix_cmd  # noqa: E402
from deployconv.cli.report import report_cmd  # noqa: E402
from deployconv.cli.trust import keygen_cmd, unpack_cmd  # noqa: E402

app.command("bundle")(bundle_cmd)
app.command("check")(check_cmd)
app.command("build-engine")(build_engine_cmd)
app.command("report")(report_cmd)
app.command("gate")(gate_cmd)
app.command("matrix")(matrix_cmd)

from deployconv.cli.evaluate import debug_app, eval_cmd  # noqa: E402

app.command("eval")(eval_cmd)
app.add_typer(debug_app, name="debug")
app.command("keygen")(keygen_cmd)
app.command("unpack")(unpack_cmd)

from deployconv.cli.plugins import plugins_app  # noqa: E402

app.add_typer(plugins_app, name="plugins")


def main() -> None:
    app(prog_name="deployconv")


if __name__ == "__main__":
    main()
