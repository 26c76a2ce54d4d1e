"""The driver, on an in-process executor whose steps are scripted: failures stay in their cell, blocked and
skipped propagate, records are written once per job, and --resume keeps exactly the unchanged finished jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployconv.matrix.graph import build_jobs
from deployconv.matrix.results import FINISHED, cell_rows, job_dir, read_record, record_path
from deployconv.matrix.scheduler import run_jobs
from deployconv.matrix.spec import HOST, JobSpec, MatrixSpec
from deployconv.matrix.steps import StepOptions, StepOutcome

RUNTIME = {"onnx": "onnxruntime", "trt-fp16": "tensorrt"}


class Scripted:
    """Runs each job at once: status from `script` (default passed), output content from `content`."""

    name, workers, exclusive_host_bench = "scripted", 1, True

    def __init__(self, out: Path, script=None, content=None):
        self.out, self.script, self.content = out, script or {}, content or {}
        self.ran: list[str] = []
        self.inputs: dict[str, list[str]] = {}
        self.queue: list[tuple[JobSpec, StepOutcome]] = []
        self.adopted: list[str] = []

    def submit(self, job, deps, opts):
        self.ran.append(job.id)
        self.inputs[job.id] = [d.id for d in deps]
        status = self.script.get(job.step, "passed")
        d = self.out / job_dir(job)
        d.mkdir(parents=True, exist_ok=True)
        (d / "result.json").write_text(json.dumps({"job": job.id, "v": self.content.get(job.id, 0)}))
        from deployconv.matrix.results import output_hash

        err = None if status == "passed" else {"what": f"{job.step} {status}", "exit_code": 1}
        self.queue.append((job, StepOutcome(status=status, output_hash=output_hash(d), seconds=0.01, error=err)))

    def adopt(self, job):
        self.adopted.append(job.id)

    def wait_any(self, timeout):
        out, self.queue = self.queue, []
        return out

    def cancel(self):
        self.queue = []


def jobs(models=("a", "b"), targets=("onnx",), devices=(HOST,)):
    return build_jobs(MatrixSpec(models, targets, devices, ("export", "validate", "bench", "check", "build-engine")),
                      RUNTIME)


def test_a_failed_cell_blocks_only_its_own_dependents(tmp_path):
    js = jobs()
    ex = Scripted(tmp_path)
    orig = ex.submit  # model a's export fails; b runs through

    def submit(job, deps, opts):
        ex.script = {"export": "failed"} if job.model == "a" else {}
        orig(job, deps, opts)

    ex.submit = submit
    recs = run_jobs(js, ex, tmp_path, StepOptions())
    assert set(recs) == {j.id for j in js}
    assert recs["a|onnx|*|export"].status == "failed"
    assert {recs[f"a|onnx|host|{s}"].status for s in ("validate", "bench", "check")} == {"blocked"}
    assert {recs[f"b|onnx|host|{s}"].status for s in ("validate", "bench", "check")} == {"passed"}
    assert not any(r.startswith("a|") and not r.endswith("export") for r in ex.ran)
    rows = {r["model"]: r for r in cell_rows(js, recs, (HOST,))}
    assert rows["a"]["status"] == "failed" and rows["b"]["status"] == "passed"
    assert rows["a"]["error"]["step"] == "export"


def test_missing_engine_skips_not_blocks_and_validate_falls_back_to_the_export(tmp_path):
    js = jobs(models=("a",), targets=("trt-fp16",))
    ex = Scripted(tmp_path, script={"build-engine": "skipped", "bench": "skipped"})
    recs = run_jobs(js, ex, tmp_path, StepOptions())
    assert recs["a|trt-fp16|host|build-engine"].status == "skipped"
    assert recs["a|trt-fp16|host|validate"].status == "passed"
    assert ex.inputs["a|trt-fp16|host|validate"] == ["a|trt-fp16|*|export"]  # the skipped engine is left out
    assert cell_rows(js, recs, (HOST,))[0]["status"] == "skipped"


def test_a_skipped_input_makes_its_dependents_skipped(tmp_path):
    js = jobs(models=("a",), devices=("agx",))
    ex = Scripted(tmp_path, script={"bundle": "skipped"})
    recs = run_jobs(js, ex, tmp_path, StepOptions())
    assert {recs[f"a|onnx|agx|{s}"].status for s in ("validate", "bench", "check")} == {"skipped"}
    assert "bundle skipped" in recs["a|onnx|agx|bench"].error["what"]


def test_records_are_written_once_per_job_and_read_back(tmp_path):
    js = jobs()
    run_jobs(js, Scripted(tmp_path), tmp_path, StepOptions())
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json") if p.parent.name != p.stem
                   and p.name != "result.json")
    assert sorted(record_path(j) for j in js) == files
    for j in js:
        rec = read_record(tmp_path, j)
        assert rec is not None and rec.id == j.id and rec.status == "passed"
    (tmp_path / record_path(js[0])).write_text("{half")  # a torn file is not a finished job
    assert read_record(tmp_path, js[0]) is None


def test_resume_keeps_unchanged_finished_jobs_and_reruns_the_rest(tmp_path):
    js = jobs()
    first = Scripted(tmp_path, script={"check": "error"})
    run_jobs(js, first, tmp_path, StepOptions())
    again = Scripted(tmp_path)
    recs = run_jobs(js, again, tmp_path, StepOptions(), resume=True)
    assert sorted(again.ran) == sorted(j.id for j in js if j.step == "check")  # errored jobs run again
    assert all(r.status in FINISHED for r in recs.values())
    # same again: nothing to run
    third = Scripted(tmp_path)
    run_jobs(js, third, tmp_path, StepOptions(), resume=True)
    assert third.ran == []
    # a's export runs again (its recorded input hash no longer matches) and now writes different output:
    # everything downstream of it runs again, and nothing of b
    fourth = Scripted(tmp_path, content={"a|onnx|*|export": 1})
    rec_path = tmp_path / record_path(js[0])
    data = json.loads(rec_path.read_text())
    data["input_hash"] = "stale"
    rec_path.write_text(json.dumps(data))
    run_jobs(js, fourth, tmp_path, StepOptions(), resume=True)
    assert sorted(fourth.ran) == sorted(j.id for j in js if j.model == "a")
    # a step option changes the input hash of the steps that read it, and only theirs
    fifth = Scripted(tmp_path)
    run_jobs(js, fifth, tmp_path, StepOptions(bench_duration_s=9.0), resume=True)
    assert sorted(fifth.ran) == sorted(j.id for j in js if j.step == "bench")
    sixth = Scripted(tmp_path)
    run_jobs(js, sixth, tmp_path, StepOptions(bench_duration_s=9.0, seed=1), resume=True)
    # the exports read the seed and run again; a's now writes different output (content back to 0), so its
    # dependents run again; b's writes the same bytes, so only b's bench (which reads the seed) runs again
    assert sorted(sixth.ran) == sorted(j.id for j in js if j.model == "a" or j.step in ("export", "bench"))


def test_a_host_bench_runs_alone(tmp_path):
    js = jobs(models=("a", "b", "c"))

    class Tracking(Scripted):
        def __init__(self, out):
            super().__init__(out)
            self.running: set[str] = set()
            self.overlap: list[tuple[str, set[str]]] = []

        def submit(self, job, deps, opts):
            if job.step == "bench" and self.running:
                self.overlap.append((job.id, set(self.running)))
            if any(r.endswith("|bench") for r in self.running):
                self.overlap.append((job.id, set(self.running)))
            self.running.add(job.id)
            super().submit(job, deps, opts)

        def wait_any(self, timeout):
            done = self.queue[:1]  # one at a time, so several are in flight
            self.queue = self.queue[1:]
            for j, _ in done:
                self.running.discard(j.id)
            return done

    ex = Tracking(tmp_path)
    run_jobs(js, ex, tmp_path, StepOptions())
    assert ex.overlap == []
    assert len(ex.ran) == len(js)


def test_interrupt_cancels_and_keeps_finished_records(tmp_path):
    js = jobs()

    class Interrupting(Scripted):
        def wait_any(self, timeout):
            done = super().wait_any(timeout)
            if any(j.step == "validate" for j, _ in done):
                raise KeyboardInterrupt
            return done

    ex = Interrupting(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_jobs(js, ex, tmp_path, StepOptions())
    finished = [j for j in js if read_record(tmp_path, j) is not None]
    assert finished and len(finished) < len(js)
    assert all(read_record(tmp_path, j).status == "passed" for j in finished)
