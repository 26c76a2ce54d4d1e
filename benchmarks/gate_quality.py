"""How often does `deployconv gate` cry wolf, and how often does it catch a real slowdown? On this machine,
with real `deployconv bench` runs (one process each, as in CI), on ONNX Runtime CPU.

Models, built here with onnx.helper so the script is self-contained and torch-free: a plain RepVGG-style
deploy-form net (3x3 conv + ReLU stem at stride 2, then BLOCKS identical 3x3 conv + ReLU blocks at 32x32,
global pool, linear head), and the "slow" variant with one more block: real extra work on the same runtime,
not a sleep. Its true slowdown is measured first, interleaved in one process (alternating short windows of
both models, so load drift hits both equally), and must be >= 15%, else the script stops.

Each trial benches the baseline model twice (A, B) and the slow model once (C), in a shuffled order, each a
separate `python -m deployconv bench ... --out` process. Then, through `deployconv.validate.gate.gate` (the
code the CLI calls): a false alarm is gate(A, B) giving "regression" (exit 1); a detection is gate(A, C)
giving "regression". "Too noisy" (exit 3) counts as neither. A second, harsher reading keeps trial 0's A as
a fixed baseline for every later run, as a CI baseline stored once would be.

Usage: python -m benchmarks.gate_quality [--trials 24] [--duration 3] [--repeat 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from benchmarks._env import fingerprint as env_fingerprint
from deployconv.core.fsio import write_text_atomic
from deployconv.runtime.timing import BenchResult
from deployconv.validate.gate import DEFAULT_MAX_REGRESSION, DEFAULT_RUN_NOISE, gate
from deployconv.validate.gate_stats import (
    bootstrap_log_ratio,
    metric_value,
    percentile_interval,
    resampling_units,
)

RESULTS = Path(__file__).parent / "results" / "gate_quality_cpu.json"
BLOCKS, CHANNELS, SIZE = 6, 32, 64
MIN_SLOWDOWN = 0.15
TARGET_FALSE_ALARMS, TARGET_DETECTION = 1, 0.95
METRICS = ("median", "p10")


def plain_net(blocks: int, channels: int = CHANNELS, size: int = SIZE) -> onnx.ModelProto:
    """x: float32[N, 3, size, size] -> logits: float32[N, 10]; seeded He-init weights."""
    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def conv_relu(x: str, cin: int, stride: int, name: str) -> str:
        w = (rng.standard_normal((channels, cin, 3, 3)) * math.sqrt(2 / (9 * cin))).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, f"{name}.w"),
                      numpy_helper.from_array(np.zeros(channels, np.float32), f"{name}.b")])
        nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [f"{name}.conv"], pads=[1, 1, 1, 1],
                                      strides=[stride, stride]))
        nodes.append(helper.make_node("Relu", [f"{name}.conv"], [name]))
        return name

    x = conv_relu("x", 3, 2, "stem")
    for i in range(blocks):
        x = conv_relu(x, channels, 1, f"block{i}")
    inits.append(numpy_helper.from_array(rng.standard_normal((channels, 10)).astype(np.float32), "head.w"))
    nodes += [helper.make_node("GlobalAveragePool", [x], ["pool"]), helper.make_node("Flatten", ["pool"], ["flat"]),
              helper.make_node("MatMul", ["flat", "head.w"], ["logits"])]
    graph = helper.make_graph(nodes, f"plain{blocks}",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    return model


def true_slowdown(base: Path, slow: Path, threads: int, rounds: int = 40, window_s: float = 0.15) -> dict:
    """Slow/base latency measured interleaved in one process: `rounds` alternating windows of each."""
    from deployconv.runtime import OrtRunner

    feed = {"x": np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)}
    runners = {"base": OrtRunner(base, threads=threads).activate(), "slow": OrtRunner(slow, threads=threads).activate()}
    samples: dict[str, list[float]] = {"base": [], "slow": []}
    per_round = []
    for r in range(rounds):
        medians = {}
        for name in (("base", "slow") if r % 2 == 0 else ("slow", "base")):
            run, out = runners[name], []
            end = time.perf_counter() + window_s
            while time.perf_counter() < end:
                run.infer(feed, check_inputs=False)
                out.append(run.last_inference_ns / 1e6)
            samples[name] += out[1:]  # the first run after a switch pays for the other model's cache traffic
            medians[name] = float(np.median(out[1:]))
        per_round.append(medians["slow"] / medians["base"])
    for run in runners.values():
        run.deactivate()
    return {"ratio_of_medians": float(np.median(samples["slow"]) / np.median(samples["base"])),
            "median_of_round_ratios": float(np.median(per_round)),
            "base_median_ms": float(np.median(samples["base"])), "slow_median_ms": float(np.median(samples["slow"])),
            "rounds": rounds, "window_s": window_s, "threads": threads}


def bench(model: Path, out: Path, args: argparse.Namespace) -> BenchResult:
    cmd = [sys.executable, "-m", "deployconv", "bench", str(model), "--threads", str(args.threads), "--warmup",
           str(args.warmup), "--duration", str(args.duration), "--repeat", str(args.repeat), "--out", str(out),
           "--force"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"bench failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return BenchResult.from_dict(json.loads(out.read_text()))


def rates(pairs: list[tuple[BenchResult, BenchResult]], **kw) -> dict:
    """Verdict counts of gate() over (baseline, current) pairs."""
    verdicts = [gate(a, b, **kw).verdict for a, b in pairs]
    return {v: verdicts.count(v) for v in ("pass", "regression", "noisy", "incomparable")} | {"runs": len(verdicts)}


def calibration(identical: list[tuple[BenchResult, BenchResult]], metric: str) -> dict:
    """How honest the within-run interval is: for identical pairs, the spread of log ratios against the
    bootstrap's own standard error (run_noise = 0), and the between-run noise beyond what runs show inside."""
    z, se2, cover, obs = [], [], [], []
    for a, b in identical:
        lr = bootstrap_log_ratio(resampling_units(a.samples_ms, a.block_sizes),
                                 resampling_units(b.samples_ms, b.block_sizes), metric, resamples=2000, seed=0,
                                 run_noise=0.0)
        o = math.log(metric_value(np.asarray(b.samples_ms), metric) / metric_value(np.asarray(a.samples_ms), metric))
        obs.append(o)
        z.append(o / lr.std())
        se2.append(lr.var())
        lo, hi = percentile_interval(lr, 0.95)
        cover.append(lo <= 1.0 <= hi)
    obs_var = float(np.mean(np.square(obs)))
    extra = max(0.0, obs_var - float(np.mean(se2))) / 2.0  # per run: a log ratio carries two runs' noise
    return {"pairs": len(identical), "rms_log_ratio": math.sqrt(obs_var),
            "max_abs_change": float(np.max(np.abs(np.expm1(obs)))),
            "within_run_se_rms": math.sqrt(float(np.mean(se2))),
            "sd_of_z_without_run_noise": float(np.std(z)),
            "coverage_of_1_without_run_noise": float(np.mean(cover)),
            "between_run_noise_estimate": math.sqrt(extra)}


