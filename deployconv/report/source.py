"""What `deployconv report` reads: an exported directory's report.json and manifest.json, plus gate.json and
`bench*.json` results (`deployconv bench --out`) where present. Torch-free.

Everything is checked on the way in, so the page code can index without guessing: a directory that is not an
export, or a file that is not valid JSON or lacks what the page needs, is a BadInputError naming the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployconv.core.artifacts import ExportReport, Manifest
from deployconv.core.artifacts.names import MANIFEST, REPORT
from deployconv.core.errors import BadInputError

GATE = "gate.json"
BENCH_GLOB = "bench*.json"
EXPORT_FORMAT = "deployconv.export/"
BENCH_SCHEMA = "deployconv.bench/1"


@dataclass(frozen=True)
class BenchFile:
    """A `deployconv bench --out` result saved in the directory (e.g. TensorRT timed on the device)."""

    name: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ExportDir:
    """An export directory as the page reads it: report.json and manifest.json through their types
    (deployconv.core.artifacts), read as strictly as `validate` reads them."""

    path: Path
    report: ExportReport
    manifest: Manifest
    report_sha256: str
    gate: dict[str, Any] | None = None
    benches: tuple[BenchFile, ...] = ()

    @property
    def report_matches_manifest(self) -> bool | None:
        """Whether report.json is the one the manifest hashed at export; None when the manifest has no hash."""
        recorded = self.manifest.files.get(REPORT)
        return None if recorded is None else recorded == self.report_sha256


def _not_export(directory: Path, why: str) -> BadInputError:
    return BadInputError(f"{directory} is not a deployconv export directory", why=why,
                         fix="pass a directory written by `deployconv export` (it holds manifest.json and report.json)")


def _read_json(path: Path, fix: str) -> Any:
    try:
        text = path.read_text()
    except OSError as e:
        raise BadInputError(f"cannot read {path}", why=str(e), fix=fix) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInputError(f"{path} is corrupt", why=f"not valid JSON: {e}", fix=fix) from None


def _require(report: ExportReport, path: Path) -> None:
    """The fields the page cannot do without; the rest is optional and shown when present."""
    fix = "re-export with this deployconv version (`deployconv export ... --force`)"
    parity = report.parity
    missing = [f"parity.{k}" for k in ("stages", "budget", "passed") if k not in parity]
    if missing:
        raise BadInputError(f"{path} lacks {', '.join(missing)}",
                            why="it was written by another deployconv version, or edited", fix=fix)
    stages = parity["stages"]
    if not isinstance(stages, list) or not all(isinstance(s, dict) and "stage" in s and "passed" in s
                                               for s in stages):
        raise BadInputError(f"{path}: parity.stages is not a list of stages", why="the file was edited or is "
                            "from another tool", fix=fix)
    latency = report.latency
    if latency is not None and not (isinstance(latency, dict) and isinstance(latency.get("runs"), dict)):
        raise BadInputError(f"{path}: latency has no runs", fix=fix)


def _check_run(run: Any, where: str) -> None:
    if not (isinstance(run, dict) and isinstance(run.get("stats"), dict) and "median_ms" in run["stats"]
            and "p99_ms" in run["stats"]):
        raise BadInputError(f"{where} is not a latency result", why="it has no stats.median_ms / stats.p99_ms",
                            fix="re-run the benchmark with this deployconv version")


def load_export_dir(directory: Path) -> ExportDir:
    """Read and check DIR; BadInputError (what/why/fix) for anything the page cannot use."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BadInputError(f"{directory} is not a directory", why="it does not exist" if not directory.exists()
                            else "it is a file", fix="pass the folder written by `deployconv export`")
    manifest_path, report_path = directory / MANIFEST, directory / REPORT
    if not manifest_path.is_file():
        raise _not_export(directory, f"it has no {MANIFEST}")
    raw_manifest = _read_json(manifest_path, "re-export (`deployconv export ... --force`); the manifest is written last")
    fmt = raw_manifest.get("format") if isinstance(raw_manifest, dict) else None
    if not (isinstance(fmt, str) and fmt.startswith(EXPORT_FORMAT)):
        raise _not_export(directory, f"{MANIFEST} has format {fmt!r}, not {EXPORT_FORMAT}*")
    manifest = Manifest.from_dict(raw_manifest, str(manifest_path))
    if not report_path.is_file():
        raise _not_export(directory, f"it has no {REPORT}")
    raw = report_path.read_bytes()
    data = _read_json(report_path, "re-export (`deployconv export ... --force`)")
    if not isinstance(data, dict):
        raise BadInputError(f"{report_path} is corrupt", why="it is not a JSON object", fix="re-export")
    missing = [k for k in ("model", "target", "parity") if k not in data]
    if missing:
        raise BadInputError(f"{report_path} lacks {', '.join(missing)}",
                            why="it was written by another deployconv version, or edited",
                            fix="re-export with this deployconv version (`deployconv export ... --force`)")
    report = ExportReport.from_dict(data, str(report_path))
    _require(report, report_path)
    for label, run in ((report.latency or {}).get("runs") or {}).items():
        _check_run(run, f"{report_path} latency run {label!r}")
    gate = None
    if (directory / GATE).is_file():
        gate = _read_json(directory / GATE, f"regenerate {GATE} with `deployconv gate`, or remove it")
        if not isinstance(gate, dict):
            raise BadInputError(f"{directory / GATE} is not a gate result", why="it is not a JSON object",
                                fix=f"regenerate {GATE} with `deployconv gate`, or remove it")
    benches = []
    for p in sorted(directory.glob(BENCH_GLOB)):
        data = _read_json(p, f"re-run `deployconv bench --out {p.name}`, or remove it")
        if not (isinstance(data, dict) and data.get("schema") == BENCH_SCHEMA):
            raise BadInputError(f"{p} is not a deployconv benchmark result",
                                why=f"schema {data.get('schema') if isinstance(data, dict) else None!r}, "
                                    f"not {BENCH_SCHEMA}",
                                fix=f"rename it (files named {BENCH_GLOB} are read as benchmark results)")
        _check_run(data, str(p))
        benches.append(BenchFile(p.name, data))
    return ExportDir(directory, report, manifest, hashlib.sha256(raw).hexdigest(), gate, tuple(benches))
