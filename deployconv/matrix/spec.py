"""What a matrix is made of: the step enum, cell and job specs, and their validation. Pure, torch-free.

A job only ever runs a deployconv step on a zoo model or on a user model source (`file.py:factory`) that was
named on the command line; `validate_job` re-checks that on the worker, so a forged spec cannot make a worker
import arbitrary code. Specs are always rebuilt from the command line, never read back from result files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from deployconv.core.errors import BadInputError

HOST = "host"  # the CPU nodes themselves: no custom resource needed


@dataclass(frozen=True)
class StepInfo:
    name: str
    scope: str  # "target": one per (model, target); "device": one per (model, target, device)
    needs_torch: bool
    available: bool = True
    why_unavailable: str = ""
    runtimes: tuple[str, ...] = ("onnxruntime", "tensorrt")  # target runtimes the step applies to


STEPS: dict[str, StepInfo] = {s.name: s for s in (
    StepInfo("export", "target", needs_torch=True),
    StepInfo("bundle", "target", needs_torch=False),  # implied by device steps on a device other than host
    StepInfo("build-engine", "device", needs_torch=False, runtimes=("tensorrt",)),
    StepInfo("validate", "device", needs_torch=False),  # the whole chain where torch is present, else torch-free
    StepInfo("bench", "device", needs_torch=False),
    StepInfo("check", "device", needs_torch=False),
    StepInfo("eval", "device", needs_torch=False, available=False,
             why_unavailable="`deployconv eval` (the accuracy ledger) is not in this deployconv yet"),
)}
USER_STEPS = ("export", "validate", "bench", "check", "build-engine", "eval")  # what --jobs accepts
DEFAULT_STEPS = ("export", "validate", "bench", "check", "build-engine")
_DEVICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Cell:
    """One square of the grid: a model exported for a target, run on a device."""

    model: str
    target: str
    device: str = HOST

    @property
    def key(self) -> str:
        return f"{self.model}|{self.target}|{self.device}"


@dataclass(frozen=True)
class JobSpec:
    """One (model, target, device, step). `device` is None for target-scope steps (export, bundle)."""

    model: str
    target: str
    step: str
    device: str | None = None
    deps: tuple[str, ...] = ()  # job ids this one consumes, in order; the step reads the last one that passed
    soft: tuple[str, ...] = ()  # deps that may be skipped (missing environment): the job then runs without them

    @property
    def id(self) -> str:
        return f"{self.model}|{self.target}|{self.device or '*'}|{self.step}"

    @property
    def resource(self) -> str | None:
        """The Ray custom resource this job needs: the device's name for device steps off the host."""
        return self.device if self.device not in (None, HOST) else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "id": self.id}


@dataclass(frozen=True)
class MatrixSpec:
    models: tuple[str, ...]
    targets: tuple[str, ...]
    devices: tuple[str, ...] = (HOST,)
    steps: tuple[str, ...] = DEFAULT_STEPS
    user_models: tuple[str, ...] = field(default=())  # file.py:factory sources named on the command line

    def cells(self) -> list[Cell]:
        return [Cell(m, t, d) for m in self.models for t in self.targets for d in self.devices]


def split_list(text: str | None, option: str) -> list[str]:
    items = [x.strip() for x in (text or "").split(",") if x.strip()]
    if not items:
        raise BadInputError(f"{option} is empty", fix=f"give a comma-separated list, e.g. {option} a,b")
    if len(set(items)) != len(items):
        raise BadInputError(f"{option} names an entry twice: {text}")
    return items


def parse_models(text: str, zoo: Sequence[str], is_user_source: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(models, user sources among them). 'all' is the whole zoo."""
    names = list(zoo) if text.strip() == "all" else split_list(text, "--models")
    user = tuple(n for n in names if is_user_source(n))
    unknown = [n for n in names if n not in zoo and n not in user]
    if unknown:
        raise BadInputError(f"unknown model(s): {', '.join(unknown)}",
                            fix="see `deployconv models`, or name a user model as file.py:factory")
    return tuple(names), user


def parse_targets(text: str, known: Iterable[str]) -> tuple[str, ...]:
    known = set(known)
    names = split_list(text, "--targets")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadInputError(f"unknown target(s): {', '.join(unknown)}",
                            fix="see `deployconv targets` (the matrix takes built-in target names)")
    return tuple(names)


def parse_devices(text: str | None) -> tuple[str, ...]:
    if text is None:
        return (HOST,)
    names = split_list(text, "--devices")
    bad = [n for n in names if not _DEVICE_RE.fullmatch(n) or n in ("CPU", "GPU", "memory", "object_store_memory")]
    if bad:
        raise BadInputError(f"bad device name(s): {', '.join(bad)}",
                            why="a device is a Ray custom resource name: letters, digits, '_', '.', '-'; "
                                "not CPU/GPU/memory", fix="e.g. --devices host,jetson-orin")
    return tuple(names)


def parse_steps(text: str | None) -> tuple[str, ...]:
    names = list(DEFAULT_STEPS) if text is None else split_list(text, "--jobs")
    unknown = [n for n in names if n not in USER_STEPS]
    if unknown:
        raise BadInputError(f"unknown step(s): {', '.join(unknown)}", fix=f"choose from {', '.join(USER_STEPS)}")
    unavailable = [STEPS[n] for n in names if not STEPS[n].available]
    if unavailable:
        raise BadInputError(f"step {unavailable[0].name} is not available", why=unavailable[0].why_unavailable,
                            fix="drop it from --jobs")
    if "export" not in names:
        names.insert(0, "export")  # everything consumes the export
    return tuple(n for n in USER_STEPS if n in names)


def validate_job(job: JobSpec, zoo: Iterable[str] | None, user_models: Iterable[str], targets: Iterable[str]) -> None:
    """Refuse a job that is not a deployconv step on a known model and target (run on the worker too).
    `zoo` None skips the model check: a device step never builds the model (its name is only a label)."""
    if job.step not in STEPS or not STEPS[job.step].available:
        raise BadInputError(f"job {job.id}: {job.step!r} is not a deployconv matrix step")
    if zoo is not None and job.model not in set(zoo) and job.model not in set(user_models):
        raise BadInputError(f"job {job.id}: model {job.model!r} is neither a zoo model nor named on the command line")
    if job.target not in set(targets):
        raise BadInputError(f"job {job.id}: unknown target {job.target!r}")
    if (STEPS[job.step].scope == "device") != (job.device is not None):
        raise BadInputError(f"job {job.id}: step {job.step} and device {job.device!r} do not fit")
    if job.device is not None and not _DEVICE_RE.fullmatch(job.device):
        raise BadInputError(f"job {job.id}: bad device name {job.device!r}")
