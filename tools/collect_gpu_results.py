"""Turn a tools/gpu_check.sh output folder into one summary and the files committed under benchmarks/results/.

    python tools/collect_gpu_results.py summarize OUT_DIR
        (the last stage of gpu_check.sh, on the GPU machine) writes OUT_DIR/gpu_check.json: versions, every
        stage's status and time, the goals (kernel goals from gpu_kernels_*.json, the parity goal from the GPU
        tests' JUnit XML), the models' "ours vs eager" parity and what each result file is.
    python tools/collect_gpu_results.py collect OUT_DIR [--results benchmarks/results] [--force] [--json]
        (here, after the run's files came back) copies the results as benchmarks/results/gpu_*_<gpu>.json:
        gpu_check_<gpu>.json (re-summarized from OUT_DIR), gpu_kernels_<gpu>.json, gpu_models_<gpu>.json and
        gpu_plugin_enqueue_<gpu>.json where present. Refuses to overwrite without --force; writes atomically.
Pure Python (no torch): it runs where the results are read, not where they were measured.
Exit codes: 0 done, 2 bad input (no such folder, unreadable JSON, existing files without --force).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:  # run as a script from anywhere: the repository's packages first
    sys.path.insert(0, str(_REPO))

from benchmarks.gpu_goals import NOT_EVALUATED, Goal, parity_goal, plugin_enqueue_goal  # noqa: E402
from deployconv.core.errors import BadInputError, DeployconvError  # noqa: E402
from deployconv.core.fsio import safe_name, write_text_atomic  # noqa: E402

SUMMARY = "gpu_check.json"
STAGES = "stages.tsv"
ENVIRONMENT = "environment.json"
JUNIT = "gpu_tests.xml"
ENQUEUE = "plugin_enqueue.json"
# (glob in OUT_DIR, committed name prefix); the committed name is f"{prefix}_{gpu slug}.json"
RESULT_FILES = (("gpu_kernels_*.json", "gpu_kernels"), ("gpu_models_*.json", "gpu_models"),
                (ENQUEUE, "gpu_plugin_enqueue"))


@dataclass
class Stage:
    name: str
    status: str  # passed, failed, timeout, skipped
    rc: int | None
    seconds: float
    limit_s: float | None
    note: str


def read_stages(text: str) -> list[Stage]:
    """stages.tsv as written by gpu_check.sh: name, status, rc ('-' when none), seconds, limit ('-'), note."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        parts += [""] * (6 - len(parts))
        name, status, rc, secs, limit, note = parts[:6]
        out.append(Stage(name, status, None if rc in ("", "-") else int(rc), float(secs or 0),
                         None if limit in ("", "-") else float(limit), note))
    return out


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BadInputError(f"cannot read {path}", why=f"{type(e).__name__}: {e}",
                            fix="re-run tools/gpu_check.sh or fetch the run's files again") from None


def _one(out_dir: Path, pattern: str) -> Path | None:
    found = sorted(out_dir.glob(pattern))
    return found[-1] if found else None


def model_parity(models: dict) -> list[dict]:
    """The "ours" rows of a gpu_models JSON: parity against eager in the same dtype, and the speed-up."""
    rows = models.get("results", [])
    eager = {(r["model"], r["dtype"], r["batch"]): r for r in rows if r["variant"] == "eager" and r["status"] == "ok"}
    out = []
    for r in rows:
        if r["variant"] != "ours":
            continue
        item = {"model": r["model"], "dtype": r["dtype"], "batch": r["batch"], "status": r["status"],
                "reason": r.get("reason", "")}
        if r["status"] == "ok":
            p = r.get("parity_vs_eager") or {}
            item.update(max_abs_over_scale=p.get("max_abs_over_scale"), cosine=p.get("cosine"))
            e = eager.get((r["model"], r["dtype"], r["batch"]))
            if e and e.get("latency") and r.get("latency"):
                item["speedup_vs_eager"] = round(e["latency"]["median_ms"] / r["latency"]["median_ms"], 3)
        out.append(item)
    return out


