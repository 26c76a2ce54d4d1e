"""How a plan must be loaded, decided from what its build recorded (the manifest's engine.plan entry): the
IRuntime settings to make before `deserialize_cuda_engine`, and which plugin libraries still need loading.

Pure: the runner and the builder's layer report set what this returns, nothing more.
- Version-compatible plans embed a lean runtime (and any plugins serialized with them) and TensorRT refuses them
  unless `IRuntime.engine_host_code_allowed` is set. Loading such a plan runs code from the file, so only the
  user may allow it, explicitly (`--allow-host-code`); otherwise the load is refused before TensorRT sees it.
- A DLA plan needs `IRuntime.DLA_core` set before deserializing (what trtexec does with --useDLACore).
- Plugins serialized into the plan (`plugins_to_serialize`) are registered by the plan itself: loading the same
  library again would register them twice, so they are skipped (trtexec skips them too).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployconv.core.artifacts.engine import EngineEntry
from deployconv.core.artifacts.names import ENGINE, MANIFEST
from deployconv.core.errors import BadInputError


@dataclass(frozen=True)
class PlanFacts:
    """What the manifest says about one engine.plan (all unknown for a bare .plan without a manifest)."""

    needs_host_code: bool | None = None
    dla_core: int | None = None
    carried_plugins: tuple[str, ...] = ()  # libraries serialized into the plan

    @classmethod
    def from_entry(cls, entry: EngineEntry | None) -> PlanFacts:
        plan = (entry.engine.plan if entry is not None and entry.engine is not None else None) or {}
        if not plan:
            return cls()
        return cls(bool(plan.get("runtime_needs_host_code", False)),
                   plan.get("dla_core") if plan.get("device") == "dla" else None,
                   tuple(str(p) for p in plan.get("plugins_to_serialize", ()) or ()))


def plan_facts_near(engine_path: str | Path) -> PlanFacts:
    """PlanFacts from the engine entry of the manifest.json beside `engine_path` when it describes that engine,
    else unknown (no manifest, not JSON, or an entry that does not match the EngineEntry schema)."""
    path = Path(engine_path)
    manifest = path.parent / MANIFEST
    if not manifest.is_file():
        return PlanFacts()
    try:
        data = json.loads(manifest.read_text())
        entry = engine_entry(data)
    except (OSError, ValueError, BadInputError):
        return PlanFacts()
    return PlanFacts.from_entry(entry) if entry is not None and entry.file == path.name else PlanFacts()


def engine_entry(manifest: Mapping[str, Any] | None) -> EngineEntry | None:
    """The manifest's engine entry as an EngineEntry (either form a /1 manifest holds: export's
    {"status", "engine": {...}} or build-engine's flat table, as written before both wrote the same), or None."""
    engine = (manifest or {}).get("engine") if isinstance(manifest, Mapping) else None
    return None if not engine else EngineEntry.from_dict(engine)


@dataclass(frozen=True)
class RuntimeSettings:
    """IRuntime attributes to set before deserializing, by their Python binding names (pyCore.cpp)."""

    DLA_core: int | None = None
    engine_host_code_allowed: bool = False

    def items(self) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        if self.DLA_core is not None:
            out.append(("DLA_core", int(self.DLA_core)))
        if self.engine_host_code_allowed:
            out.append(("engine_host_code_allowed", True))
        return out


def runtime_settings(facts: PlanFacts, *, allow_host_code: bool, dla_core: int | None = None,
                     engine: str = ENGINE) -> RuntimeSettings:
    """The IRuntime settings for a plan. `dla_core` (the user's) wins over the recorded one. A plan recorded as
    needing host code without `allow_host_code` is a BadInputError (exit 2) that says how to allow it."""
    if facts.needs_host_code and not allow_host_code:
        raise BadInputError(
            f"{engine} is a version-compatible plan: it embeds host code (a lean runtime"
            + (" and plugin libraries" if facts.carried_plugins else "") + ") that TensorRT runs on load",
            why="loading such a plan executes code from the file, so deployconv loads it only when you allow it",
            fix="for a plan you built or trust, pass --allow-host-code (API: allow_host_code=True)")
    core = dla_core if dla_core is not None else facts.dla_core
    if core is not None and core < 0:
        raise BadInputError(f"DLA core must be >= 0, got {core}")
    return RuntimeSettings(core, bool(allow_host_code))


def apply_runtime_settings(runtime: Any, settings: RuntimeSettings) -> None:
    """Set them on a tensorrt.Runtime (thin)."""
    for name, value in settings.items():
        setattr(runtime, name, value)


def plugins_to_load(requested: Sequence[str], facts: PlanFacts) -> tuple[str, ...]:
    """The requested libraries the plan does not carry (compared by file name: the plan records the build
    machine's paths)."""
    carried = {Path(p).name for p in facts.carried_plugins}
    return tuple(p for p in requested if Path(p).name not in carried)


__all__ = ["PlanFacts", "RuntimeSettings", "apply_runtime_settings", "engine_entry", "plan_facts_near", "plugins_to_load",
           "runtime_settings"]
