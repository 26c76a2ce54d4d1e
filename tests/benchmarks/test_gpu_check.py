"""tools/gpu_check.sh and the GPU benchmarks without a GPU: the script parses, explains itself, keeps running
after failed stages and summarises them in its exit code and gpu_check.json; the benchmarks' --help works and
their pure parts (cost formulas, goal verdicts, case plans, parity) are right; the collect tool files a run's
results under the names the repository commits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from benchmarks import gpu_goals, gpu_kernels, gpu_models

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "gpu_check.sh"
COLLECT = REPO / "tools" / "collect_gpu_results.py"


def _run_script(tmp_path: Path, *args: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": python, "DEPLOYCONV_CACHE": str(tmp_path / "c")}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


# --- the script ----------------------------------------------------------------------------------------------


def test_script_parses():
    r = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_script_passes_shellcheck():
    r = subprocess.run(["shellcheck", "-S", "warning", str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_script_help_and_bad_arguments(tmp_path):
    r = _run_script(tmp_path, "--help")
    assert r.returncode == 0 and "collect_gpu_results.py collect" in r.stdout and "--budget-s" in r.stdout
    assert _run_script(tmp_path, "--nope").returncode == 2
    assert _run_script(tmp_path, "--budget-s", "soon").returncode == 2


def test_script_with_no_budget_skips_every_stage_and_still_summarises(tmp_path):
    r = _run_script(tmp_path, "--budget-s", "0")
    assert r.returncode == 0, r.stdout + r.stderr  # skipped is not failed
    out = tmp_path / "out"
    summary = json.loads((out / "gpu_check.json").read_text())
    status = {s["name"]: (s["status"], s["note"]) for s in summary["stages"]}
    assert status["build"] == ("skipped", "budget spent") and status["gpu_models"][0] == "skipped"
    assert status["plugin_enqueue"] == ("skipped", "budget spent")
    assert {g["status"] for g in summary["goals"]} == {gpu_goals.NOT_EVALUATED}


def test_every_stage_runs_after_failures_and_the_exit_code_says_so(tmp_path):
    """A stand-in python that fails every command: each stage still runs (in order), the exit code is 1 and the
    summary names the failed stages."""
    stub = tmp_path / "python"
    stub.write_text(f"""#!/usr/bin/env bash
echo "$*" >> {tmp_path}/calls
case "$*" in
  *collect_gpu_results*) exec {sys.executable} "$@" ;;
  *benchmarks._env*) echo '{{"gpu": "Fake GPU 80GB"}}' ;;
  *) echo "stand-in fails: $*" >&2; exit 7 ;;
