"""The deployconv command line: the typer app and the list of its commands. No logic of its own.

Each command lives in the module named for its group (deployconv/cli/<group>.py) and takes its shared options from
deployconv/cli/options.py; errors become a message and an exit code in one place, the group's handler in
deployconv/cli/errors.py (0 ok, 1 a check failed, 2 bad input, 3 a missing piece of the environment, 130
interrupted; `--debug` shows the traceback). This module imports the command modules; none imports it.
Nothing here imports torch: `deployconv check`, `validate --torch-free`, `bench` and `gate` run on a device
without it (tests/test_torch_free.py, tests/cli/test_app.py).
"""

from __future__ import annotations

from typing import Annotated

import typer

from deployconv.cli.bench import bench_cmd
from deployconv.cli.device import bundle_cmd, check_cmd
from deployconv.cli.engine import build_engine_cmd
from deployconv.cli.errors import EXIT_INTERRUPTED, command_group
from deployconv.cli.evaluate import debug_app, eval_cmd
from deployconv.cli.export import export_cmd
from deployconv.cli.gate import gate_cmd
from deployconv.cli.matrix import matrix_cmd
from deployconv.cli.plugins import plugins_app
from deployconv.cli.reparam import reparam_cmd
from deployconv.cli.report import report_cmd
from deployconv.cli.trust import keygen_cmd, unpack_cmd
from deployconv.cli.validate import validate_cmd
from deployconv.cli.zoo import doctor_cmd, models_cmd, targets_cmd
from deployconv.core.version import __version__

__all__ = ["EXIT_INTERRUPTED", "app", "main"]

app = command_group(
    name="deployconv",
    help="Deploy modern ConvNets: model zoo -> verified reparameterization -> ONNX / TensorRT, with parity proofs.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deployconv {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version.")] = False,
) -> None:
    # `--debug` is read by the error handler from this group's parameters (deployconv.cli.errors.debug_requested).
    del debug, version


# The order here is the order of `deployconv --help`.
app.command("models")(models_cmd)
app.command("reparam")(reparam_cmd)
app.command("doctor")(doctor_cmd)
app.command("targets")(targets_cmd)
app.command("export")(export_cmd)
app.command("validate")(validate_cmd)
app.command("bench")(bench_cmd)
app.command("bundle")(bundle_cmd)
app.command("check")(check_cmd)
app.command("build-engine")(build_engine_cmd)
app.command("report")(report_cmd)
app.command("gate")(gate_cmd)
app.command("matrix")(matrix_cmd)
app.command("eval")(eval_cmd)
app.add_typer(debug_app, name="debug")
app.command("keygen")(keygen_cmd)
app.command("unpack")(unpack_cmd)
app.add_typer(plugins_app, name="plugins")


def main() -> None:
    app(prog_name="deployconv")


if __name__ == "__main__":
    main()
