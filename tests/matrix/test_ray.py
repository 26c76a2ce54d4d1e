"""The Ray executor on a local two-node cluster (ray.cluster_utils.Cluster, one process): a CPU head with 2 CPUs
and a "Jetson" node with no CPUs and the custom resource jetson-orin, as the README tells a device to join.
Skipped where ray is not installed (`pip install 'deployconv[ray]'`; the dev extra installs it, so CI runs these).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'deployconv[ray]'")

from ray.cluster_utils import Cluster  # noqa: E402

from deployconv.core.errors import BadInputError, MissingEnvironmentError  # noqa: E402
from deployconv.matrix.ray_executor import auth_note  # noqa: E402
from deployconv.matrix.results import read_record, record_path  # noqa: E402
from deployconv.matrix.run import plan, run_matrix  # noqa: E402
from tests.matrix._common import FAST, layout, tiny_spec  # noqa: E402

DEVICE = "jetson-orin"


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    device_node = c.add_node(num_cpus=0, resources={DEVICE: 1})
    ray.init(address=c.address, log_to_driver=False)
    yield {"address": c.address, "head": c.head_node.node_id, "device": device_node.node_id}
    ray.shutdown()
    c.shutdown()


def test_same_results_layout_as_the_local_executor(cluster, tmp_path):
    spec = tiny_spec(steps=("export", "bench"))
    on_ray = run_matrix(spec, tmp_path / "ray", executor="ray", address=cluster["address"], options=FAST)
    local = run_matrix(spec, tmp_path / "local", executor="local", workers=2, options=FAST)
    assert on_ray.ok and local.ok
    assert layout(on_ray.out) == layout(local.out)
    strip = ("seconds", "latency", "parity", "report", "error")
    assert [{k: v for k, v in c.items() if k not in strip} | {"steps": {s: d["status"] for s, d in c["steps"].items()}}
            for c in on_ray.document["cells"]] == \
           [{k: v for k, v in c.items() if k not in strip} | {"steps": {s: d["status"] for s, d in c["steps"].items()}}
            for c in local.document["cells"]]
    assert on_ray.document["conditions"]["executor"] == "ray"
    assert (on_ray.out / on_ray.document["cells"][0]["latency"]["file"]).is_file()


def test_device_jobs_land_only_on_nodes_with_the_device(cluster, tmp_path):
    spec = tiny_spec(steps=("export", "bench", "check"), devices=("host", DEVICE))
    run = run_matrix(spec, tmp_path / "dev", executor="ray", address=cluster["address"], options=FAST)
    assert run.ok, run.document["cells"]
    jobs = plan(spec)
    assert {j.step for j in jobs} == {"export", "bundle", "bench", "check"}
    for j in jobs:
        node = read_record(run.out, j).worker["node_id"]
        if j.device == DEVICE:
            assert node == cluster["device"], j.id
        else:  # exports, the bundle and host jobs need CPUs: never on the CPU-less device node
            assert node == cluster["head"], j.id
    # the device's bench ran from the bundle it received, checked against the manifest on arrival
    dev_cell = next(c for c in run.document["cells"] if c["device"] == DEVICE)
    assert dev_cell["latency"]["median_ms"] > 0 and dev_cell["checks"]["files"] == "pass"


def test_a_device_nobody_has_is_refused(cluster, tmp_path):
    with pytest.raises(MissingEnvironmentError, match="thor"):
        run_matrix(tiny_spec(devices=("thor",)), tmp_path / "x", executor="ray", address=cluster["address"],
                   options=FAST)


def _worker_pids(marker: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith(marker):
                pids.append(int(d.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the Ray worker through /proc")
def test_a_worker_killed_mid_job_is_retried_and_no_cell_is_lost_or_duplicated(cluster, tmp_path):
    spec = tiny_spec(steps=("export", "check"))
    out = tmp_path / "fault"
    box: dict = {}
    t = threading.Thread(target=lambda: box.update(run=run_matrix(
        spec, out, executor="ray", address=cluster["address"], options=FAST)))
    t.start()
    killed = None
    deadline = time.time() + 240
    while killed is None and time.time() < deadline and t.is_alive():
        pids = _worker_pids("ray::deployconv:export")
        if pids:
            time.sleep(1.0)  # mid-job: the worker is importing or exporting
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.2)
    t.join(300)
    assert killed is not None, "never saw the export job's worker"
    run = box["run"]
    assert run.ok, run.document["cells"]
    jobs = plan(spec)
    recs = [read_record(out, j) for j in jobs]
    assert all(r is not None and r.status == "passed" for r in recs)
    export = recs[0]
    assert export.step == "export" and export.worker["pid"] != killed  # a second attempt, in another process
    records_on_disk = sorted(p for p in (out / "cells").rglob("*.json")
                             if p.relative_to(out) in {record_path(j) for j in jobs})
    assert len(records_on_disk) == len(jobs)  # one record per job: nothing lost, nothing twice
    assert run.document["jobs"]["total"] == len(jobs) == run.document["jobs"]["passed"]


def test_token_authentication_is_never_turned_off():
    with pytest.raises(BadInputError, match="RAY_AUTH_MODE=disabled"):
        auth_note(None, env={"RAY_AUTH_MODE": "disabled"})
    assert auth_note(None, "2.60.0", env={}) is None  # a local Ray: token auth by default since 2.59
    assert "RAY_AUTH_MODE=token" in auth_note("head:6379", "2.60.0", env={})
    assert auth_note("head:6379", "2.60.0", env={"RAY_AUTH_MODE": "token"}) is None
    assert auth_note("head:6379", "2.61.0", env={}) is None
