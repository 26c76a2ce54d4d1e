"""`deployconv gate`: exit codes (0 pass, 1 regression, 3 incomparable or too noisy, 2 bad input), markdown
and JSON reports, and baselines written only on purpose. Runs are synthetic (seeded) bench files, plus one
real `bench --out` run; no assert depends on how fast anything runs."""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from deployconv.cli.app import app
from deployconv.cli.bench import bench_cmd
from deployconv.cli.gate import gate_cmd, parse_percent
from deployconv.core.errors import BadInputError
from deployconv.runtime.timing import BenchResult, summarize
from deployconv.validate.fingerprint import Fingerprint
from tests.runtime import save, tiny_classifier
from tests.test_torch_free import BLOCKER, REPO, run_blocked

# cli.py registers the commands (one line each); until it does, register them here so these tests exercise
# the commands themselves.
for _name, _cmd in (("gate", gate_cmd), ("bench", bench_cmd)):
    if not any(c.name == _name for c in app.registered_commands):
        app.command(_name)(_cmd)

runner = CliRunner()
FP = Fingerprint(cpu_model="Test CPU", cpu_logical_cores=2, cpu_affinity=2, machine="x86_64", system="Linux",
                 os="Linux-test", load_avg=(0.1, 0.1, 0.1), python="3.11.7", numpy="2.0", onnxruntime="1.31.1",
                 runtime="onnxruntime", runtime_version="1.31.1", providers=("CPUExecutionProvider",), threads=1,
                 graph_sha256="a" * 64, batch=1, inputs={"x": {"shape": [1, 3, 8, 8], "dtype": "float32"}})


