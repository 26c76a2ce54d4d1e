"""`deployconv check`: the decisions from probed facts (any machine), the ONNX Runtime mode end to end on
fresh and tampered bundles, the exit codes, and the whole command with torch blocked."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import textwrap
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from deployconv.core.compat import runs_on, version_in_range
from deployconv.core.env import jetpack_for, jetpack_matches, parse_nvidia_smi, parse_tegra_release
from deployconv.core.errors import EXIT_CHECK_FAILED, EXIT_MISSING_ENV
from deployconv.core.target import get_target
from deployconv.pipeline.bundle import make_bundle
from deployconv.plugins.library import parse_build_txt
from deployconv.validate.device import (
    FAIL,
    PASS,
    SKIP,
    Check,
    CheckReport,
    Environment,
    check_bundle,
    environment_checks,
    probe_environment,
)
from deployconv.validate.device_checks import _check_platform
from tests.export.test_bundle import _app, exported, source_snapshot
from tests.test_torch_free import BLOCKER, REPO, run_blocked

ORIN = Environment(tensorrt="10.3.0.30", onnxruntime="1.20.0", compute_caps=(87,),
                   jetson_model="NVIDIA Jetson AGX Orin Developer Kit", l4t=(36, 4, 0), dla_cores=2,
                   plugin_library="plugins/build/libdeployconv_plugins.so", plugin_archs=(87,))
WITH_PLUGINS = SimpleNamespace(plugin_names=["DeployconvSKA"])  # what environment_checks reads of a Manifest
NO_PLUGINS = SimpleNamespace(plugin_names=[])


def redeclared(export_dir, dest, target: str, batch: int | None = None):
    """The fp32 export of the tiny model re-declared for a TensorRT `target` (it has no custom ops, so the graph
    is the same): with `batch`, pinned to that static batch as a DLA export is, fp16 left to TensorRT 10's builder
    flag the way DLA engines are built there. Independent of the pipeline's precision step, so these tests pin
    down `check`, not the export."""
    import onnx

    from deployconv.trust.manifest import io_signature, read_manifest, write_manifest

    dest.mkdir()
    proto = onnx.load(str(export_dir / "model.onnx"))
    if batch is not None:
        for v in (*proto.graph.input, *proto.graph.output):
            v.type.tensor_type.shape.dim[0].dim_value = batch
        del proto.graph.value_info[:]
    onnx.save(proto, str(dest / "model.onnx"))
    for name in ("reference.npz", "report.json"):
        shutil.copyfile(export_dir / name, dest / name)
    t = get_target(target)
    man = {k: v for k, v in read_manifest(export_dir).to_dict().items() if k != "files"}
    man.update(target=t.name, runtime=t.runtime, precision=t.precision, io=io_signature(proto))
    write_manifest(dest, man)
    return dest


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """An onnx-target bundle and a DLA-target bundle (static batch 2; reference.npz holds 4 samples) of the tiny
    fixture model."""
    root = tmp_path_factory.mktemp("dc")
    src = source_snapshot(root / "src")
    export_dir = exported(root, "onnx", batch=2)  # two parity batches of 2
    assert len(np.load(export_dir / "reference.npz")["input"]) == 4
    ort = make_bundle(export_dir, root / "b" / "ort", root=src).out
    dla = make_bundle(redeclared(export_dir, root / "dla-export", "jetson-orin-dla-fp16", batch=2), root / "b" / "dla",
                      root=src).out
    trt = make_bundle(redeclared(export_dir, root / "trt-export", "trt-fp32"), root / "b" / "trt", root=src).out
    return {"ort": ort, "dla": dla, "trt": trt}


def by_name(checks):
    return {c.name: c for c in checks}


# --- decisions from probed facts ---------------------------------------------------------------------------------

def test_parsers_and_version_ranges():
    assert [g.compute_capability for g in parse_nvidia_smi("8.7\n9.0\n\n")] == [87, 90] and parse_nvidia_smi("") == ()
    text = "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8"
    assert parse_tegra_release(text) == (36, 4, 3) and parse_tegra_release("garbage") is None
    assert [jetpack_for(v) for v in ((35, 4, 1), (36, 4, 0), (36, 4, 3), (36, 4, 4), (36, 9, 0))] == \
        ["5.1.2", "6.1", "6.2", "6.2.1", None]
    assert parse_build_txt("cuda_archs=87;90\nplugins=libdeployconv_plugins.so\n")["cuda_archs"] == "87;90"
    assert version_in_range("10.3.0.30", "10.3", None) and not version_in_range("10.1.0", "10.3", None)
    assert version_in_range("8.5.2.2", "8.5", "8.5") and not version_in_range("8.6.1", "8.5", "8.5")
    assert version_in_range("10.13", "10.13", None) and not version_in_range("10.2", "10.13", None)


def test_orin_with_everything_passes():
    checks = by_name(environment_checks(get_target("jetson-orin-dla-fp16"), WITH_PLUGINS, ORIN, ort=False))
    assert set(checks) == {"tensorrt", "gpu", "jetson", "platform", "dla", "plugins"}
    assert all(c.status == PASS for c in checks.values()), checks
    assert checks["platform"].found == "jetson-orin on JetPack 6.1 with TensorRT 10.3.0.30"
    assert checks["jetson"].found.endswith("L4T R36.4.0 = JetPack 6.1")


@pytest.mark.parametrize(("env", "name", "missing", "words"), [  # name: the check that fails (plugins follow the GPU)
    (replace(ORIN, tensorrt=None, tensorrt_detail="not importable"), "tensorrt", True, "JetPack"),
    (replace(ORIN, tensorrt="10.1.0"), "tensorrt", False, "in that range"),
    (replace(ORIN, compute_caps=()), "gpu", True, "driver"),
    (replace(ORIN, compute_caps=(86,)), "gpu", False, "sm_87"),
    (replace(ORIN, jetson_model=None), "jetson", False, "Jetson"),
    (replace(ORIN, jetson_model="NVIDIA Jetson AGX Xavier"), "jetson", False, "Orin"),
    (replace(ORIN, l4t=(35, 4, 1)), "jetson", False, "JetPack 6.1/6.2"),
    (replace(ORIN, dla_cores=None), "dla", True, "no DLA"),
    (replace(ORIN, dla_cores=0), "dla", True, "no DLA"),
    (replace(ORIN, plugin_library=None), "plugins", True, "cmake -S plugins"),
    (replace(ORIN, plugin_archs=(90,)), "plugins", False, 'DEPLOYCONV_CUDA_ARCHS="87"'),
])
def test_each_mismatch_fails_with_a_fix(env, name, missing, words):
    checks = by_name(environment_checks(get_target("jetson-orin-dla-fp16"), WITH_PLUGINS, env, ort=False))
    c = checks[name]
    assert c.status == FAIL and c.missing is missing and words in c.fix + c.expected, c
    failed = {x.name for x in checks.values() if x.status == FAIL} - {"platform"}  # tested on its own below
    assert failed == ({name, "plugins"} if name == "gpu" and env.compute_caps else {name})


@pytest.mark.parametrize(("target", "env", "status", "words"), [
    ("jetson-orin-dla-fp16", ORIN, PASS, "JetPack 6.1 to 6.x: TensorRT 10.3 to 10.7.x, DLA"),
    ("jetson-orin-dla-fp16", replace(ORIN, tensorrt="10.16.0"), FAIL, "install that TensorRT"),
    ("jetson-orin-dla-fp16", replace(ORIN, l4t=(35, 4, 1)), FAIL, "TensorRT 8.5"),  # JetPack 5.1.2 ships 8.5
    ("jetson-orin-fp16", replace(ORIN, tensorrt="11.4.1"), FAIL, "JetPack 6.1 to 6.x: TensorRT 10.3 to 10.7.x"),
    ("jetson-orin-dla-fp16", replace(ORIN, jetson_model=None), SKIP, "Jetson model unknown"),
    ("jetson-orin-dla-fp16", replace(ORIN, l4t=(99, 0, 0)), SKIP, "JetPack release unknown"),
    ("jetson-orin-dla-fp16", replace(ORIN, tensorrt=None), SKIP, "TensorRT not installed"),
    ("jetson-thor-fp16", replace(ORIN, jetson_model="NVIDIA Jetson AGX Thor", l4t=(38, 2, 0), tensorrt="10.13.3"),
     PASS, "JetPack 7.0 to 7.1.x: TensorRT 10.13, no DLA"),
])
def test_platform_check_reports_the_device_against_the_support_matrix(target, env, status, words):
    c = by_name(environment_checks(get_target(target), WITH_PLUGINS, env, ort=False))["platform"]
    assert c.status == status and words in c.found + c.expected + c.fix, c


def test_platform_check_says_dla_is_absent_where_the_table_says_so():
    orin_jp72 = replace(ORIN, l4t=(36, 4, 0), tensorrt="10.16.0")  # JetPack 6.1 device with 10.16: wrong TRT
    assert _check_platform(get_target("jetson-orin-dla-fp16"), orin_jp72, False).status == FAIL
    # the table's verdict for a JetPack 7.2 Orin (L4T for 7.2 is not in the L4T table: asked directly)
    from deployconv.core.support_matrix import device_verdict

    v = device_verdict("jetson-orin", "7.2", "10.16.1", wants_dla=True)
    assert v.ok is False and "10.7 was the last" in v.fix
    nx = device_verdict("jetson-orin", "7.2.2", "11.4.1", wants_dla=True, model="NVIDIA Jetson Orin NX")
    assert nx.ok is False and "AGX Orin only" in nx.fix
    agx = device_verdict("jetson-orin", "7.2.3", "11.4.1", wants_dla=True, model="NVIDIA Jetson AGX Orin")
    assert agx.ok is True and "strongly typed" in agx.expected


def test_jetpack_lists_accept_open_ended_entries():
    assert jetpack_matches("7.2.2", ("7.2.2+",)) and jetpack_matches("7.3", ("7.2.2+",))
    assert not jetpack_matches("7.2.1", ("7.2.2+",)) and not jetpack_matches("6.2", ("7.2.2+",))
    assert jetpack_matches("6.2.1", ("6.1", "6.2")) and not jetpack_matches("6.0", ("6.1", "6.2"))


def test_unknown_archs_and_newer_gpus():
    t = get_target("trt-fp16")  # plugin archs 80..120, no fixed device
    checks = by_name(environment_checks(t, WITH_PLUGINS, replace(ORIN, plugin_archs=None, compute_caps=(90,)), False))
    assert checks["plugins"].status == SKIP and "cuobjdump" in checks["plugins"].fix
    newer = replace(ORIN, compute_caps=(100,), plugin_archs=(87, 90))  # PTX of the highest arch JITs on newer
    assert by_name(environment_checks(t, WITH_PLUGINS, newer, False))["plugins"].status == PASS
    no_ptx = replace(newer, plugin_ptx=())  # cuobjdump saw no PTX: nothing to JIT for sm_100
    assert by_name(environment_checks(t, WITH_PLUGINS, no_ptx, False))["plugins"].status == FAIL
    assert "jetson" not in checks and "dla" not in checks


def test_ort_mode_skips_tensorrt_checks_and_needs_onnxruntime():
    env = Environment(onnxruntime=None)
    checks = by_name(environment_checks(get_target("jetson-orin-dla-fp16"), NO_PLUGINS, env, ort=True))
    for name in ("tensorrt", "gpu", "jetson", "dla"):
        assert checks[name].status == SKIP and "checked with ONNX Runtime instead" in checks[name].found
    assert checks["onnxruntime"].status == FAIL and checks["onnxruntime"].missing


def test_probe_reads_this_machine_and_rejects_a_broken_plugin_library(tmp_path):
    lib = tmp_path / "plugins" / "build" / "libdeployconv_plugins.so"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"not an ELF file")
    env = probe_environment(tmp_path)
    assert env.plugin_library is None and "unusable" in env.plugin_detail
    assert env.onnxruntime  # the test environment has it
    if importlib.util.find_spec("tensorrt") is None:
        assert env.tensorrt is None and "not importable" in env.tensorrt_detail
    assert all(isinstance(c, int) and c >= 30 for c in env.compute_caps)


def test_which_gpus_run_which_code():
    assert runs_on(87, (87,), ()) and runs_on(87, (86,), ()) and not runs_on(86, (87,), ())
    assert not runs_on(90, (87,), ()) and runs_on(90, (87,), (87,)) and not runs_on(80, (87,), (87,))


def test_exit_codes():
    ok, missing = Check("a", PASS, "", ""), Check("b", FAIL, "", "", missing=True)
    wrong = Check("c", FAIL, "", "")
    assert CheckReport("d", "t", "tensorrt", [ok, Check("s", SKIP, "", "")]).exit_code == 0
    assert CheckReport("d", "t", "tensorrt", [ok, missing]).exit_code == EXIT_MISSING_ENV
    assert CheckReport("d", "t", "tensorrt", [missing, wrong]).exit_code == EXIT_CHECK_FAILED


# --- on real bundles, with ONNX Runtime in place of TensorRT --------------------------------------------------------

def test_fresh_bundle_passes_with_onnxruntime(bundles):
    report = check_bundle(bundles["ort"])  # onnx target: ONNX Runtime mode automatically
    checks = by_name(report.checks)
    assert report.runtime == "onnxruntime" and report.exit_code == 0, report.to_dict()
    assert checks["files"].status == PASS and checks["parity"].status == PASS
    assert checks["tensorrt"].status == SKIP and "checked with ONNX Runtime instead" in checks["tensorrt"].found
    assert "cosine" in checks["parity"].found


def test_static_batch_dla_bundle_in_ort_mode(bundles):
    report = check_bundle(bundles["dla"], runtime="ort-cpu")
    checks = by_name(report.checks)
    assert report.exit_code == 0, report.to_dict()
    assert checks["parity"].status == PASS  # reference.npz holds 4 samples, the model takes batches of 2
    assert checks["dla placement"].found.startswith("5 of 6 layers on DLA")
    assert {checks[n].status for n in ("tensorrt", "gpu", "jetson", "dla")} == {SKIP}


def test_dla_bundle_without_tensorrt_says_so(bundles):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here: this test is about a machine without it")
    report = check_bundle(bundles["dla"])
    t = by_name(report.checks)["tensorrt"]
    assert report.runtime == "tensorrt" and t.status == FAIL and t.missing and "--runtime ort-cpu" in t.fix
    assert report.exit_code in (EXIT_CHECK_FAILED, EXIT_MISSING_ENV)


def test_check_command_exits_3_when_tensorrt_and_gpu_are_missing(bundles):
    if importlib.util.find_spec("tensorrt") is not None or shutil.which("nvidia-smi"):
        pytest.skip("this machine has TensorRT or a GPU: the test is about one without either")
    res = CliRunner().invoke(_app(), ["check", str(bundles["trt"])])
    assert res.exit_code == EXIT_MISSING_ENV, res.output
    assert "missing on this device: tensorrt, gpu" in res.output and "--runtime ort-cpu" in res.output
    assert "trtexec --onnx=model.onnx" in (bundles["trt"] / "README.md").read_text()
    assert CliRunner().invoke(_app(), ["check", str(bundles["trt"]), "--runtime", "ort"]).exit_code == 0


@pytest.mark.parametrize("tamper", ["reference", "plugin_source"])
def test_tampered_bundle_fails_with_exit_1(bundles, tmp_path, tamper):
    copy = tmp_path / "ort"
    shutil.copytree(bundles["ort"], copy)
    if tamper == "reference":
        ref = dict(np.load(copy / "reference.npz"))
        ref["expected"] = ref["expected"] + 1.0
        np.savez(copy / "reference.npz", **ref)
        changed = "reference.npz: sha256 differs"
    else:
        with open(copy / "plugins" / "CMakeLists.txt", "a") as f:
            f.write("# edited\n")
        changed = "plugins/CMakeLists.txt: sha256 differs"
    res = CliRunner().invoke(_app(), ["check", str(copy), "--json"])
    assert res.exit_code == EXIT_CHECK_FAILED, res.output
    checks = by_name(Check(**c) for c in json.loads(res.stdout)["checks"])
    assert checks["files"].status == FAIL and changed in checks["files"].found
    assert checks["parity"].status == SKIP and "files check failed" in checks["parity"].found  # no decoy run
    fresh = CliRunner().invoke(_app(), ["check", str(bundles["ort"])])
    assert fresh.exit_code == 0, fresh.output


def test_check_and_validate_run_with_torch_blocked(bundles, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE")}
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]), COLUMNS="200")
    script = tmp_path / "device_cli.py"
    script.write_text(textwrap.dedent("""
        import sys
        from deployconv.cli.app import app
        try:
            app()
        finally:
            leaked = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
            assert not leaked, leaked
    """))
    probe = run_blocked(env, "-c", "import torch")
    assert probe.returncode != 0 and "blocked by the torch-free test" in probe.stderr
    imports = run_blocked(env, "-c", "import deployconv.engine.dla, deployconv.pipeline.bundle, "
                                     "deployconv.validate.device, deployconv.cli.device")
    assert imports.returncode == 0, imports.stderr
    for bundle, runtime in ((bundles["ort"], "auto"), (bundles["dla"], "ort-cpu")):
        proc = run_blocked(env, str(script), "check", str(bundle), "--runtime", runtime, "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["passed"]
    proc = run_blocked(env, "-m", "deployconv", "validate", str(bundles["ort"]), "--torch-free", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["parity"]["passed"]


def test_an_arch_specific_plugin_build_fails_on_a_later_gpu():
    """The drift the old copy had: it read sm_90a as sm_90 (and compute_90a PTX as JIT-able forward), so an
    sm_90a-only library passed on a B200 (10.0). CUDA runs arch-specific code on exactly 9.0."""
    t = get_target("trt-fp16")
    hopper_only = replace(ORIN, compute_caps=(100,), plugin_archs=("90a",), plugin_ptx=("90a",))
    assert by_name(environment_checks(t, WITH_PLUGINS, hopper_only, False))["plugins"].status == FAIL
    on_h100 = replace(hopper_only, compute_caps=(90,))
    assert by_name(environment_checks(t, WITH_PLUGINS, on_h100, False))["plugins"].status == PASS


def test_the_probe_keeps_arch_suffixes(monkeypatch, tmp_path):
    """Probe to decision: cuobjdump's sm_90a reaches the check as "90a" (the old probe cut it to 90, so the
    check then passed an sm_90a-only library on sm_100)."""
    from deployconv.plugins.library import PluginLibrary
    from deployconv.validate import device_probe

    lib = PluginLibrary(path=str(tmp_path / "libdeployconv_plugins.so"), found_via="argument", sha256="0" * 64,
                        size_bytes=1, entry_points=("getCreators",), sass_archs=("90a",), ptx_archs=("90a",),
                        archs_note="test")
    monkeypatch.setattr(device_probe, "plugin_library", lambda path, check_gpu: lib)
    path, sass, ptx, _ = device_probe._probe_plugins(tmp_path)
    assert (sass, ptx) == (("90a",), ("90a",))
    env = replace(ORIN, compute_caps=(100,), plugin_library=path, plugin_archs=sass, plugin_ptx=ptx)
    assert by_name(environment_checks(get_target("trt-fp16"), WITH_PLUGINS, env, False))["plugins"].status == FAIL
