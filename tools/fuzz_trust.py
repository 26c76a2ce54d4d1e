"""The long trust fuzz run: tests/trust/fuzzlib.py's cases, N of them over several hypothesis seeds, in one
process (the CLI in-process, one fixture made once and copied per case). Writes the count, the seeds, the cases per
kind, the failures (with their output) and the conditions to benchmarks/results/fuzz_trust.json.

    PYTHONPATH=. python tools/fuzz_trust.py --cases 10000 --seeds 10
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, default=10, help="hypothesis seeds the cases are split over")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--per-seed", type=int, default=None, help="cases per seed (default: cases / seeds)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz_trust.json")
    args = ap.parse_args()

    import torch
    from hypothesis import HealthCheck, given, seed, settings

    from benchmarks._env import package_version
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

        one()
    elapsed = time.perf_counter() - t1
    result = {
        "benchmark": "fuzz_trust",
        "what": "mutated manifests, bundles, bundle archives, ONNX files, reference.npz, checkpoints and target "
                "TOMLs through the real CLI (in-process); each case asserts exit code in {1,2,3} (0 only where the "
                "mutation may leave the input valid), no traceback, no internal error, the input folder and "
                "output folder untouched, nothing written outside the case folder, no pickle code run",
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
                       "note": "shared 2-core machine, other jobs running"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"{count} cases, {len(failures)} failures, {elapsed:.0f} s -> {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