def summarize(out_dir: Path) -> dict:
    """The run's summary (see the module docstring) from the files in out_dir."""
    if not out_dir.is_dir():
        raise BadInputError(f"{out_dir} is not a folder", fix="pass the $OUT folder of a tools/gpu_check.sh run")
    try:  # written by a shell redirect: empty when the environment stage failed
        env = _load_json(out_dir / ENVIRONMENT) if (out_dir / ENVIRONMENT).exists() else {}
    except BadInputError:
        env = {}
    stages = read_stages((out_dir / STAGES).read_text()) if (out_dir / STAGES).exists() else []
    goals: list[dict] = []
    files: dict[str, str] = {}
    kernels_path = _one(out_dir, "gpu_kernels_*.json")
    if kernels_path is not None:
        kernels = _load_json(kernels_path)
        goals += kernels.get("goals", [])
        files["gpu_kernels"] = kernels_path.name
        env = env or kernels.get("gpu_env", {})
    else:
        goals += [asdict(Goal(n, "see benchmarks/gpu_goals.py", NOT_EVALUATED, "the kernel benchmark wrote no JSON"))
                  for n in ("ska_dram", "dcnv2_fp16", "dwconv")]
    junit = out_dir / JUNIT
    goals.append(asdict(parity_goal(junit.read_text() if junit.exists() else None)))
    models_path = _one(out_dir, "gpu_models_*.json")
    parity_rows = []
    if models_path is not None:
        models = _load_json(models_path)
        files["gpu_models"] = models_path.name
        parity_rows = model_parity(models)
        env = env or models.get("gpu_env", {})
    enqueue = _load_json(out_dir / ENQUEUE) if (out_dir / ENQUEUE).exists() else None
    goals.append(asdict(plugin_enqueue_goal(enqueue)))
    if enqueue is not None:
        files["plugin_enqueue"] = ENQUEUE
    failed = [s.name for s in stages if s.status in ("failed", "timeout")]
    return {
        "benchmark": "gpu_check",
        "gpu_env": env,
        "stages": [asdict(s) for s in stages],
        "failed_stages": failed,
        "goals": goals,
        "models_ours_vs_eager": parity_rows,
        "files": files,
    }


def gpu_slug(summary: dict) -> str:
    name = (summary.get("gpu_env") or {}).get("gpu")
    if not name:
        raise BadInputError("the run does not say which GPU it ran on",
                            why=f"{ENVIRONMENT} and the kernel benchmark's JSON have no GPU name",
                            fix="collect the $OUT folder of a run on a GPU machine")
    return safe_name(name).lower()


def plan_collect(out_dir: Path, results: Path, summary: dict) -> list[tuple[Path | None, Path]]:
    """(source in out_dir or None for the summary, destination) for every file to commit."""
    slug = gpu_slug(summary)
    moves: list[tuple[Path | None, Path]] = [(None, results / f"gpu_check_{slug}.json")]
    for pattern, prefix in RESULT_FILES:
        src = _one(out_dir, pattern)
        if src is not None:
            moves.append((src, results / f"{prefix}_{slug}.json"))
    return moves


def collect(out_dir: Path, results: Path, force: bool) -> list[Path]:
    summary = summarize(out_dir)
    moves = plan_collect(out_dir, results, summary)
    existing = [dst for _, dst in moves if dst.exists()]
    if existing and not force:
        raise BadInputError("results already exist: " + ", ".join(str(p) for p in existing),
                            fix="pass --force to replace them (git keeps the old ones)")
    texts = [(dst, json.dumps(summary, indent=2) + "\n" if src is None
              else json.dumps(_load_json(src), indent=2) + "\n") for src, dst in moves]  # every file read first
    results.mkdir(parents=True, exist_ok=True)
    for dst, text in texts:
        write_text_atomic(dst, text)
    return [dst for dst, _ in texts]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tools/collect_gpu_results.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("summarize", help="write OUT_DIR/gpu_check.json (the last stage of gpu_check.sh)")
    s.add_argument("out_dir", type=Path)
    c = sub.add_parser("collect", help="copy a run's results into benchmarks/results/ as gpu_*_<gpu>.json")
    c.add_argument("out_dir", type=Path)
    c.add_argument("--results", type=Path, default=_REPO / "benchmarks" / "results")
    c.add_argument("--force", action="store_true", help="replace existing result files")
    c.add_argument("--json", action="store_true", help="print the written paths as JSON")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "summarize":
            summary = summarize(args.out_dir)
            write_text_atomic(args.out_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
            for g in summary["goals"]:
                print(f"goal {g['name']}: {g['status']} - {g['summary']}")
            print(f"wrote {args.out_dir / SUMMARY}")
        else:
            written = collect(args.out_dir, args.results, args.force)
            print(json.dumps([str(p) for p in written]) if args.json else "\n".join(f"wrote {p}" for p in written))
    except DeployconvError as e:
        print(e.render(), file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
