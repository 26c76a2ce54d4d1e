"""`deployconv validate DIR`: re-check an exported directory (hashes, then the parity chain). Torch-free unless
the whole chain is re-run from a model source."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deployconv.cli.options import (
    AllowHostCodeOpt,
    ExpectOpt,
    JsonOpt,
    TrustOpt,
    model_option,
    plugins_option,
    runtime_option,
)
from deployconv.cli.render import parity_table
from deployconv.core.console import err, out, print_json
from deployconv.core.errors import CheckFailedError
from deployconv.validate.export_dir import RUNTIME_CHOICES, recheck_dir

VALIDATE_RUNTIMES = RUNTIME_CHOICES  # what deployconv.validate can run


def validate_cmd(
    directory: Annotated[Path, typer.Argument(help="A directory written by `deployconv export` or `deployconv bundle`.")],
    torch_free: Annotated[bool, typer.Option(
        "--torch-free", help="Only the recorded reference.npz, even where PyTorch is installed.")] = False,
    runtime: Annotated[str, runtime_option(
        "validate", VALIDATE_RUNTIMES, auto="ONNX Runtime on the CPU where installed, plus the engine.plan on TensorRT for "
                                           "TensorRT targets")] = "auto",
    plugins: Annotated[list[Path] | None, plugins_option(
        "Plugin library for the engine (default: the bundle's plugins/build, then `deployconv plugins info`'s).")] = None,
    allow_host_code: AllowHostCodeOpt = False,
    model: Annotated[str | None, model_option(
        "Re-run the whole chain from this model source (the manifest's own user source is never run unless named "
        "here or --trust-source).")] = None,
    trust_source: Annotated[bool, typer.Option(
        "--trust-source", help="Run the manifest's model source if its file's sha256 equals the one recorded at "
                               "export.")] = False,
    expect: ExpectOpt = None,
    trust: TrustOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Re-check an exported directory: file hashes, then the parity chain (the whole chain where PyTorch and the
    model source are available, else the recorded reference.npz) on ONNX Runtime and, for TensorRT targets, on
    the built engine."""
    result = recheck_dir(directory, torch_free=torch_free, runtime=runtime,
                         plugins=[str(p) for p in plugins] if plugins else None, allow_host_code=allow_host_code,
                         model=model, trust_source=trust_source, expect=expect, trust=trust)
    if json_out:
        print_json(result)
    else:
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
