"""The export's engine step: build engine.plan from the artifact where TensorRT is installed, in a staging folder
whose files the write step moves into OUT; otherwise record why not and how to build it later (the trtexec line
per TensorRT major, with the paths the user will see). A declared IOSpec's ranges are the optimization profile."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from deployconv.core.artifacts import EngineEntry
from deployconv.core.artifacts.names import MODEL_ONNX
from deployconv.core.errors import MissingEnvironmentError
from deployconv.core.target import Target
from deployconv.engine.builder import build_engine
from deployconv.engine.spec import engine_spec_for
from deployconv.pipeline.options import ExportOptions
from deployconv.validate.io_layout import IOLayout


@dataclass
class EngineOutcome:
    entry: EngineEntry  # the manifest's and report's "engine" entry
    staged: dict[str, Path] = field(default_factory=dict)  # file name in OUT -> its staged path (model.onnx too)

    @property
    def built(self) -> bool:
        return self.entry.built


@contextmanager
def staging_dir(out: Path) -> Iterator[Path]:
    """A private folder for the engine build, next to OUT where OUT's parent exists (so the write step renames
    rather than copies a large engine); removed however the export ends."""
    parent = Path(out).parent
    with tempfile.TemporaryDirectory(prefix=f".{Path(out).name}.engine-",
                                     dir=parent if parent.is_dir() else None) as tmp:
        yield Path(tmp)


def relocate(value: Any, staging: Path, out: Path) -> Any:
    """`value` (an entry: dicts, lists, strings) with every mention of the staging folder turned into OUT, the
    folder the user will see."""
    if isinstance(value, str):
        return value.replace(str(staging), str(out))
    if isinstance(value, dict):
        return {k: relocate(v, staging, out) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(relocate(v, staging, out) for v in value)
    return value


def engine_step(artifact: onnx.ModelProto, tgt: Target, opts: ExportOptions, layout: IOLayout | None,
                requested: dict[str, Any], staging: Path, out: Path) -> EngineOutcome:
    """Write the artifact into `staging` and build engine.plan beside it; a missing TensorRT (or one that cannot
    build this target here) is a recorded skip, not an error (`--require-engine` makes it one, in export)."""
    onnx.save(artifact, staging / MODEL_ONNX)
    spec: Any = tgt if layout is None else engine_spec_for(tgt, **layout.spec.engine_shapes())
    try:
        entries = build_engine(staging / MODEL_ONNX, spec, staging, plugins=opts.plugins, requested=requested)
    except MissingEnvironmentError as e:
        def here(text: Any) -> Any:  # a message string, or None
            return relocate(text, staging, out)

        status = "skipped: TensorRT not installed" if "not installed" in e.what else f"skipped: {here(e.what)}"
        entry = EngineEntry(status, what=here(e.what), why=here(e.why), how=here(e.fix),
                            trtexec=tuple(here(d) for d in e.details),
                            build_later=f"deployconv build-engine {out / MODEL_ONNX} --target {tgt.name}")
        return EngineOutcome(entry, {MODEL_ONNX: staging / MODEL_ONNX})
    staged = {p.name: p for p in sorted(staging.iterdir())}
    return EngineOutcome(EngineEntry.from_build(relocate(entries, staging, out)), staged)
