"""The report page read back with the stdlib HTML parser: every number traces to the field it shows and shows
it right, every metric and latency statistic is there, nothing is loaded from the network, images are embedded
SVG, pass/fail colouring follows the budget."""

from __future__ import annotations

import base64
import importlib.util
import math
import re
import xml.etree.ElementTree as ET

import pytest

from deployconv.report import build_page, load_export_dir
from tests.report.conftest import RECORDED, edit_json
from tests.report.dom import load_files, parse, resolve, shown_matches

needs_plots = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                 reason="matplotlib (the `report` extra) is not installed: the page has no figures")

# vs_previous fields that are not metrics to show as numbers: the element count is shown as the output shape,
# `nonfinite` is the boolean behind the NaN/Inf count, and `nonfinite_ref` belongs to the previous stage.
NOT_SHOWN = {"shape", "numel", "nonfinite", "nonfinite_ref"}
STATS = ("count", "median_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms", "min_ms", "max_ms", "std_ms", "cv",
         "throughput")


def render(directory):
    html = build_page(load_export_dir(directory)).html
    return html, parse(html), load_files(directory)


@pytest.fixture(scope="module")
def plain():
    """The recorded export rendered once (html, dom, files) for the tests that only read it."""
    return render(RECORDED)


def check_numbers(dom, files):
    """Every number cell: its data-src resolves, the text shows that value, the tooltip holds it exactly."""
    assert dom.numbers, "no number cells on the page"
    for cell in dom.numbers:
        value = resolve(cell.src, files)
        assert isinstance(value, (int, float)), (cell.src, value)
        assert shown_matches(cell.text, value), f"{cell.src}: shows {cell.text!r}, stored {value!r}"
        assert cell.title is not None and (float(cell.title) == value or (math.isnan(value)
                                                                         and cell.title == "nan")), cell.src


def test_numbers_match_report_json(plain):
    _, dom, files = plain
    check_numbers(dom, files)


# What each table column means, stated here independently of the page code: column header -> the field
# (last JSON Pointer token) its cells must come from.
COLUMN_FIELDS = {
    "max abs / scale <=": "max_abs_rel_scale", "cosine >=": "min_cosine",
    "max abs": "max_abs", "p99 abs": "p99_abs", "mean abs": "mean_abs", "scale (max |ref|)": "ref_scale",
    "max abs / scale": "max_abs_rel_scale", "cosine": "cosine", "cosine (worst row)": "cosine_min",
    "top-1": "top1_agreement", "top-5": "top5_agreement", "top-5 overlap": "top5_overlap",
    "NaN/Inf": "nonfinite_out",
    "runs": "count", "p50 ms": "median_ms", "p90 ms": "p90_ms", "p95 ms": "p95_ms", "p99 ms": "p99_ms",
    "mean ms": "mean_ms", "min ms": "min_ms", "max ms": "max_ms", "std ms": "std_ms", "CV": "cv",
    "items/s": "throughput",
}


def test_every_column_shows_the_field_its_header_names(plain):
    _, dom, files = plain
    in_tables = [c for c in dom.numbers if c.column in COLUMN_FIELDS]
    compared = len(files["report.json"]["parity"]["stages"]) - 1
    runs = len(files["report.json"]["latency"]["runs"])
    assert len(in_tables) == compared * (2 + 11 + 2) + runs * 11  # budget, vs previous, vs fp64 | stats
    for c in in_tables:
        assert c.src.rsplit("/", 1)[1] == COLUMN_FIELDS[c.column], (c.column, c.src)
    # the budget columns come from the budget, the metric columns from the comparison with the previous stage
    for c in in_tables:
        if c.column in ("max abs / scale <=", "cosine >="):
            assert "/budget/" in c.src
        elif c.src.startswith("report.json#/parity/stages/") and c.column in ("max abs", "p99 abs", "top-1"):
            assert "/vs_previous/" in c.src


