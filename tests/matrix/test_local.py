"""The local executor end to end on a tiny model: the results layout, matrix.json/md/html, --resume, and
`gate --matrix` on real runs. One matrix run for the module (a few tens of seconds on 2 cores)."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from deployconv.cli.app import app
from deployconv.matrix.local import split_cpus
from deployconv.matrix.results import read_record
from deployconv.matrix.run import plan, run_matrix
from tests.matrix._common import FAST, TINY, layout, tiny_spec

runner = CliRunner()


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    out = tmp_path_factory.mktemp("matrix") / "run"
    return run_matrix(tiny_spec(), out, executor="local", workers=2, options=FAST)


def test_plan_slots_split_cpus_without_overlap():
    assert split_cpus([0, 1], 2) == [[0], [1]]
    assert split_cpus([0, 1, 2], 2) == [[0, 1], [2]]
    assert split_cpus([0, 1, 2, 3], 1) == [[0, 1, 2, 3]]
    assert split_cpus([0, 1], 3) == [[0], [1], [0]]


def test_every_cell_passes_with_parity_latency_and_checks(first):
    doc = first.document
    assert first.ok and not first.interrupted
    assert doc["jobs"]["total"] == 4 and doc["jobs"]["passed"] == 4
    (cell,) = doc["cells"]
    assert cell["status"] == "passed" and set(cell["steps"]) == {"export", "validate", "bench", "check"}
    assert cell["parity"]["passed"] is True and cell["parity"]["stages"]
    lat = cell["latency"]
    assert lat["median_ms"] > 0 and lat["count"] >= 10 and lat["fingerprint"]["graph_sha256"]
    assert (first.out / lat["file"]).is_file() and (first.out / cell["report"]).is_file()
    assert cell["checks"]["parity"] == "pass"
    cond = doc["conditions"]
    assert cond["executor"] == "local" and cond["workers"] == 2 and cond["load_avg_start"] is not None
    for j in plan(tiny_spec()):
        rec = read_record(first.out, j)
        assert rec.status == "passed" and rec.worker["executor"] == "local" and len(rec.worker["cpus"]) >= 1


def test_markdown_and_html_show_the_grid(first):
    md = (first.out / "matrix.md").read_text()
    assert "## device: host" in md and "| onnx |" in md and "pass" in md
    html = (first.out / "matrix.html").read_text()
    cell = first.document["cells"][0]
    assert f'href="{cell["report"]}"' in html and "Content-Security-Policy" in html and "<script" not in html
    assert f'href="{cell["report_html"]}"' in html and (first.out / cell["report_html"]).is_file()
    assert "<h1" in (first.out / cell["report_html"]).read_text()


def test_resume_runs_nothing_when_nothing_changed(first, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(first.out, out)
    before = {j.id: read_record(out, j).finished_at for j in plan(tiny_spec())}
    again = run_matrix(tiny_spec(), out, executor="local", workers=2, options=FAST, resume=True)
    assert {j: again.records[j].finished_at for j in before} == before
    # one worker gets both CPUs: 2 threads per job, which only the bench reads: only the bench runs again
    third = run_matrix(tiny_spec(), out, executor="local", workers=1, options=FAST, resume=True)
    changed = {j for j in before if third.records[j].finished_at != before[j]}
    assert [j.rsplit("|", 1)[1] for j in changed] == ["bench"]
    assert third.records[changed.pop()].worker["threads"] == 2
    assert again.document["jobs"]["passed"] == 4
    assert layout(out) == layout(first.out)


def test_refuses_an_existing_out_and_remote_devices(first, tmp_path):
    from deployconv.core.errors import BadInputError

    with pytest.raises(BadInputError, match="already exists"):
        run_matrix(tiny_spec(), first.out, executor="local", options=FAST)
    with pytest.raises(BadInputError, match="local executor runs on this machine only"):
        run_matrix(tiny_spec(devices=("host", "jetson-orin")), tmp_path / "x", executor="local", options=FAST)


def test_gate_matrix_on_real_runs(first, tmp_path):
    same = runner.invoke(app, ["gate", "--matrix", str(first.out / "matrix.json"), str(first.out / "matrix.json")])
    assert same.exit_code == 0, same.output
    assert "PASS" in same.output
    # the current run 3x slower in every sample: the cell regressed (few short blocks: a wide interval)
    cur = tmp_path / "cur"
    shutil.copytree(first.out, cur)
    bench = cur / first.document["cells"][0]["latency"]["file"]
    data = json.loads(bench.read_text())
    data["samples_ms"] = [x * 3.0 for x in data["samples_ms"]]
    bench.write_text(json.dumps(data))
    slow = runner.invoke(app, ["gate", "--matrix", str(first.out / "matrix.json"), str(cur / "matrix.json"), "--json"])
    assert slow.exit_code == 1, slow.output
    verdicts = json.loads(slow.stdout[slow.stdout.index("{"):])["cells"]
    assert [c["verdict"] for c in verdicts] == ["regression"]


def test_cli_bad_input_exits_2(tmp_path):
    r = runner.invoke(app, ["matrix", "--models", "nope", "--targets", "onnx", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "unknown model" in r.output
    r = runner.invoke(app, ["matrix", "--models", TINY, "--targets", "onnx", "--jobs", "eval",
                            "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "not available" in r.output


def test_device_steps_run_where_torch_cannot_be_imported(first, tmp_path, tmp_path_factory):
    """What a device node without PyTorch runs: bundle-side steps from deployconv.matrix.steps, in a process
    where importing torch fails (tests/test_torch_free.py's blocker)."""
    import os
    import subprocess
    import sys
    import textwrap

    from tests.test_torch_free import BLOCKER, REPO

    d = tmp_path_factory.mktemp("blocked")
    (d / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(d), str(REPO)])
    export_dir = first.out / first.document["cells"][0]["report"].rsplit("/", 1)[0]
    code = textwrap.dedent(f'''
        import json, sys
        from pathlib import Path
        from deployconv.matrix.spec import JobSpec
        from deployconv.matrix.steps import StepOptions, run_step
        out = {{}}
        for step in ("validate", "bench", "check"):
            job = JobSpec("m", "onnx", step, "agx")
            r = run_step(job, [Path({str(export_dir)!r})], Path({str(tmp_path)!r}) / step,
                         StepOptions(bench_warmup_s=0.1, bench_duration_s=0.2, bench_repeat=1))
            out[step] = [r.status, r.error]
        assert "torch" not in sys.modules
        print(json.dumps(out))
    ''')
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {k: v[0] for k, v in res.items()} == {"validate": "passed", "bench": "passed", "check": "passed"}, res
    assert "torch-free" in json.loads((tmp_path / "validate" / "result.json").read_text())["mode"]
