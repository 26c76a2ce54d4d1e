"""deployconv.core.compat (version ranges, CUDA arch fit) and deployconv.core.env's parsers: the one copy of
each rule. The arch cases include the one the old copies disagreed on (validate/device.py read sm_90a as sm_90,
so it let an sm_90a-only library, or compute_90a PTX, pass on GPUs after Hopper)."""

from __future__ import annotations

import os

import pytest

from deployconv.core import compat, env
from deployconv.core.compat import (
    arch_key,
    cubin_runs_on,
    gpu_fit,
    parse_version,
    ptx_runs_on,
    runs_on,
    upper_bound,
    version_in_range,
)
from deployconv.core.errors import BadInputError


@pytest.mark.parametrize("arch,cc,runs", [
    ("87", 87, True), ("86", 87, True), ("87", 86, False),  # same major, minor >= the cubin's
    ("80", 90, False), ("90", 100, False),  # never across a major
    ("90a", 90, True),
    ("90a", 91, False),  # arch-specific: exactly its own compute capability, not a later minor
    ("90a", 100, False), ("100a", 103, False), ("100a", 100, True),
    ("100f", 103, True), ("100f", 110, False), ("103f", 100, False),  # family: same major, minor >=
    (110, 110, True), ("sm_87", "8.7", True),
])
def test_cubin_fit(arch, cc, runs):
    assert cubin_runs_on(arch, cc) is runs


@pytest.mark.parametrize("arch,cc,runs", [
    ("87", 90, True), ("87", 120, True), ("90", 87, False),  # plain PTX JITs forward, never backward
    ("90a", 90, True), ("90a", 100, False), ("90a", 120, False),  # arch-specific PTX: no forward compatibility
    ("100f", 103, True), ("100f", 120, False),
])
def test_ptx_fit(arch, cc, runs):
    assert ptx_runs_on(arch, cc) is runs


def test_the_case_the_copies_disagreed_on():
    """An sm_90a-only library with compute_90a PTX runs on H100 (9.0), not on B200 (10.0)."""
    assert runs_on(90, ("90a",), ("90a",))
    assert not runs_on(100, ("90a",), ("90a",))
    assert gpu_fit(["90a"], [], "10.0") is None and gpu_fit(["90a"], [], "9.0") == "sm_90a cubin"


def test_gpu_fit_prefers_the_closest_cubin_then_ptx():
    assert gpu_fit(["80", "86"], [], "8.7") == "sm_86 cubin (binary compatible)"
    assert gpu_fit(["87"], ["90"], "10.0") == "compute_90 PTX, JIT-compiled by the driver at first load"
    assert gpu_fit([], [], 87) is None


def test_arch_key_reads_every_spelling_and_refuses_others():
    assert arch_key("sm_90a") == (90, "a") and arch_key("compute_100f") == (100, "f") and arch_key(87) == (87, "")
    with pytest.raises(ValueError):
        arch_key("hopper")


def test_version_range():
    assert version_in_range("10.3.0.30", "10.3", None) and not version_in_range("10.1.0", "10.3", None)
    assert version_in_range("8.5.2.2", "8.5", "8.5") and not version_in_range("8.6.1", "8.5", "8.5")
    assert version_in_range("10.13", "10.13", None) and not version_in_range("10.2", "10.13", None)
    assert version_in_range("10.3.0.30", None, "10.3.0")  # an upper bound covers its own sub-releases
    # the lower bound counts every component: engine/plan.py's copy dropped the fourth and refused 10.3.0.30
    assert version_in_range("10.3.0.30", "10.3.0.26", None) and not version_in_range("10.3.0.20", "10.3.0.26", None)
    assert version_in_range("11.0", None, None)


def test_versions_as_tuples():
    assert parse_version("10.3.0.26") == (10, 3, 0) and parse_version("11") == (11, 0, 0)
    assert upper_bound("10.7") == (10, 7, compat.OPEN)
    with pytest.raises(BadInputError):
        parse_version("ten")


def test_nvidia_smi_lines_become_typed_gpus():
    text = "NVIDIA H200, 570.86.15, 9.0\nNVIDIA L4, 570.86.15, 8.9\n"
    assert env.parse_nvidia_smi(text) == (env.Gpu("NVIDIA H200", "570.86.15", 90), env.Gpu("NVIDIA L4", "570.86.15", 89))
    assert env.parse_nvidia_smi("8.7\n9.0\n\n") == (env.Gpu("", "", 87), env.Gpu("", "", 90))
    # an old driver without the compute_cap field
    assert env.parse_nvidia_smi('Field "compute_cap" is not a valid field to query.\n') == ()
    assert env.parse_nvidia_smi("Tesla T4, 470.1, [Not Supported]\n") == ()


def test_the_gpu_probe_uses_nvidia_smi_output(monkeypatch):
    monkeypatch.setattr(env.shutil, "which", lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None)
    monkeypatch.setattr(env, "_run", lambda cmd, timeout=20: "NVIDIA H200, 570.1, 9.0\n")
    found = env.probe_gpus()
    assert found.via == "nvidia-smi" and found.compute_caps == (90,) and found.gpus[0].sm == "sm_90"


def test_no_gpu_says_why(monkeypatch):
    monkeypatch.setattr(env.shutil, "which", lambda name: None)
    monkeypatch.setattr(env, "_gpus_from_cuda_python", lambda: ())
    found = env.probe_gpus()
    assert found.gpus == () and "nvidia-smi not installed" in found.detail


def test_jetson_release_parsing():
    assert env.parse_tegra_release("# R36 (release), REVISION: 4.0, GCID: 1, BOARD: generic") == (36, 4, 0)
    assert env.jetpack_for((36, 4, 3)) == "6.2" and env.jetpack_for((36, 4, 0)) == "6.1"
    assert env.jetpack_for((99, 0, 0)) is None
    assert env.jetpack_matches("6.1.1", ("6.1",)) and env.jetpack_matches("7.3", ("7.2.2+",))
    assert not env.jetpack_matches("6.10", ("6.1",))


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs an affinity mask (Linux)")
def test_cpus_follow_the_affinity_mask():
    assert env.available_cpus() == len(os.sched_getaffinity(0)) == len(env.available_cpu_ids())