esac
""")
    stub.chmod(0o755)
    r = _run_script(tmp_path, "--budget-s", "120", python=str(stub))
    assert r.returncode == 1, r.stdout + r.stderr
    calls = (tmp_path / "calls").read_text()
    order = [calls.index(k) for k in ("benchmarks._env", "load_extension", "pytest", "enqueue_harness",
                                      "benchmarks.gpu_kernels", "benchmarks.gpu_models", "collect_gpu_results")]
    assert order == sorted(order)
    assert "--budget-s" in calls.split("benchmarks.gpu_models", 1)[1].splitlines()[0]
    summary = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert summary["failed_stages"] == ["build", "gpu_tests", "plugin_enqueue", "gpu_kernels", "gpu_models"]
    assert summary["gpu_env"]["gpu"] == "Fake GPU 80GB"
    assert "failed: build gpu_tests plugin_enqueue gpu_kernels gpu_models" in r.stdout


# --- benchmark CLIs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [gpu_kernels.parser, gpu_models.parser])
def test_benchmark_help(make, capsys):
    with pytest.raises(SystemExit) as e:
        make().parse_args(["--help"])
    assert e.value.code == 0 and "--budget-s" in capsys.readouterr().out


def test_collect_tool_help():
    r = subprocess.run([sys.executable, str(COLLECT), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "summarize" in r.stdout and "collect" in r.stdout


# --- kernel benchmark arithmetic --------------------------------------------------------------------------------


def test_ska_compulsory_bytes_by_hand():
    # N=2, C=16 (G=2), 3x4, fp16: x 2*16*12 + y 2*16*12 + w 2*2*9*12 elements at 2 bytes, scale+shift 16*8 bytes
    nbytes, flops = gpu_kernels.ska_cost(2, 16, 3, 4, 2)
    assert nbytes == 2 * (384 + 384 + 432) + 128
    assert flops == 384 * 21


def test_bandwidth_batch_is_the_smallest_past_the_l2_factor():
    l2 = 50 * 2**20
    for c, h, w in ((128, 14, 14), (256, 7, 7)):
        for es in (2, 4):
            n = gpu_kernels.bandwidth_batch(c, h, w, es, l2)
            assert gpu_kernels.ska_cost(n, c, h, w, es)[0] >= 4 * l2
            assert n == 1 or gpu_kernels.ska_cost(n - 1, c, h, w, es)[0] < 4 * l2
    assert gpu_kernels.bandwidth_batch(128, 14, 14, 2, 0) == 1


def test_dw_and_dcn_costs():
    assert gpu_kernels.dw_cost(1, 2, 3, 3, 3, 4) == (4 * (2 * 18 + 18 + 2), 2 * 18 * 9)
    nbytes, flops = gpu_kernels.dcn_cost(1, 4, 8, 5, 5, 9, 2)
    assert nbytes == 2 * (100 + 27 * 25 + 8 * 4 * 9 + 200) and flops == 2 * 8 * 25 * 4 * 9


# --- goals --------------------------------------------------------------------------------------------------------


def _row(kernel, dtype="float16", purpose="model", ours_ms=1.0, baselines=None, gb_per_s=0.0, shape=None):
    baselines = baselines or {}
    return {"kernel": kernel, "case": f"{kernel} case", "dtype": dtype, "purpose": purpose, "ours_ms": ours_ms,
            "baselines_ms": baselines, "speedup": {k: v / ours_ms for k, v in baselines.items()},
            "gb_per_s": gb_per_s, "compulsory_bytes": 1, "shape": shape or {}}


def test_ska_goal_uses_only_bandwidth_rows_and_the_measured_dram():
    rows = [_row("ska", purpose="bandwidth", gb_per_s=3000), _row("ska", purpose="model", gb_per_s=10)]
    assert gpu_goals.ska_dram_goal(rows, 4000).status == gpu_goals.MET  # 75% >= 70%; the L2-sized row ignored
    rows.append(_row("ska", dtype="float32", purpose="bandwidth", gb_per_s=2700))  # 67.5%
    g = gpu_goals.ska_dram_goal(rows, 4000)
    assert g.status == gpu_goals.NOT_MET and "68%" in g.summary and len(g.evidence) == 2
    assert gpu_goals.ska_dram_goal(rows[1:2], 4000).status == gpu_goals.NOT_EVALUATED
    assert gpu_goals.ska_dram_goal(rows, None).status == gpu_goals.NOT_EVALUATED


def test_dcnv2_goal_needs_fp16_rows_against_torchvision():
    fast = _row("dcnv2", ours_ms=1.0, baselines={"torchvision": 1.5})
    slow = _row("dcnv2", ours_ms=2.0, baselines={"torchvision": 1.5})
    assert gpu_goals.dcnv2_goal([fast]).status == gpu_goals.MET
    assert gpu_goals.dcnv2_goal([fast, slow]).status == gpu_goals.NOT_MET
    assert gpu_goals.dcnv2_goal([_row("dcnv2", dtype="float32", baselines={"torchvision": 9})]).status \
        == gpu_goals.NOT_EVALUATED
    assert gpu_goals.dcnv2_goal([_row("dcnv2", baselines={"deployconv_reference": 9})]).status \
        == gpu_goals.NOT_EVALUATED


def test_dwconv_goal_needs_both_conditions_at_7_and_13():
    def dw(k, ours, nchw, cl):
        return _row("dwconv", ours_ms=ours, baselines={"torch_nchw": nchw, "torch_channels_last": cl},
                    shape={"k": k})

    assert gpu_goals.dwconv_goal([dw(7, 1.0, 2.0, 0.8), dw(13, 1.0, 1.1, 0.77)]).status == gpu_goals.MET
    assert gpu_goals.dwconv_goal([dw(7, 1.0, 2.0, 0.7)]).status == gpu_goals.NOT_MET  # 1.43x channels-last
    assert gpu_goals.dwconv_goal([dw(13, 1.0, 0.9, 5.0)]).status == gpu_goals.NOT_MET  # slower than NCHW
    assert gpu_goals.dwconv_goal([dw(31, 9.0, 1.0, 1.0)]).status == gpu_goals.NOT_EVALUATED  # 31x31: no goal


def test_parity_goal_from_junit():
    def xml(tests, failures=0, errors=0, skipped=0):
        return (f'<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="{tests}" failures="{failures}" '
                f'errors="{errors}" skipped="{skipped}"></testsuite></testsuites>')

    assert gpu_goals.parity_goal(xml(10)).status == gpu_goals.MET
    assert gpu_goals.parity_goal(xml(10, failures=1)).status == gpu_goals.NOT_MET
    assert gpu_goals.parity_goal(xml(10, errors=1)).status == gpu_goals.NOT_MET
    assert gpu_goals.parity_goal(xml(10, skipped=10)).status == gpu_goals.NOT_EVALUATED
    assert gpu_goals.parity_goal(None).status == gpu_goals.NOT_EVALUATED
    assert gpu_goals.parity_goal("<not xml").status == gpu_goals.NOT_EVALUATED


# --- model benchmark pure parts -----------------------------------------------------------------------------------


def test_compile_cases_and_plan_order():
    assert gpu_models.parse_compile_cases("fp16:16, fp32:1") == {("fp16", 16), ("fp32", 1)}
    assert gpu_models.parse_compile_cases("none") == set()
    for bad in ("fp16", "fp8:1", "fp16:0", "fp16:x"):
        with pytest.raises(ValueError):
            gpu_models.parse_compile_cases(bad)
    cases = gpu_models.plan(["a", "b"], ["fp32", "fp16"], [1, 16], {("fp16", 16)})
    variants = [c.variant for c in cases]
    assert variants.count("compile") == 2 and variants[-2:] == ["compile", "compile"]  # compile last
    first = cases[:-2]
    assert len(first) == 2 * 2 * 2 * 3
    assert [c.variant for c in first[:3]] == ["eager", "channels_last", "ours"]  # eager before its comparisons
    assert next(c.dtype for c in first if c.model == "a") == "fp32"  # fp32 first: the fp32-eager reference


def test_compile_budget_and_iterations():
    assert gpu_models.compile_skip_reason(100, 240, 90) is None
    assert "budget" in gpu_models.compile_skip_reason(200, 240, 90)
    assert gpu_models.iterations(1.0, 0.5) == 200 and gpu_models.iterations(100.0, 0.5) == 10
    assert gpu_models.iterations(10.0, 0.5) == 50
    lat = gpu_models.summarize([5.0, 1.0, 3.0, 2.0, 4.0], warmup=3)
    assert (lat.median_ms, lat.p10_ms, lat.p90_ms, lat.iters) == (3.0, 1.0, 5.0, 5)


def test_parity_figures():
    import torch

    ref = torch.tensor([1.0, -2.0, 4.0])
    p = gpu_models.parity(ref.clone(), ref)
    assert p.max_abs == 0 and p.cosine == pytest.approx(1.0) and p.finite
    p = gpu_models.parity(ref + torch.tensor([0.0, 0.0, 0.4]), ref)
    assert p.max_abs_over_scale == pytest.approx(0.1) and p.cosine < 1.0
    assert not gpu_models.parity(torch.tensor([float("nan"), 0.0, 0.0]), ref).finite


def test_model_flow_on_cpu_with_stand_in_kernels():
    """The benchmark's per-model flow (deploy form, eager, channels-last, ours with the depthwise convs swapped,
    parity) on CPU: F.conv2d stands in for the CUDA dwconv kernel and a fixed number stands in for the timer."""
    import torch
    import torch.nn.functional as F

    def dw(x, w, b, stride, pad):
        return F.conv2d(x, w, b, stride, pad, 1, x.shape[1])

    def timer(fn, x, target_s):
        return gpu_models.summarize([1.0], 0)

    runner = gpu_models.Runner(0.1, 7, device="cpu", dw_kernel=dw, timer=timer)
    results = [runner.run(gpu_models.Case("lsnet_t", "fp32", 1, v)) for v in ("eager", "channels_last", "ours")]
    setup = runner.setups["lsnet_t"]
    assert setup.custom_ops == ["ska"] and len(setup.depthwise_swapped) == 5  # lsnet_t's five 7x7 convs
    eager, cl, ours = results
    assert eager.parity_vs_eager is None and eager.parity_vs_fp32_eager.max_abs == 0
    for r in (cl, ours):
        assert r.status == "ok" and r.parity_vs_eager.max_abs_over_scale < 1e-5 and r.parity_vs_eager.cosine > 0.9999
    assert "op:ska" in ours.swapped and sum(s.startswith("dwconv:") for s in ours.swapped) == 5
    assert json.dumps(asdict(ours))  # JSON-ready
    assert torch.ops.deployconv.ska  # the op stays importable after the swap context


# --- collect tool -------------------------------------------------------------------------------------------------


def _fake_run(out: Path) -> None:
    out.mkdir()
    (out / "environment.json").write_text(json.dumps({"gpu": "NVIDIA H200", "driver": "580.1", "torch": "2.11"}))
    (out / "stages.tsv").write_text("environment\tpassed\t0\t3\t40\t\nbuild\ttimeout\t124\t240\t240\t\n"
                                    "plugin_enqueue\tskipped\t-\t0\t-\tnot present\n")
    goal = asdict(gpu_goals.Goal("dwconv", "t", gpu_goals.MET, "ok"))
    (out / "gpu_kernels_nvidia_h200.json").write_text(json.dumps({"goals": [goal], "results": []}))
    models = {"results": [
        {"model": "lsnet_t", "dtype": "fp16", "batch": 1, "variant": "eager", "status": "ok",
         "latency": {"median_ms": 2.0}},
        {"model": "lsnet_t", "dtype": "fp16", "batch": 1, "variant": "ours", "status": "ok",
         "latency": {"median_ms": 1.0}, "parity_vs_eager": {"max_abs_over_scale": 1e-3, "cosine": 0.99999}},
        {"model": "repvgg_a0", "dtype": "fp16", "batch": 1, "variant": "ours", "status": "skipped",
         "reason": "nothing to swap"}]}
    (out / "gpu_models_nvidia_h200.json").write_text(json.dumps(models))
    (out / "gpu_tests.xml").write_text('<testsuites><testsuite tests="5" failures="0" errors="0" skipped="1"/>'
                                       "</testsuites>")


def test_collect_files_a_run_under_benchmarks_results(tmp_path):
    from tools import collect_gpu_results as cg

    out, results = tmp_path / "out", tmp_path / "results"
    _fake_run(out)
    summary = cg.summarize(out)
    assert summary["failed_stages"] == ["build"]
    assert {g["name"]: g["status"] for g in summary["goals"]} == {"dwconv": "met", "parity": "met",
                                                                  "plugin_enqueue": "not evaluated"}
    ours = summary["models_ours_vs_eager"]
    assert ours[0]["speedup_vs_eager"] == 2.0 and ours[1]["status"] == "skipped"
    assert cg.main(["collect", str(out), "--results", str(results)]) == 0
    assert sorted(p.name for p in results.iterdir()) == [
        "gpu_check_nvidia_h200.json", "gpu_kernels_nvidia_h200.json", "gpu_models_nvidia_h200.json"]
    assert cg.main(["collect", str(out), "--results", str(results)]) == 2  # no silent overwrite
    assert cg.main(["collect", str(out), "--results", str(results), "--force"]) == 0
    assert cg.main(["collect", str(tmp_path / "missing"), "--results", str(results)]) == 2


def test_collect_refuses_a_run_without_a_gpu_name(tmp_path):
    from tools import collect_gpu_results as cg

    out = tmp_path / "out"
    out.mkdir()
    (out / "environment.json").write_text(json.dumps({"gpu": None}))
    assert cg.main(["collect", str(out), "--results", str(tmp_path / "r")]) == 2
    (out / "environment.json").write_text("")  # the environment stage failed mid-way
    assert cg.summarize(out)["gpu_env"] == {}
    assert not (tmp_path / "r").exists()


def test_collect_tool_does_not_import_torch():
    """It runs where results are read (any machine), so it must not need PyTorch."""
    code = "import sys, tools.collect_gpu_results, benchmarks.gpu_goals; sys.exit(int('torch' in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr


def test_kernel_bench_skips_cases_past_its_budget_and_records_failing_families():
    bench = gpu_kernels.Bench({"dram_gb_per_s": 1.0, "fp32_sgemm_tflop_per_s": 1.0}, 0, 3, deadline=0.0)
    assert bench.add("ska", "lsnet_t b1", "torch.float16", {}, lambda: 1 / 0, {"ref": lambda: 1 / 0}, (1, 1)) is None
    assert bench.skipped == ["ska lsnet_t b1 float16"] and bench.rows == []
    errors: dict[str, str] = {}
    gpu_kernels.run_family("dcnv2", lambda: 1 / 0, errors)
    gpu_kernels.run_family("dwconv", lambda: None, errors)
    assert list(errors) == ["dcnv2"] and "ZeroDivisionError" in errors["dcnv2"]


def test_plugin_enqueue_goal_verdicts():
    """The harness JSON decides the plugin goal: all cases within bounds, one out, unavailable, absent."""
    ok = {"name": "ska_b1", "dtype": "fp16", "ok": True, "worst_err_over_bound": 0.2, "error": None}
    bad = {"name": "dcn_b8", "dtype": "fp32", "ok": False, "worst_err_over_bound": 3.5, "error": None}
    assert gpu_goals.plugin_enqueue_goal({"passed": True, "cases": [ok]}).status == gpu_goals.MET
    g = gpu_goals.plugin_enqueue_goal({"passed": False, "cases": [ok, bad]})
    assert g.status == gpu_goals.NOT_MET and g.summary.startswith("1/2") and g.evidence[0]["name"] == "dcn_b8"
    assert gpu_goals.plugin_enqueue_goal({"passed": None, "unavailable": "no GPU"}).status == gpu_goals.NOT_EVALUATED
    assert gpu_goals.plugin_enqueue_goal(None).status == gpu_goals.NOT_EVALUATED
    assert gpu_goals.plugin_enqueue_goal({"passed": True, "cases": []}).status == gpu_goals.NOT_EVALUATED
