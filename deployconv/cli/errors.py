"""The one error handler of the command line, on the command group (not a decorator on each command).

Every command of `deployconv` (and of its sub-groups `plugins`, `debug`) runs inside `ErrorHandlingGroup.invoke`,
so an exception a user can cause becomes a message (what, why, fix) on stderr and an exit code in one place:
0 ok, 1 a check failed, 2 bad input, 3 a missing piece of the environment, 130 interrupted. `--debug` (on the root
group) shows the traceback instead. Option callbacks (e.g. the `--runtime` vocabulary) run inside it too.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.text import Text
from typer.core import TyperGroup

try:  # typer 0.2x carries its own click (typer._click); its usage errors derive from TyperException
    from typer.exceptions import TyperException as _UsageError
except ImportError:  # an older typer on plain click
    from click import ClickException as _UsageError

from deployconv.core.console import err
from deployconv.core.errors import BadInputError, DeployconvError, MissingEnvironmentError
from deployconv.core.os_errors import from_oserror

EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention


def print_error(label: str, text: str) -> None:
    """On stderr; the message is plain text (a shape like [1, 3] must not be read as rich markup)."""
    err.print(Text.assemble((label, "bold red"), " ", text), highlight=False)


def as_error(e: BaseException) -> DeployconvError:
    """Every exception as a user-facing error: ours as they are, OSError by kind (deployconv.core.os_errors), anything
    else as an internal error that asks for --debug (a bug: the fuzz suite fails on it)."""
    if isinstance(e, DeployconvError):
        return e
    if isinstance(e, OSError):
        return from_oserror(e)
    if isinstance(e, MemoryError):
        return MissingEnvironmentError("out of memory", fix="free memory, or use a smaller --batch")
    return BadInputError(f"internal error: {type(e).__name__}: {str(e)[:300]}",
                         why="deployconv did not expect this input or state (a bug in deployconv)",
                         fix="run again with --debug for the traceback, and report it")


def debug_requested(ctx: Any) -> bool:
    """`deployconv --debug ...`: the root group's flag (a sub-group invoked on its own, as in tests, has none)."""
    return bool(ctx.find_root().params.get("debug", False))


class ErrorHandlingGroup(TyperGroup):
    """A typer group whose `invoke` (parsing a sub-command's options, then running it) turns exceptions into
    messages and exit codes. The parser's own exits (`typer.Exit`, usage errors: exit 2, `--help`) pass through."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, _UsageError, SystemExit):
            raise
        except KeyboardInterrupt:
            if debug_requested(ctx):
                raise
            print_error("interrupted:", "nothing half-written was kept")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as e:
            if debug_requested(ctx):
                raise
            error = as_error(e)
            print_error("error:", error.render())
            raise typer.Exit(error.exit_code) from None


def command_group(**kwargs: Any) -> typer.Typer:
    """A typer app whose group carries the error handler (the root app and every sub-group use this)."""
    return typer.Typer(cls=ErrorHandlingGroup, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False, **kwargs)