def test_every_metric_and_budget_of_every_stage_is_shown(plain):
    _, dom, files = plain
    srcs = {c.src for c in dom.numbers}
    stages = files["report.json"]["parity"]["stages"]
    assert len(stages) >= 4
    for i, s in enumerate(stages):
        assert s["stage"] in dom.text
        for key, value in (s["vs_previous"] or {}).items():
            if key not in NOT_SHOWN and value is not None:
                assert f"report.json#/parity/stages/{i}/vs_previous/{key}" in srcs, (s["stage"], key)
        for key in ("max_abs_rel_scale", "cosine"):
            if s["vs_reference"]:
                assert f"report.json#/parity/stages/{i}/vs_reference/{key}" in srcs
    assert "report.json#/parity/budget/max_abs_rel_scale" in srcs
    assert "report.json#/parity/budget/min_cosine" in srcs


def test_every_latency_statistic_is_shown_with_its_conditions(plain):
    _, dom, files = plain
    srcs = {c.src for c in dom.numbers}
    runs = files["report.json"]["latency"]["runs"]
    assert len(runs) == 3
    for label, run in runs.items():
        for key in STATS:
            assert f"report.json#/latency/runs/{label}/stats/{key}" in srcs, (label, key)
        c = run["conditions"]
        # conditions beside the numbers: runtime and version, threads, input shape, device
        assert f"{c['runtime']} {c['runtime_version']}" in dom.text
        shape = "x".join(map(str, c["inputs"]["input"]["shape"]))
        assert f"float32[{shape}]" in dom.text
    fp = next(iter(runs.values()))["fingerprint"]
    assert fp["cpu_model"] in dom.text and f"{fp['threads']} intra-op" in dom.text


