"""End to end: a fresh `export` (the tiny fixture model, with its short benchmark), then the report of its
directory. Guards against report.json changing shape under the page: every number must still trace back."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployconv.report import write_report
from tests.report.dom import load_files, parse
from tests.report.test_page import check_numbers

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_model.py"


@pytest.mark.slow
def test_report_of_a_fresh_export(tmp_path):
    from deployconv.pipeline.export import ExportOptions, export

    out = tmp_path / "tiny"
    result = export(f"{FIXTURE}:build", "onnx", out, options=ExportOptions(bench=True, bench_seconds=0.2))
    written = write_report(out)
    dom = parse(written.path.read_text())
    files = load_files(out)
    check_numbers(dom, files)
    srcs = {c.src for c in dom.numbers}
    for i, s in enumerate(result.report["parity"]["stages"][1:], start=1):
        assert f"report.json#/parity/stages/{i}/vs_previous/max_abs_rel_scale" in srcs, s["stage"]
    for label in result.report["latency"]["runs"]:
        assert f"report.json#/latency/runs/{label}/stats/p99_ms" in srcs
    assert "matches manifest.json" in dom.text
