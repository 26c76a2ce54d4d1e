"""The GPU kernels' goals (issue #10), judged from result rows: pure functions of JSON-ready data, so the
benchmark that measured and tools/collect_gpu_results.py that files the results judge the same way.

  ska_dram      SKA (fused LSConv form) reaches >= 70% of the DRAM bandwidth measured in the same run, on its
                compulsory bytes (benchmarks.gpu_kernels.ska_cost), at shapes whose bytes are >= 4x the L2 (so
                DRAM, not L2, serves them).
  dcnv2_fp16    our DCNv2 is faster than torchvision.ops.deform_conv2d in fp16 at every ResNet-50-DCN shape.
  dwconv        at 7x7 and 13x13, our depthwise conv is faster than PyTorch's nn.Conv2d(groups=C) on NCHW
                tensors, and within 1.3x of cuDNN on channels-last tensors, at every shape, batch and dtype.
  parity        the kernels' outputs are within the references' proven error bounds: the GPU tests
                (tests/gpu, JUnit XML) ran at least one test and none failed or errored.
A goal without its rows (a stage that did not run, torchvision missing) is "not evaluated", never "met".
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

MET, NOT_MET, NOT_EVALUATED = "met", "not met", "not evaluated"
SKA_DRAM_FRACTION = 0.70
SKA_L2_FACTOR = 4  # bandwidth rows move at least this many L2 sizes of compulsory bytes
DW_GOAL_KERNELS = (7, 13)
DW_CHANNELS_LAST_RATIO = 1.3


@dataclass
class Goal:
    name: str
    target: str
    status: str  # MET, NOT_MET or NOT_EVALUATED
    summary: str
    evidence: list[dict] = field(default_factory=list)


def _verdict(oks: list[bool]) -> str:
    return NOT_EVALUATED if not oks else (MET if all(oks) else NOT_MET)


def ska_dram_goal(rows: list[dict], dram_gb_per_s: float | None) -> Goal:
    target = f"SKA >= {SKA_DRAM_FRACTION:.0%} of measured DRAM bandwidth on compulsory bytes (>= {SKA_L2_FACTOR}x L2)"
    picked = [r for r in rows if r["kernel"] == "ska" and r.get("purpose") == "bandwidth"]
    if not picked or not dram_gb_per_s:
        return Goal("ska_dram", target, NOT_EVALUATED, "no SKA bandwidth rows or no measured DRAM bandwidth")
    ev = [{"case": r["case"], "dtype": r["dtype"], "gb_per_s": round(r["gb_per_s"], 1),
           "fraction_of_dram": round(r["gb_per_s"] / dram_gb_per_s, 3), "compulsory_bytes": r["compulsory_bytes"],
           "ok": r["gb_per_s"] / dram_gb_per_s >= SKA_DRAM_FRACTION} for r in picked]
    worst = min(ev, key=lambda e: e["fraction_of_dram"])
    return Goal("ska_dram", target, _verdict([e["ok"] for e in ev]),
                f"worst {worst['fraction_of_dram']:.0%} of {dram_gb_per_s:.0f} GB/s ({worst['case']} {worst['dtype']})",
                ev)


def dcnv2_goal(rows: list[dict]) -> Goal:
    target = "DCNv2 faster than torchvision.ops.deform_conv2d in fp16"
    picked = [r for r in rows if r["kernel"] == "dcnv2" and r["dtype"] == "float16" and "torchvision" in r["speedup"]]
    if not picked:
        return Goal("dcnv2_fp16", target, NOT_EVALUATED, "no fp16 DCNv2 rows timed against torchvision")
    ev = [{"case": r["case"], "ours_ms": r["ours_ms"], "torchvision_ms": r["baselines_ms"]["torchvision"],
           "speedup": round(r["speedup"]["torchvision"], 3), "ok": r["speedup"]["torchvision"] > 1.0} for r in picked]
    worst = min(ev, key=lambda e: e["speedup"])
    return Goal("dcnv2_fp16", target, _verdict([e["ok"] for e in ev]),
                f"slowest case {worst['speedup']:.2f}x torchvision ({worst['case']})", ev)


def dwconv_goal(rows: list[dict]) -> Goal:
    target = (f"depthwise {'/'.join(f'{k}x{k}' for k in DW_GOAL_KERNELS)}: faster than nn.Conv2d(groups=C) NCHW "
              f"and within {DW_CHANNELS_LAST_RATIO}x of cuDNN channels-last")
    picked = [r for r in rows if r["kernel"] == "dwconv" and r["shape"].get("k") in DW_GOAL_KERNELS
              and {"torch_nchw", "torch_channels_last"} <= set(r["baselines_ms"])]
    if not picked:
        return Goal("dwconv", target, NOT_EVALUATED, "no 7x7 / 13x13 depthwise rows with both baselines")
    ev = []
    for r in picked:
        vs_nchw = r["speedup"]["torch_nchw"]
        ratio_cl = r["ours_ms"] / r["baselines_ms"]["torch_channels_last"]
        ev.append({"case": r["case"], "dtype": r["dtype"], "speedup_vs_nchw": round(vs_nchw, 3),
                   "ours_over_channels_last": round(ratio_cl, 3),
                   "ok": vs_nchw > 1.0 and ratio_cl <= DW_CHANNELS_LAST_RATIO})
    failing = [e for e in ev if not e["ok"]]
    summary = (f"{len(ev) - len(failing)}/{len(ev)} cases meet both; worst vs channels-last "
               f"{max(e['ours_over_channels_last'] for e in ev):.2f}x, worst vs NCHW "
               f"{min(e['speedup_vs_nchw'] for e in ev):.2f}x")
    return Goal("dwconv", target, _verdict([e["ok"] for e in ev]), summary, ev)


@dataclass
class JUnitCounts:
    tests: int
    failures: int
    errors: int
    skipped: int


def junit_counts(xml_text: str) -> JUnitCounts:
    """Totals over every <testsuite> of a pytest JUnit XML file."""
    root = ET.fromstring(xml_text)
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    tot = [0, 0, 0, 0]
    for s in suites:
        for i, key in enumerate(("tests", "failures", "errors", "skipped")):
            tot[i] += int(s.get(key, 0))
    return JUnitCounts(*tot)


def parity_goal(junit_xml: str | None) -> Goal:
    target = "kernel outputs within the references' proven error bounds (tests/gpu)"
    if junit_xml is None:
        return Goal("parity", target, NOT_EVALUATED, "the GPU tests wrote no JUnit XML")
    try:
        c = junit_counts(junit_xml)
    except ET.ParseError as e:
        return Goal("parity", target, NOT_EVALUATED, f"unreadable JUnit XML: {e}")
    ran = c.tests - c.skipped
    ev = [{"tests": c.tests, "failures": c.failures, "errors": c.errors, "skipped": c.skipped}]
    if ran <= 0:
        return Goal("parity", target, NOT_EVALUATED, f"no GPU test ran ({c.skipped} skipped)", ev)
    ok = c.failures == 0 and c.errors == 0
    return Goal("parity", target, MET if ok else NOT_MET,
                f"{ran - c.failures - c.errors}/{ran} run tests passed ({c.skipped} skipped)", ev)


def plugin_enqueue_goal(result: dict | None) -> Goal:
    """Judge tests/gpu/plugin_enqueue_harness.py's JSON: every IPluginV3 case enqueued through plugin_probe within
    the reference's bound. `passed` is null when the harness could not run (no device, no compiler, no headers)."""
    target = "plugin outputs (IPluginV3 enqueue via plugin_probe) within the references' error bounds"
    if result is None:
        return Goal("plugin_enqueue", target, NOT_EVALUATED, "the plugin harness wrote no JSON")
    if result.get("passed") is None:
        return Goal("plugin_enqueue", target, NOT_EVALUATED, f"harness unavailable: {result.get('unavailable')}")
    cases = result.get("cases", [])
    bad = [c for c in cases if not c.get("ok")]
    ev = [{"name": c.get("name"), "dtype": c.get("dtype"), "worst_err_over_bound": c.get("worst_err_over_bound"),
           "error": c.get("error")} for c in bad]
    if not cases:
        return Goal("plugin_enqueue", target, NOT_EVALUATED, "the harness ran no case")
    status = MET if result["passed"] and not bad else NOT_MET
    return Goal("plugin_enqueue", target, status, f"{len(cases) - len(bad)}/{len(cases)} cases within bounds", ev)


def kernel_goals(rows: list[dict], dram_gb_per_s: float | None) -> list[Goal]:
    """The goals the kernel benchmark's own rows decide."""
    return [ska_dram_goal(rows, dram_gb_per_s), dcnv2_goal(rows), dwconv_goal(rows)]