def test_no_external_urls_and_no_script(plain):
    html, dom, _ = plain
    assert dom.urls, "expected at least the embedded images"
    for tag, attr, value in dom.urls:
        assert value.startswith(("data:", "#")), f"<{tag} {attr}={value[:60]!r}> points outside the page"
    assert not {"script", "link", "iframe", "object", "embed", "base"} & dom.tags
    for css in dom.styles:
        assert "@import" not in css
        assert all(u.strip("'\" ").startswith("data:") for u in re.findall(r"url\(([^)]*)\)", css))
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", html, re.I)
    csp = [m for m in dom.metas if m.get("http-equiv", "").lower() == "content-security-policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]


@needs_plots
def test_images_are_embedded_svg_with_no_external_reference(plain):
    _, dom, files = plain
    runs = files["report.json"]["latency"]["runs"]
    # a histogram per runtime with samples, the overview of all runtimes, the parity error chart
    assert len(dom.images) == len(runs) + 2
    for src in dom.images:
        prefix = "data:image/svg+xml;base64,"
        assert src.startswith(prefix)
        svg = base64.b64decode(src[len(prefix):], validate=True)
        root = ET.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        for el in root.iter():
            assert not el.tag.endswith("}image"), "a raster image inside the SVG"
            for name, value in el.attrib.items():
                if name.endswith("href"):
                    assert value.startswith("#"), f"SVG reference {value!r}"
        assert b"@import" not in svg and b"url(http" not in svg


def test_pass_fail_colouring_and_first_diverging_layer(export_dir):
    def break_stage(r):
        p = r["parity"]
        s = p["stages"][3]
        s["vs_previous"]["max_abs_rel_scale"] = 3.5e-3
        s["vs_previous"]["cosine"] = 0.99871
        s["passed"] = False
        s["failures"] = ["max abs / scale 3.500e-03 > 1.0e-04", "cosine 0.9987100 < 0.99999"]
        p["passed"], p["broke_at"] = False, s["stage"]
        p["first_divergence"] = {"module": "conv", "module_type": "Conv2d", "onnx_tensor": "conv_1",
                                 "onnx_op": "Conv", "metrics": dict(s["vs_previous"]),
                                 "failures": s["failures"], "layers_compared": 3}

    edit_json(export_dir / "report.json", break_stage)
    _, dom, files = render(export_dir)
    check_numbers(dom, files)
    by_src = {c.src: c for c in dom.numbers}
    assert "fail" in by_src["report.json#/parity/stages/3/vs_previous/max_abs_rel_scale"].classes
    assert "fail" in by_src["report.json#/parity/stages/3/vs_previous/cosine"].classes
    assert "pass" in by_src["report.json#/parity/stages/1/vs_previous/max_abs_rel_scale"].classes
    assert "pass" in by_src["report.json#/parity/stages/2/vs_previous/cosine"].classes
    # not gated by the budget: no colour
    assert not {"pass", "fail"} & by_src["report.json#/parity/stages/1/vs_previous/max_abs"].classes
    verdicts = [text for classes, text in dom.cells if "fail" in classes and text.startswith("FAIL")]
    assert verdicts == ["FAIL: max abs / scale 3.500e-03 > 1.0e-04; cosine 0.9987100 < 0.99999"]
    assert "first diverging layer" in dom.text and "conv_1" in dom.text
    assert "report.json#/parity/first_divergence/metrics/max_abs_rel_scale" in by_src
    assert f"parity FAILED at {files['report.json']['parity']['broke_at']}" in dom.text


def test_stage_with_its_own_budget_is_judged_by_it(export_dir):
    def own_budget(r):
        r["parity"]["stages"][4]["budget"] = {"max_abs_rel_scale": 1e-12, "min_cosine": 0.5,
                                              "min_top1_agreement": None}
        r["parity"]["stages"][4]["vs_previous"]["max_abs_rel_scale"] = 1e-9

    edit_json(export_dir / "report.json", own_budget)
    _, dom, files = render(export_dir)
    check_numbers(dom, files)
    by_src = {c.src: c for c in dom.numbers}
    assert "report.json#/parity/stages/4/budget/max_abs_rel_scale" in by_src
    assert "fail" in by_src["report.json#/parity/stages/4/vs_previous/max_abs_rel_scale"].classes


@needs_plots
def test_absent_samples_are_said_and_stats_still_shown(export_dir):
    edit_json(export_dir / "report.json", lambda r: r["latency"]["runs"]["onnxruntime cpu"].pop("samples_ms"))
    _, dom, files = render(export_dir)
    check_numbers(dom, files)
    assert "raw samples are absent from this result" in dom.text
    assert len(dom.images) == 2 + 1 + 1  # two histograms left, the overview of those two, the parity chart
    assert "report.json#/latency/runs/onnxruntime cpu/stats/p99_ms" in {c.src for c in dom.numbers}


def test_stats_that_disagree_with_their_samples_are_flagged(export_dir):
    edit_json(export_dir / "report.json",
              lambda r: r["latency"]["runs"]["onnxruntime cpu"]["stats"].update(median_ms=1234.5))
    _, dom, _ = render(export_dir)
    assert "median_ms stored 1234.5 but the samples give" in dom.text


def test_no_latency_says_so(export_dir):
    edit_json(export_dir / "report.json", lambda r: r.update(latency=None))
    _, dom, files = render(export_dir)
    check_numbers(dom, files)
    assert "no latency measured: export ran with --no-bench" in dom.text


def test_bench_results_in_the_directory_are_included(export_dir):
    import json

    run = json.loads((export_dir / "report.json").read_text())["latency"]["runs"]["onnxruntime cpu"]
    (export_dir / "bench-device.json").write_text(json.dumps(run))
    _, dom, files = render(export_dir)
    check_numbers(dom, files)
    assert "bench-device.json#/stats/p99_ms" in {c.src for c in dom.numbers}
    assert "this export's model.onnx" in dom.text  # its graph sha256 matches the manifest's model.onnx


@pytest.mark.parametrize("gate", [
    {"decision": "fail", "metric": "median_ms", "ratio": 1.0831, "ci_low": 1.041, "ci_high": 1.127,
     "limit": 1.05, "method": "bootstrap", "resamples": 2000},
    {"passed": True, "metric": "p99_ms", "ratio": 0.97, "ci": [0.95, 0.99], "threshold": 1.1,
     "reasons": ["within limit"], "baseline": {"stats": {"median_ms": 1.5, "p99_ms": 2.5}}},
    {"something_else": 3},
])
def test_gate_result_is_rendered_defensively(export_dir, gate):
    import json

    (export_dir / "gate.json").write_text(json.dumps(gate))
    _, dom, files = render(export_dir)
    check_numbers(dom, files)
    srcs = {c.src for c in dom.numbers}
    for key, value in gate.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert f"gate.json#/{key}" in srcs, key
    if "ci" in gate:
        assert {"gate.json#/ci/0", "gate.json#/ci/1"} <= srcs
        assert "gate.json#/baseline/stats/median_ms" in srcs
    if gate.get("decision") == "fail":
        assert "gate fail" in dom.text
    if gate.get("passed"):
        assert "gate passed" in dom.text
    if "something_else" in gate:
        assert "decision not recorded" in dom.text


def test_gate_absent_is_said(plain):
    _, dom, _ = plain
    assert "no gate result: gate.json is absent" in dom.text


def test_no_dla_on_this_target(plain):
    _, dom, _ = plain
    assert "target onnx has no DLA" in dom.text


def test_dla_target_without_placement_says_so(export_dir):
    edit_json(export_dir / "report.json",
              lambda r: r["target"].update(name="jetson-orin-dla-fp16", tensorrt={"dla_core": 0}))
    _, dom, _ = render(export_dir)
    assert "asks for DLA core 0, but manifest.json records no layer placement" in dom.text


LAYERS = [
    {"name": "stem.0", "op": "Conv", "device": "DLA", "reason": ""},
    {"name": "stem.2", "op": "Relu", "device": "DLA", "reason": ""},
    {"name": "conv", "op": "Conv", "device": "GPU", "reason": "dilation with groups is not supported on DLA"},
    {"name": "mean", "op": "ReduceMean", "device": "GPU", "reason": "not supported on DLA"},
    {"name": "fc", "op": "Gemm", "device": "DLA", "reason": ""},
]


# (a bare list was once accepted here too; the manifest schema, which the page now reads through, admits a table)
@pytest.mark.parametrize("section", [{"core": 0, "gpu_fallback": True, "layers": LAYERS}])
def test_dla_placement_table_and_counts(export_dir, section):
    edit_json(export_dir / "manifest.json", lambda m: m.update(dla=section))
    _, dom, _ = render(export_dir)
    cells = [text for _, text in dom.cells]
    # counts per device, computed here from the list
    n_dla = sum(e["device"] == "DLA" for e in LAYERS)
    n_gpu = len(LAYERS) - n_dla
    i = cells.index("DLA")
    assert cells[i + 1] == str(n_dla) and cells[cells.index("GPU") + 1] == str(n_gpu)
    for e in LAYERS:
        j = cells.index(e["name"])
        assert cells[j + 1: j + 3] == [e["op"], e["device"]]
        if e["reason"]:
            assert cells[j + 3] == e["reason"]
    dla_cells = [classes for classes, text in dom.cells if text == "DLA" and "dla" in classes]
    assert len(dla_cells) == n_dla
    if isinstance(section, dict):
        assert "gpu_fallback" in dom.text


def test_text_from_the_files_is_escaped(export_dir):
    edit_json(export_dir / "report.json", lambda r: r.update(model="<img src=http://x/a.png>&"))
    html, dom, _ = render(export_dir)
    assert "<img src=http" not in html and "&lt;img src=http://x/a.png&gt;&amp;" in html
    assert all(v.startswith("data:") for _, _, v in dom.urls)


def test_same_input_same_page(plain):
    assert render(RECORDED)[0] == plain[0]


def test_odd_values_render(export_dir):
    """NaN metrics (a broken stage), identical exact-zero differences, constant and single-sample runs."""
    def odd(r):
        s = r["parity"]["stages"][2]
        s["vs_previous"].update(max_abs=math.nan, max_abs_rel_scale=math.nan, cosine=math.nan, nonfinite_out=4,
                                nonfinite=True)
        s["passed"], s["failures"] = False, ["NaN/Inf in outputs (reference 0, this stage 4)"]
        r["parity"]["passed"], r["parity"]["broke_at"] = False, s["stage"]
        runs = r["latency"]["runs"]
        runs["onnxruntime cpu"]["samples_ms"] = [2.5] * 30
        runs["onnxruntime cpu"]["stats"].update(count=30, median_ms=2.5, p99_ms=2.5, cv=0.0)
        runs["torch eager, train form"]["samples_ms"] = [7.25]
        runs["torch eager, train form"]["stats"].update(count=1, median_ms=7.25, p99_ms=7.25)

    edit_json(export_dir / "report.json", odd)
    _, dom, files = render(export_dir)
    check_numbers(dom, files)
    by_src = {c.src: c for c in dom.numbers}
    cell = by_src["report.json#/parity/stages/2/vs_previous/max_abs_rel_scale"]
    assert cell.text == "NaN" and "fail" in cell.classes
    assert "fail" in by_src["report.json#/parity/stages/2/vs_previous/nonfinite_out"].classes
    assert "only 1 sample:" in dom.text


def test_dla_placement_as_the_exporter_writes_it(export_dir):
    """The manifest's `dla` section as deployconv.engine.dla writes it, for a real (tiny) graph."""
    dla = pytest.importorskip("deployconv.engine.dla", reason="the DLA placement module is not in this tree")
    from deployconv.core.target import get_target
    from tests.runtime import tiny_classifier

    section = dla.dla_capability(tiny_classifier(batch=1), get_target("jetson-orin-dla-fp16")).to_dict()
    edit_json(export_dir / "manifest.json", lambda m: m.update(dla=section))
    _, dom, files = render(export_dir)
    check_numbers(dom, files)
    cells = [text for _, text in dom.cells]
    for e in section["layers"]:
        j = cells.index(e["name"])
        assert cells[j + 1: j + 3] == [e["op"], e["device"]]
    for dev in ("DLA", "GPU"):
        assert f"manifest.json#/dla/counts/{dev}" in {c.src for c in dom.numbers}
    for note in section["notes"] + section["graph_problems"]:
        assert note in dom.text


def test_gate_result_as_the_gate_writes_it(export_dir):
    """gate.json as `deployconv gate --json` writes it (deployconv.validate.gate), from two real runs."""
    gate_mod = pytest.importorskip("deployconv.validate.gate", reason="the latency gate is not in this tree")
    import json

    from deployconv.runtime.timing import BenchResult, summarize

    run = json.loads((export_dir / "report.json").read_text())["latency"]["runs"]["onnxruntime cpu"]
    base = BenchResult.from_dict(run)
    slower = [v * 1.5 for v in base.samples_ms]
    cur = BenchResult.from_dict({**run, "samples_ms": slower, "stats": summarize(slower, batch=1).to_dict()})
    result = gate_mod.gate(base, cur, max_regression=0.05, run_noise=0.0, resamples=200)
    (export_dir / "gate.json").write_text(json.dumps(result.to_dict()))
    _, dom, files = render(export_dir)
    check_numbers(dom, files)
    srcs = {c.src for c in dom.numbers}
    assert {"gate.json#/ratio", "gate.json#/ci_low", "gate.json#/ci_high", "gate.json#/limit_ratio",
            "gate.json#/baseline/median_ms", "gate.json#/current/p99_ms"} <= srcs
    assert f"gate {result.verdict}" in dom.text and result.reason in dom.text
    fail = [c for c in dom.numbers if c.src == "gate.json#/ratio"]
    assert fail and abs(float(fail[0].title) - 1.5) < 0.05