def measure(args: argparse.Namespace, runs_dir: Path) -> None:
    """Build the models, measure the injected slowdown, bench the trials; everything lands in runs_dir."""
    rng = np.random.default_rng(args.seed)
    base, slow = runs_dir / "base.onnx", runs_dir / "slow.onnx"
    onnx.save(plain_net(BLOCKS), str(base))
    onnx.save(plain_net(BLOCKS + 1), str(slow))
    load_before = list(os.getloadavg())
    started = time.time()
    injected = true_slowdown(base, slow, args.threads)
    print(f"injected slowdown (interleaved, in-process): {injected['ratio_of_medians'] - 1:+.1%}", flush=True)
    if injected["ratio_of_medians"] - 1 < MIN_SLOWDOWN:
        raise SystemExit(f"the slow variant is only {injected['ratio_of_medians'] - 1:+.1%} slower "
                         f"(< {MIN_SLOWDOWN:.0%}): not a fair test of detection")
    trials = []
    for t in range(args.trials):
        order = [str(s) for s in rng.permutation(["A", "B", "C"])]
        runs = {name: bench(slow if name == "C" else base, runs_dir / f"{t:02d}{name}.json", args) for name in order}
        trials.append({"trial": t, "order": "".join(order), "files": {n: f"{t:02d}{n}.json" for n in runs}})
        ga, gc = gate(runs["A"], runs["B"]), gate(runs["A"], runs["C"])
        print(f"trial {t:2d} order {''.join(order)} load {os.getloadavg()[0]:5.2f}  identical: {ga.verdict:10s} "
              f"{ga.ratio - 1:+.1%} [{ga.ci_low - 1:+.1%}, {ga.ci_high - 1:+.1%}]   slow: {gc.verdict:10s} "
              f"{gc.ratio - 1:+.1%} [{gc.ci_low - 1:+.1%}, {gc.ci_high - 1:+.1%}]", flush=True)
    index = {"trials": trials, "injected_slowdown": injected, "load_avg_before": load_before,
             "load_avg_after": list(os.getloadavg()), "wall_s": round(time.time() - started, 1),
             "bench": {"threads": args.threads, "warmup_s_per_block": args.warmup, "duration_s": args.duration,
                       "repeat": args.repeat, "process_per_run": True}}
    write_text_atomic(runs_dir / "index.json", json.dumps(index, indent=2) + "\n")