def write_run(path, n: int, median: float, sigma: float, seed: int, **fingerprint):
    xs = [float(v) for v in median * np.exp(np.random.default_rng(seed).normal(0.0, sigma, n))]
    run = BenchResult(samples_ms=xs, stats=summarize(xs, batch=1), fingerprint=replace(FP, **fingerprint),
                      conditions={"started_at": "2025-01-01T00:00:00+00:00"}, block_sizes=(n // 2, n - n // 2))
    path.write_text(json.dumps(run.to_dict()))
    return path


def gate(*args):
    return runner.invoke(app, ["gate", *map(str, args)])


@pytest.fixture
def runs(tmp_path):
    return {"base": write_run(tmp_path / "base.json", 400, 1.0, 0.05, seed=0),
            "same": write_run(tmp_path / "same.json", 400, 1.0, 0.05, seed=0),
            "slow": write_run(tmp_path / "slow.json", 400, 1.3, 0.05, seed=1),
            "noisy_a": write_run(tmp_path / "noisy_a.json", 60, 1.0, 0.3, seed=2),
            "noisy_b": write_run(tmp_path / "noisy_b.json", 60, 1.05, 0.3, seed=3),
            "threads": write_run(tmp_path / "threads.json", 400, 1.0, 0.05, seed=0, threads=4)}


def test_exit_codes(runs):
    res = gate("--baseline", runs["base"], "--current", runs["same"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("### deployconv latency gate: PASS") and "95% CI" in res.stdout
    res = gate("--baseline", runs["base"], "--current", runs["slow"])
    assert res.exit_code == 1 and "REGRESSION" in res.stdout and "gate: regression" in res.stderr
    res = gate("--baseline", runs["noisy_a"], "--current", runs["noisy_b"])
    assert res.exit_code == 3 and "TOO NOISY TO DECIDE" in res.stdout
    res = gate("--baseline", runs["base"], "--current", runs["threads"])
    assert res.exit_code == 3 and "threads: 1 vs 4" in res.stderr and "`threads: 1 vs 4`" in res.stdout
    assert "Traceback" not in res.output


def test_options_change_the_decision(runs):
    # a 30% slowdown is within a 40% tolerance; p99 and the seed are accepted
    res = gate("--baseline", runs["base"], "--current", runs["slow"], "--max-regression", "40%", "--metric", "p99",
               "--seed", "1")
    assert res.exit_code == 0, res.output
    assert "**p99 latency" in res.stdout and "limit +40.0%" in res.stdout
    # a wide noise threshold lets the point estimate decide a straddling interval
    res = gate("--baseline", runs["noisy_a"], "--current", runs["noisy_b"], "--noise-threshold", "100")
    assert res.exit_code in (0, 1) and "borderline" in res.stdout
    res = gate("--baseline", runs["base"], "--current", runs["threads"], "--allow-diff", "threads")
    assert res.exit_code == 0 and "allowed to differ: threads: 1 vs 4" in res.stdout


def test_json_and_markdown_file(runs, tmp_path):
    md = tmp_path / "summary.md"
    res = gate("--baseline", runs["base"], "--current", runs["slow"], "--json", "--markdown", md)
    assert res.exit_code == 1
    d = json.loads(res.stdout)
    assert d["verdict"] == "regression" and d["exit_code"] == 1 and d["ci_low"] > 1.05
    assert d["baseline"]["file"] == str(runs["base"]) and d["current"]["blocks"] == 2
    text = md.read_text()
    lo, hi = (f"{(d[k] - 1) * 100:+.1f}%" for k in ("ci_low", "ci_high"))
    assert f"95% CI {lo} to {hi}" in text and text.startswith("### deployconv latency gate: REGRESSION")
    res = gate("--baseline", runs["base"], "--current", runs["slow"], "--markdown", md)
    assert res.exit_code == 2 and "already exists" in res.output  # a report is not overwritten silently either
    assert gate("--baseline", runs["base"], "--current", runs["slow"], "--markdown", md, "--force").exit_code == 1


def test_bad_input_exit_2(runs, tmp_path):
    res = gate("--baseline", tmp_path / "missing.json", "--current", runs["same"])
    assert res.exit_code == 2 and "no such file" in res.output and "--update-baseline" in res.output
    (tmp_path / "junk.json").write_text("{not json")
    res = gate("--baseline", runs["base"], "--current", tmp_path / "junk.json")
    assert res.exit_code == 2 and "not readable JSON" in res.output
    (tmp_path / "other.json").write_text('{"schema": "something/1"}')
    res = gate("--baseline", tmp_path / "other.json", "--current", runs["same"])
    assert res.exit_code == 2 and "not a deployconv benchmark" in res.output
    for args in (("--max-regression", "five"), ("--metric", "p50"), ("--run-noise", "-1"),
                 ("--allow-diff", "colour")):
        res = gate("--baseline", runs["base"], "--current", runs["same"], *args)
        assert res.exit_code == 2 and "Traceback" not in res.output, args
    assert parse_percent("5%", "--x") == parse_percent("5", "--x") == 0.05 and parse_percent(".5 %", "--x") == 0.005
    with pytest.raises(BadInputError, match="--x"):
        parse_percent("0.05x", "--x")


def test_gate_never_writes_the_baseline(runs):
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in runs["base"].parent.iterdir()}
    for cur in ("same", "slow", "threads"):
        gate("--baseline", runs["base"], "--current", runs[cur])
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in runs["base"].parent.iterdir()}
    assert after == before


def test_update_baseline_only_on_purpose(runs, tmp_path):
    base = tmp_path / "baselines" / "base.json"
    res = gate("--update-baseline", "--current", runs["slow"], "--baseline", base)
    assert res.exit_code == 0, res.output
    assert json.loads(base.read_text()) == json.loads(runs["slow"].read_text())
    first = base.read_text()
    res = gate("--update-baseline", "--current", runs["same"], "--baseline", base)
    assert res.exit_code == 2 and "already exists" in res.output and "--force" in res.output
    assert base.read_text() == first  # refused: untouched
    res = gate("--update-baseline", "--current", runs["same"], "--baseline", base, "--force", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["written"] is True
    assert json.loads(base.read_text()) == json.loads(runs["same"].read_text())
    assert sorted(p.name for p in base.parent.iterdir()) == ["base.json"]  # atomic: no temp files left
    (tmp_path / "junk.json").write_text("[]")
    res = gate("--update-baseline", "--current", tmp_path / "junk.json", "--baseline", base, "--force")
    assert res.exit_code == 2 and json.loads(base.read_text()) == json.loads(runs["same"].read_text())


def test_real_bench_run_gates_against_itself(tmp_path):
    model = save(tiny_classifier(), tmp_path / "tiny.onnx")
    run = tmp_path / "run.json"
    res = runner.invoke(app, ["bench", str(model), "--warmup", "0", "--iters", "40", "--repeat", "4", "--threads",
                              "1", "--out", str(run)])
    assert res.exit_code == 0, res.output
    assert json.loads(run.read_text())["block_sizes"] == [10, 10, 10, 10]
    base = tmp_path / "base.json"
    assert gate("--update-baseline", "--current", run, "--baseline", base).exit_code == 0
    # the same samples on both sides: the ratio is exactly 1, whatever the machine's speed
    res = gate("--baseline", base, "--current", run, "--json", "--max-regression", "100%")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["ratio"] == 1.0 and d["method"]["units"] == [12, 12] and d["conditions"]["threads"] == 1


def test_gate_runs_without_torch(tmp_path, runs):
    d = tmp_path / "blocked"
    d.mkdir()
    (d / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE")}
    env["PYTHONPATH"] = os.pathsep.join([str(d), str(REPO)])
    code = textwrap.dedent(f'''
        import sys
        from typer.testing import CliRunner
        from deployconv.cli.app import app
        from deployconv.cli.gate import gate_cmd
        if not any(c.name == "gate" for c in app.registered_commands):
            app.command("gate")(gate_cmd)
        res = CliRunner().invoke(app, ["gate", "--baseline", {str(runs["base"])!r}, "--current", {str(runs["slow"])!r}])
        leaked = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not leaked, leaked
        print("exit", res.exit_code)
    ''')
    proc = run_blocked(env, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert "exit 1" in proc.stdout
