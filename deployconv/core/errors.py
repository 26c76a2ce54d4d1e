"""One error family for everything a user can cause, each with what / why / how to fix and an exit code.

The CLI turns these into a message and an exit code in one place; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_MISSING_ENV = 3


class DeployconvError(Exception):
    """Base class: `what` happened, `why`, and `fix` (how to fix it)."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, what: str, why: str = "", fix: str = "", details: list[str] | None = None):
        self.what, self.why, self.fix = what, why, fix
        self.details = list(details or [])
        super().__init__(self.render())

    def render(self) -> str:
        lines = [self.what]
        lines += [f"  {d}" for d in self.details]
        if self.why:
            lines.append(f"why: {self.why}")
        if self.fix:
            lines.append(f"fix: {self.fix}")
        return "\n".join(lines)


class BadInputError(DeployconvError):
    """The user gave something we cannot use (unknown model, bad file, bad shape). Exit 2."""

    exit_code = EXIT_BAD_INPUT


class MissingEnvironmentError(DeployconvError):
    """A piece of the environment is absent (TensorRT, a GPU, a compiler). Exit 3."""

    exit_code = EXIT_MISSING_ENV


class CheckFailedError(DeployconvError):
    """A verification ran and failed (parity, fusion equivalence, latency gate). Exit 1."""

    exit_code = EXIT_CHECK_FAILED
