"""Every option that more than one command takes, declared once, so a flag means the same in every command.

Options whose flag is shared but whose help depends on the command (what `--out` writes, where `--target` defaults
from) are factories: the flag names and their value rules live here, the command passes its sentence.

The `--runtime` vocabulary is one set for every command: `auto | ort-cpu | ort-cuda | trt`. Each command accepts
the subset it can run (`bench` times one named runtime; `validate` and `check` run ONNX Runtime on the CPU and/or
TensorRT) and refuses the rest with exit 2, naming what it accepts. `ort`, the spelling `validate` and `check` used
before, stays accepted as an alias of `ort-cpu` (with a note on stderr): device READMEs written into bundles
already on devices say `deployconv check . --runtime ort`, and a bundle must stay checkable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deployconv.core.console import err
from deployconv.core.errors import BadInputError

# --- the --runtime vocabulary --------------------------------------------------------------------------------------

RUNTIMES: dict[str, str] = {
    "auto": "what the export's target runs on",
    "ort-cpu": "ONNX Runtime, CPU provider",
    "ort-cuda": "ONNX Runtime, CUDA provider (needs onnxruntime-gpu and a GPU)",
    "trt": "TensorRT: a built engine.plan (needs tensorrt and a GPU)",
}
RUNTIME_ALIASES: dict[str, str] = {"ort": "ort-cpu"}  # old spelling of validate/check; see the module note


def parse_runtime(value: str, allowed: tuple[str, ...], command: str) -> str:
    """The canonical runtime name for `value`, or BadInputError (exit 2) naming the values `command` accepts."""
    name = RUNTIME_ALIASES.get(value, value)
    if name != value:
        err.print(f"[yellow]note:[/] --runtime {value} is the old spelling of --runtime {name}", highlight=False)
    if name in allowed:
        return name
    accepted = ", ".join(allowed)
    if name in RUNTIMES:
        raise BadInputError(f"`deployconv {command}` does not run on --runtime {name}",
                            why=f"{command} runs on: {accepted}", fix=f"use --runtime {' or '.join(allowed)}")
    raise BadInputError(f"unknown runtime {value!r} (--runtime)", why=f"deployconv's runtimes are {', '.join(RUNTIMES)}",
                        fix=f"`deployconv {command}` accepts: {accepted}")


def runtime_option(command: str, allowed: tuple[str, ...], auto: str = "") -> Any:
    """`--runtime/-r` for `command`, restricted to `allowed` (a subset of RUNTIMES, in that order); `auto` says
    what auto picks in this command."""
    assert set(allowed) <= set(RUNTIMES), allowed
    text = "; ".join(f"{r}: {auto or RUNTIMES[r] if r == 'auto' else RUNTIMES[r]}" for r in allowed)
    return typer.Option("--runtime", "-r", metavar="|".join(allowed), help=text + ".",
                        callback=lambda value: parse_runtime(value, allowed, command))


# --- target fields exposed as options: the values deployconv.core.target accepts in a target file ---------------

IO_DTYPES = ("fp32", "fp16")  # Target.io_dtype
CALIB_METHODS = ("minmax", "entropy", "percentile")  # Target.quant.method
SIMPLIFIERS = ("onnxslim", "onnxsim", "none")


def one_of(option: str, values: tuple[str, ...]) -> Any:
    """A callback that lets None (the target's own value) through and refuses anything outside `values`."""
    def check(value: str | None) -> str | None:
        if value is not None and value not in values:
            raise BadInputError(f"{option} {value!r}", fix=f"use {', '.join(values[:-1])} or {values[-1]}")
        return value

    return check


# --- flags shared by several commands, with the command's own sentence ---------------------------------------------

def model_option(help: str = "Zoo name (see `deployconv models`) or file.py:factory / pkg.module:factory.") -> Any:
    """`--model/-m`: a zoo name or a user model source."""
    return typer.Option("--model", "-m", help=help)


def out_option(help: str, **kw: Any) -> Any:
    """`--out/-o`: where the command writes."""
    return typer.Option("--out", "-o", help=help, **kw)


def target_option(help: str = "Deployment target: a name from `deployconv targets` or a target .toml file.",
                  **kw: Any) -> Any:
    """`--target/-t`."""
    return typer.Option("--target", "-t", help=help, **kw)


def batch_option(help: str) -> Any:
    """`--batch/-b`, at least 1."""
    return typer.Option("--batch", "-b", min=1, help=help)


def calib_samples_option(help: str) -> Any:
    """`--calib-samples`: how many calibration images, at least 1."""
    return typer.Option("--calib-samples", min=1, help=help)


def seed_option(help: str) -> Any:
    """`--seed`: the seed of the command's random draw (inputs, bootstrap)."""
    return typer.Option("--seed", help=help)


def workers_option(help: str) -> Any:
    """`--workers`: how many things run at once (jobs, decode threads), at least 1."""
    return typer.Option("--workers", min=1, help=help)


def limit_option(help: str) -> Any:
    """`--limit`: a seeded subset of N images of --data, at least 1."""
    return typer.Option("--limit", min=1, help=help)


def max_drop_option(help: str) -> Any:
    """`--max-drop`: top-1 points a reduced-precision stage may lose against fp32."""
    return typer.Option("--max-drop", help=help)


def plugins_option(help: str) -> Any:
    """`--plugins`: a TensorRT plugin library (libdeployconv_plugins.so)."""
    return typer.Option("--plugins", help=help)


def calib_option(help: str) -> Any:
    """`--calib`: a folder of calibration images, read with the model's preprocessing."""
    return typer.Option("--calib", help=help)


# --- the shared options themselves ---------------------------------------------------------------------------------

ModelOpt = Annotated[str, model_option()]
WeightsOpt = Annotated[Path | None, typer.Option("--weights", "-w", help="Checkpoint file (official layout).")]
AllowMissingOpt = Annotated[list[str] | None, typer.Option(
    "--allow-missing", help="fnmatch pattern of checkpoint keys the model may lack on purpose (repeatable); they are "
                            "reported.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")]
InputsOpt = Annotated[list[str] | None, typer.Option(
    "--input", help="NAME=DIMS[:DTYPE], repeatable: dims are numbers or symbols, e.g. image=Bx3xHxW, "
                    "mask=BxHxW:int64 (default: the model's declared inputs).")]
DimsOpt = Annotated[list[str] | None, typer.Option(
    "--dim", help="SYM=MIN..OPT..MAX (or MIN..MAX, or N), repeatable: a symbol's range; dynamic ONNX dims and the "
                  "TensorRT profile, e.g. H=320..640..1344.")]
ProfilesOpt = Annotated[list[str] | None, typer.Option(
    "--profile", help="SYM=MIN..OPT..MAX[,SYM=...], repeatable: one TensorRT optimization profile each, in order; "
                      "symbols it omits keep their --dim range, and every range must lie inside its --dim range, "
                      "e.g. --profile H=320..480..640,W=320..480..640 (default: one profile over the --dim ranges).")]
TargetOpt = Annotated[str, target_option()]
SimplifierOpt = Annotated[str, typer.Option("--simplifier", help="onnxslim | onnxsim | none.",
                                            callback=one_of("--simplifier", SIMPLIFIERS))]
ExpectOpt = Annotated[str | None, typer.Option(
    "--expect", help="The manifest sha256 `export`/`bundle` printed (or its .manifest.sha256 file): fail on any "
                     "other manifest.", show_default=False)]
TrustOpt = Annotated[Path | None, typer.Option(
    "--trust", help="Ed25519 public key (KEY.pub): fail unless manifest.json.sig is its valid signature.",
    show_default=False)]
AllowHostCodeOpt = Annotated[bool, typer.Option(
    "--allow-host-code", help="TensorRT: load a version-compatible engine.plan, which runs code embedded in the file "
                              "(only for plans you built or trust).")]
MarkdownOpt = Annotated[Path | None, typer.Option(
    "--markdown", help="Also write the markdown report to this file (atomically; CI step summaries).")]