def analyze(runs_dir: Path) -> dict:
    """Gate verdicts over the measured trials, per metric, at the default settings and around them."""
    index = json.loads((runs_dir / "index.json").read_text())
    trials = [{n: BenchResult.from_dict(json.loads((runs_dir / f).read_text())) for n, f in t["files"].items()}
              for t in index["trials"]]
    pairs = {"pairwise": {"identical": [(r["A"], r["B"]) for r in trials], "slowed": [(r["A"], r["C"]) for r in trials]},
             "fixed_baseline": {
                 "identical": [(trials[0]["A"], r[k]) for i, r in enumerate(trials) for k in "AB" if (i, k) != (0, "A")],
                 "slowed": [(trials[0]["A"], r["C"]) for r in trials]}}
    defaults = {"max_regression": DEFAULT_MAX_REGRESSION, "run_noise": DEFAULT_RUN_NOISE}
    by_metric = {}
    for metric in METRICS:
        kw = {"metric": metric, **defaults}
        got = {reading: {kind: rates(ps, **kw) for kind, ps in kinds.items()} for reading, kinds in pairs.items()}
        p = got["pairwise"]
        by_metric[metric] = {**got, "false_alarms": p["identical"]["regression"],
                             "detection_rate": p["slowed"]["regression"] / p["slowed"]["runs"],
                             "met": p["identical"]["regression"] <= TARGET_FALSE_ALARMS
                             and p["slowed"]["regression"] / p["slowed"]["runs"] >= TARGET_DETECTION,
                             "calibration": calibration(pairs["pairwise"]["identical"], metric)}
    sensitivity = []  # pairwise only: each gate call costs a bootstrap
    for metric, limit, noise in itertools.product(METRICS, (0.05, 0.10), (0.0, 0.01, 0.02)):
        kw = {"metric": metric, "max_regression": limit, "run_noise": noise}
        sensitivity.append({**kw, "pairwise": {kind: rates(ps, **kw) for kind, ps in pairs["pairwise"].items()}})
    rows = []
    for t, r in zip(index["trials"], trials):
        row = {"trial": t["trial"], "order": t["order"]}
        for name, run in r.items():
            row[name] = {"median_ms": float(np.median(run.samples_ms)),
                         "p10_ms": float(np.percentile(run.samples_ms, 10)), "count": len(run.samples_ms),
                         "load_avg": list(run.fingerprint.load_avg or []), "started_at": run.conditions.get("started_at")}
        for label, cur in (("identical", r["B"]), ("slowed", r["C"])):
            for metric in METRICS:
                g = gate(r["A"], cur, metric=metric, **defaults)
                row[f"{label}_{metric}"] = {"verdict": g.verdict, "ratio": g.ratio, "ci": [g.ci_low, g.ci_high]}
        rows.append(row)
    return {"index": index, "by_metric": by_metric, "sensitivity": sensitivity, "rows": rows,
            "bench_fingerprint": trials[0]["A"].fingerprint.to_dict()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=0.2)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="order of the runs in each trial")
    ap.add_argument("--runs", type=Path, help="keep the bench runs here (default: a new temporary directory)")
    ap.add_argument("--analyze", type=Path, help="only re-analyze the runs kept in this directory")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    if args.analyze:
        runs_dir = args.analyze
    else:
        runs_dir = args.runs or Path(tempfile.mkdtemp(prefix="gate_quality_"))
        runs_dir.mkdir(parents=True, exist_ok=True)
        print(f"runs kept in {runs_dir}", flush=True)
        measure(args, runs_dir)
    a = analyze(runs_dir)
    index = a["index"]
    result = {
        "what": "deployconv gate quality: false alarms on identical models, detection of an injected slowdown",
        "env": env_fingerprint(),
        "bench_fingerprint": a["bench_fingerprint"],
        "conditions": {"runtime": "onnxruntime CPU (ort-cpu)", **index["bench"],
                       "why_threads": "1 intra-op thread: the 2-core host is shared with other jobs, where a "
                                      "descheduled pool thread stalls every op of a 2-thread session",
                       "model": f"plain conv net: stem + {BLOCKS} x (3x3 conv {CHANNELS}ch + ReLU) at "
                                f"{SIZE // 2}x{SIZE // 2}, input 1x3x{SIZE}x{SIZE}",
                       "injection": f"slow variant: {BLOCKS + 1} blocks instead of {BLOCKS} (extra real work)",
                       "injected_slowdown": index["injected_slowdown"],
                       "load_avg_before": index["load_avg_before"], "load_avg_after": index["load_avg_after"],
                       "wall_s": index["wall_s"]},
        "measured": {"first_run_started": min(r[n]["started_at"] for r in a["rows"] for n in "ABC"),
                     "last_run_started": max(r[n]["started_at"] for r in a["rows"] for n in "ABC"),
                     "analyzed_by": "python -m benchmarks.gate_quality (gate code of this commit)"},
        "trials": len(index["trials"]),
        "gate_settings": {"max_regression": DEFAULT_MAX_REGRESSION, "run_noise": DEFAULT_RUN_NOISE,
                          "noise_threshold": "= max_regression", "confidence": 0.95, "resamples": 2000, "seed": 0},
        "targets": {"false_alarms_max": TARGET_FALSE_ALARMS, "detection_min": TARGET_DETECTION},
        "by_metric": a["by_metric"],
        "sensitivity": a["sensitivity"],
        "rows": a["rows"],
    }
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    for metric, m in a["by_metric"].items():
        p = m["pairwise"]
        print(f"{metric:6s}: identical {p['identical']}  slowed {p['slowed']}  -> false alarms {m['false_alarms']}, "
              f"detection {m['detection_rate']:.0%}, targets met: {m['met']}")
        print(f"        fixed baseline: identical {m['fixed_baseline']['identical']}  slowed {m['fixed_baseline']['slowed']}")
        print(f"        calibration: {json.dumps(m['calibration'])}")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
