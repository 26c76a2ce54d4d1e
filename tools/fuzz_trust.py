"""The long trust fuzz run: tests/trust/fuzzlib.py's cases, N of them over several hypothesis seeds, in one
process (the CLI in-process, one fixture made once and copied per case). Writes the count, the seeds, the cases per
kind, the failures (with their output) and the conditions to benchmarks/results/fuzz_trust.json.

    PYTHONPATH=. python tools/fuzz_trust.py --cases 10000 --seeds 10
    # or side by side over disjoint seeds, then merged:
    PYTHONPATH=. python tools/fuzz_trust.py --cases 5000 --seeds 5 --first-seed 1 --out /tmp/a.json &
    PYTHONPATH=. python tools/fuzz_trust.py --cases 5000 --seeds 5 --first-seed 6 --out /tmp/b.json
    PYTHONPATH=. python tools/fuzz_trust.py --merge /tmp/a.json /tmp/b.json --out benchmarks/results/fuzz_trust.json
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _result(args, count, failures, seeds, per_seed, kinds, elapsed, fixture_s, complete) -> dict:
    from benchmarks._env import package_version

    return {
        "benchmark": "fuzz_trust",
        "what": "mutated manifests, bundles, bundle archives, ONNX files, reference.npz, checkpoints and target "
                "TOMLs through the real CLI (in-process); each case asserts exit code in {1,2,3} (0 only where the "
                "mutation may leave the input valid), no traceback, no internal error, the input folder and "
                "output folder untouched, nothing written outside the case folder, no pickle code run",
        "complete": complete,
        "cases": count,
        "failures": len(failures),
        "failure_samples": failures[:20],
        "seeds": seeds,
        "cases_per_seed": per_seed,
        "cases_by_kind": dict(sorted(kinds.items())),
        "seconds": round(elapsed, 1),
        "fixture_seconds": round(fixture_s, 1),
        "ms_per_case": round(1000 * elapsed / max(count, 1), 1),
        "conditions": {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                       "python": platform.python_version(), "torch": package_version("torch"),
                       "onnxruntime": package_version("onnxruntime"), "onnx": package_version("onnx"),
                       "hypothesis": package_version("hypothesis"), "numpy": package_version("numpy"),
                       "note": "shared 2-core machine, other jobs running (load average ~13)"},
    }


def merge(paths: list[Path], out: Path) -> dict:
    """One result from several runs over disjoint seeds (run side by side on the shared machine)."""
    parts = [json.loads(p.read_text()) for p in paths]
    kinds: collections.Counter[str] = collections.Counter()
    for p in parts:
        kinds.update(p["cases_by_kind"])
    merged = {**parts[0], "complete": all(p["complete"] for p in parts),
              "cases": sum(p["cases"] for p in parts), "failures": sum(p["failures"] for p in parts),
              "failure_samples": [f for p in parts for f in p["failure_samples"]][:20],
              "seeds": [s for p in parts for s in p["seeds"]], "cases_by_kind": dict(sorted(kinds.items())),
              "seconds": max(p["seconds"] for p in parts), "processes": len(parts),
              "ms_per_case": round(1000 * sum(p["seconds"] for p in parts) / max(sum(p["cases"] for p in parts), 1),
                                   1)}
    out.write_text(json.dumps(merged, indent=2) + "\n")
    return merged


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, default=10, help="hypothesis seeds the cases are split over")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--per-seed", type=int, default=None, help="cases per seed (default: cases / seeds)")
    ap.add_argument("--merge", type=Path, nargs="*", help="merge these result files into --out and exit")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz_trust.json")
    args = ap.parse_args()
    if args.merge:
        merged = merge(args.merge, args.out)
        print(f"{merged['cases']} cases, {merged['failures']} failures -> {args.out}")
        return 1 if merged["failures"] else 0

    import torch
    from hypothesis import HealthCheck, given, seed, settings

    from tests.trust.fixture import build_fixture
    from tests.trust.fuzzlib import cases, run_case

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="deployconv-fuzz-"))
    t0 = time.perf_counter()
    fx = build_fixture(tmp / "fixture")
    fixture_s = time.perf_counter() - t0
    kinds: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    per_seed = args.per_seed or -(-args.cases // args.seeds)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    count = 0
    t1 = time.perf_counter()
    for s in seeds:
        @seed(s)
        @settings(max_examples=per_seed, deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck))
        @given(case=cases())
        def one(case) -> None:
            nonlocal count
            work = tmp / "cases" / f"{count}"
            count += 1
            kinds[f"{case.kind}:{case.params.get('op')}"] += 1
            failure = run_case(fx, case, work)
            shutil.rmtree(work, ignore_errors=True)
            if failure is not None:
                failures.append(failure)
                print(f"FAILURE {failure}", flush=True)
            if count % 500 == 0:
                print(f"{count} cases, {len(failures)} failures, {time.perf_counter() - t1:.0f} s", flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(_result(args, count, failures, seeds, per_seed, kinds,
                                                       time.perf_counter() - t1, fixture_s, False), indent=2) + "\n")

        one()
    elapsed = time.perf_counter() - t1
    result = _result(args, count, failures, seeds, per_seed, kinds, elapsed, fixture_s, True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"{count} cases, {len(failures)} failures, {elapsed:.0f} s -> {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
