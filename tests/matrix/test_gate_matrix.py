"""`gate --matrix`: every cell gated; a latency or status regression in any cell exits 1; cells that cannot be
compared are listed and do not fail the gate. Synthetic matrix files (seeded samples), no runs."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from deployconv.cli.app import app
from deployconv.runtime.timing import BenchResult, summarize
from deployconv.validate.fingerprint import Fingerprint
from deployconv.validate.gate_matrix import gate_matrix

runner = CliRunner()
FP = Fingerprint(cpu_model="Test CPU", cpu_logical_cores=2, cpu_affinity=1, machine="x86_64", system="Linux",
                 os="Linux-test", load_avg=(0.1, 0.1, 0.1), python="3.11.7", numpy="2.0", onnxruntime="1.31.1",
                 runtime="onnxruntime", runtime_version="1.31.1", providers=("CPUExecutionProvider",), threads=1,
                 graph_sha256="a" * 64, batch=1, inputs={"x": {"shape": [1, 3, 8, 8], "dtype": "float32"}})


def _bench(path, median, seed):
    xs = [float(v) for v in median * np.exp(np.random.default_rng(seed).normal(0.0, 0.01, 400))]
    run = BenchResult(samples_ms=xs, stats=summarize(xs, batch=1), fingerprint=FP,
                      conditions={"started_at": "2025-01-01T00:00:00+00:00"}, block_sizes=(100,) * 4)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run.to_dict()))


def _matrix(root, cells):
    """cells: (model, target, status, median or None)."""
    rows = []
    for i, (model, target, status, median) in enumerate(cells):
        steps = {"export": {"status": "passed"}, "bench": {"status": "passed" if median else "skipped"}}
        row = {"model": model, "target": target, "device": "host", "status": status, "steps": steps,
               "latency": None, "error": None if status == "passed" else {"step": "validate", "what": "parity"}}
        if median:
            rel = f"cells/{model}/{target}/devices/host/bench/bench.json"
            _bench(root / rel, median, seed=i + len(str(root)))
            row["latency"] = {"median_ms": median, "file": rel}
        rows.append(row)
    root.mkdir(parents=True, exist_ok=True)
    (root / "matrix.json").write_text(json.dumps({"schema": "deployconv.matrix/1", "cells": rows}))
    return root / "matrix.json"


def test_each_kind_of_cell(tmp_path):
    base = _matrix(tmp_path / "b", [("m1", "onnx", "passed", 1.0), ("m2", "onnx", "passed", 2.0),
                                    ("m3", "onnx", "passed", 1.0), ("m4", "onnx", "passed", None),
                                    ("m5", "onnx", "passed", 1.0)])
    cur = _matrix(tmp_path / "c", [("m1", "onnx", "passed", 1.0), ("m2", "onnx", "passed", 3.0),
                                   ("m3", "onnx", "failed", 1.0), ("m4", "onnx", "passed", 1.0),
                                   ("m6", "onnx", "passed", 1.0)])
    r = gate_matrix(base, cur)
    v = {c.model: (c.verdict, c.reason) for c in r.cells}
    assert v["m1"][0] == "pass"
    assert v["m2"][0] == "regression" and "interval" in v["m2"][1]
    assert v["m3"] == ("regression", "passed in the baseline, failed now (at validate)")
    assert v["m4"][0] == "not-comparable" and "baseline" in v["m4"][1]
    assert v["m5"] == ("not-comparable", "only in the baseline run")
    assert v["m6"] == ("not-comparable", "only in the current run")
    assert r.exit_code == 1 and {c.model for c in r.regressed} == {"m2", "m3"}

    res = runner.invoke(app, ["gate", "--matrix", str(base), str(cur)])
    assert res.exit_code == 1 and "REGRESSION" in res.stdout and "| m2 | onnx | host | **regression**" in res.stdout


def test_no_regression_exits_0_and_lists_what_it_could_not_compare(tmp_path):
    base = _matrix(tmp_path / "b", [("m1", "onnx", "passed", 1.0), ("m4", "onnx", "passed", None)])
    cur = _matrix(tmp_path / "c", [("m1", "onnx", "passed", 1.0), ("m4", "onnx", "passed", 1.0)])
    res = runner.invoke(app, ["gate", "--matrix", str(base), str(cur), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["counts"] == {"pass": 1, "not-comparable": 1}


def test_bad_input(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    res = runner.invoke(app, ["gate", "--matrix", str(tmp_path / "x.json"), str(tmp_path / "x.json")])
    assert res.exit_code == 2 and "not a deployconv matrix result" in res.output
    res = runner.invoke(app, ["gate"])
    assert res.exit_code == 2 and "--matrix" in res.output
    ok = _matrix(tmp_path / "m", [("m1", "onnx", "passed", 1.0)])
    res = runner.invoke(app, ["gate", "--matrix", str(ok), str(ok), "--current", str(ok)])
    assert res.exit_code == 2
