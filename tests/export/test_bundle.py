"""Device bundles: contents, hashes of every file (plugin sources included), a byte-for-byte reproducible
tar.gz, atomic writes, the README's commands, and the `deployconv bundle` command."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import typer
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from deployconv.core.errors import BadInputError
from deployconv.core.fsio import sha256_file
from deployconv.core.target import get_target
from deployconv.pipeline.bundle import FIXED_MTIME, make_bundle, repo_root, tarball_for, trtexec_line
from deployconv.pipeline.bundle_readme import PLUGIN_LIBRARY, ReadmeFacts, render_readme
from deployconv.pipeline.export import ExportOptions, export
from deployconv.trust.manifest import read_manifest, verify_hashes

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_model.py"
REPO = repo_root()


def exported(root: Path, target: str, batch: int = 1) -> Path:
    """The tiny fixture model exported for `target` (no benchmark); reference.npz holds two batches of `batch`."""
    out = root / f"tiny-{target}"
    result = export(f"{FIXTURE}:build", target, out, options=ExportOptions(bench=False, batch=batch))
    assert result.passed
    return out


def source_snapshot(dest: Path) -> Path:
    """A frozen copy of the sources a bundle packs, so two bundles compare while others edit the checkout."""
    shutil.copytree(REPO / "plugins_cpp", dest / "plugins_cpp", ignore=shutil.ignore_patterns("build*", ".*"))
    shutil.copytree(REPO / "deployconv", dest / "deployconv", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    return exported(tmp_path_factory.mktemp("exp"), "onnx")


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    return source_snapshot(tmp_path_factory.mktemp("src"))


@pytest.fixture(scope="module")
def bundle(onnx_export, snapshot, tmp_path_factory):
    return make_bundle(onnx_export, tmp_path_factory.mktemp("b") / "tiny-bundle", root=snapshot)


def test_contents_and_hashes_cover_every_file(bundle, snapshot, onnx_export):
    out = bundle.out
    assert {p.name for p in out.iterdir()} == {"model.onnx", "reference.npz", "report.json", "manifest.json",
                                               "README.md", "plugins", "deployconv_src"}
    man = read_manifest(out)
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(man.files) == on_disk and verify_hashes(out, man) == []
    plugin_files = {p.relative_to(snapshot / "plugins_cpp").as_posix() for p in (snapshot / "plugins_cpp").rglob("*")
                    if p.is_file()}
    assert plugin_files and {f"plugins/{f}" for f in plugin_files} <= set(man.files)
    assert man.files["plugins/CMakeLists.txt"] == sha256_file(snapshot / "plugins_cpp" / "CMakeLists.txt")
    assert man.files["deployconv_src/pyproject.toml"] == sha256_file(snapshot / "pyproject.toml")
    assert (out / "deployconv_src" / "deployconv" / "core" / "target_files" / "onnx.toml").is_file()
    assert not list(out.rglob("__pycache__")) and not list(out.rglob("*.pyc"))
    assert man.bundle.format == "deployconv.bundle/1" and man.target == "onnx"
    assert man.bundle.plugin_sources == len(plugin_files)
    assert bundle.files == len(man.files) + 1
    for name in ("model.onnx", "reference.npz", "report.json"):
        assert man.files[name] == sha256_file(onnx_export / name)
    assert man.bundle.export_manifest_sha256 == sha256_file(onnx_export / "manifest.json")


def test_tar_is_reproducible_and_matches_the_folder(bundle, onnx_export, snapshot, tmp_path):
    again = make_bundle(onnx_export, tmp_path / "tiny-bundle", root=snapshot)  # same name, other place
    assert tarball_for(again.out).read_bytes() == bundle.tarball.read_bytes()
    assert again.tar_sha256 == bundle.tar_sha256 == sha256_file(bundle.tarball)
    with tarfile.open(bundle.tarball, "r:gz") as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names[0] == "tiny-bundle" and names == ["tiny-bundle", *sorted(names[1:])]
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(FIXED_MTIME, 0, 0, "", "")}
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in members if m.isfile()}
    on_disk = {p.relative_to(bundle.out).as_posix(): p.read_bytes() for p in bundle.out.rglob("*") if p.is_file()}
    assert files == on_disk
    raw = bundle.tarball.read_bytes()
    assert raw[4:8] == b"\0\0\0\0" and not raw[3] & 0x08  # gzip header: no mtime, no file name


def test_overwrite_refused_without_force(bundle, onnx_export, snapshot):
    before = bundle.tarball.read_bytes()
    with pytest.raises(BadInputError, match="already exists"):
        make_bundle(onnx_export, bundle.out, root=snapshot)
    assert bundle.tarball.read_bytes() == before
    (bundle.out / "stray.txt").write_text("left over")
    make_bundle(onnx_export, bundle.out, force=True, root=snapshot)
    assert not (bundle.out / "stray.txt").exists() and bundle.tarball.read_bytes() == before
    assert not [p for p in bundle.out.parent.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_tampered_export_and_missing_plugin_sources_are_refused(onnx_export, tmp_path):
    copy = tmp_path / "exp"
    shutil.copytree(onnx_export, copy)
    (copy / "report.json").write_text("{}\n")
    with pytest.raises(BadInputError, match=r"report\.json: sha256 differs"):
        make_bundle(copy, tmp_path / "b1")
    shutil.copyfile(onnx_export / "report.json", copy / "report.json")
    man = json.loads((copy / "manifest.json").read_text())
    man["plugins"] = [{"name": "DeployconvSKA", "version": "1", "namespace": "deployconv"}]
    (copy / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(BadInputError, match=r"CMakeLists\.txt") as e:
        make_bundle(copy, tmp_path / "b2", root=tmp_path / "no-checkout")
    assert "checkout" in e.value.fix
    assert not (tmp_path / "b2").exists() and not tarball_for(tmp_path / "b2").exists()


def test_readme_for_an_onnxruntime_target(bundle):
    text = (bundle.out / "README.md").read_text()
    for cmd in ('python3 -m pip install "./deployconv_src[ort]"', "deployconv check .", "deployconv validate .",
                "deployconv bench model.onnx"):
        assert cmd in text
    assert "build-engine" not in text and "trtexec" not in text and "cmake" not in text


def test_readme_for_a_dla_target_with_plugins():
    facts = ReadmeFacts(model="lsnet_t", target="jetson-orin-dla-fp16", description="", runtime="tensorrt",
                        precision="fp16", io="input: float32[1, 3, 224, 224] -> output: float32[1, 1000]",
                        device="jetson-orin, JetPack 6.1/6.2, sm_87, DLA core 0", tensorrt="10.3 or newer",
                        plugins=("DeployconvSKA",), plugin_archs=(87,), has_plugin_sources=True,
                        has_python_sources=True, trtexec="trtexec --onnx=model.onnx --useDLACore=0",
                        trtexec_note="TensorRT 10.3", dla_summary="40 of 52 layers on DLA core 0, 12 on the GPU")
    text = render_readme(facts)
    steps = [line for line in text.splitlines() if line.startswith("## ")]
    assert steps == ["## 1. Install deployconv (no PyTorch needed)", "## 2. Build the plugins for this GPU",
                     "## 3. Check this device against the target", "## 4. Build the engine", "## 5. Validate",
                     "## 6. Benchmark"]
    assert 'cmake -S plugins -B plugins/build -DDEPLOYCONV_CUDA_ARCHS="87" -DTENSORRT_ROOT=/usr' in text
    assert f"deployconv build-engine model.onnx --target jetson-orin-dla-fp16 --plugins {PLUGIN_LIBRARY}" in text
    assert "trtexec --onnx=model.onnx --useDLACore=0" in text and "deployconv bench engine.plan" in text
    assert "the DLA cores and the plugin library" in text and "`dla.json`" in text


def _static_model(with_plugin: bool):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])]
    inits = [numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")]
    opsets = [helper.make_opsetid("", 17)]
    if with_plugin:
        nodes.append(helper.make_node("DeployconvSKA", ["c", "sw"], ["y"], domain="deployconv"))
        inits.append(numpy_helper.from_array(np.ones((1, 4, 9), np.float32), "sw"))
        opsets.append(helper.make_opsetid("deployconv", 1))
    else:
        nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


def test_trtexec_line_comes_from_the_engine_plan():
    line, note = trtexec_line(_static_model(False), get_target("jetson-orin-dla-fp16"))
    assert note == "TensorRT 10.3" and line.startswith("trtexec --onnx=model.onnx --saveEngine=engine.plan")
    assert "--useDLACore=0" in line and "--allowGPUFallback" in line and "--fp16" in line
    line, _ = trtexec_line(_static_model(True), get_target("trt-fp16"))
    assert PLUGIN_LIBRARY in line and "--useDLACore" not in line
    assert trtexec_line(_static_model(False), get_target("onnx")) == (None, "the target runs on ONNX Runtime")
    line, note = trtexec_line(_static_model(False), get_target("jetson-orin-dla-int8"))
    assert line is None and "Q/DQ" in note  # an int8 engine needs the int8 ONNX; said, not faked


def test_bundle_lines_load_the_plugin_library_dynamically_to_build_and_to_run():
    from deployconv.pipeline.bundle import trtexec_lines

    build, run, note = trtexec_lines(_static_model(True), get_target("trt-fp16"))
    assert note == "TensorRT 10.1"
    assert f"--dynamicPlugins={PLUGIN_LIBRARY}" in build and "--staticPlugins" not in build
    assert run == f"trtexec --loadEngine=engine.plan --dynamicPlugins={PLUGIN_LIBRARY}"
    text = render_readme(ReadmeFacts(
        model="m", target="trt-fp16", description="", runtime="tensorrt", precision="fp16", io="", device="",
        tensorrt="10.1 or newer", plugins=("DeployconvSKA",), plugin_archs=(87,), has_plugin_sources=True,
        has_python_sources=True, trtexec=build, trtexec_note=note, dla_summary=None, trtexec_run=run))
    assert build in text and run in text and "getCreators" in text


def _app() -> typer.Typer:
    """The real command line (its group's error handler turns errors into exit codes)."""
    from deployconv.cli.app import app

    return app


def test_bundle_command(tmp_path):
    out = tmp_path / "cli-bundle"
    res = CliRunner().invoke(_app(), ["bundle", "--model", f"{FIXTURE}:build", "--target", "onnx", "--out", str(out),
                                      "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["out"] == str(out) and Path(data["tarball"]) == tarball_for(out)
    assert data["tar_sha256"] == sha256_file(tarball_for(out)) and verify_hashes(out, read_manifest(out)) == []
    assert data["manifest_sha256"] == sha256_file(out / "manifest.json")  # the pin, also next to the archive
    assert Path(data["pin_file"]).read_text().split()[0] == data["manifest_sha256"]
    again = CliRunner().invoke(_app(), ["bundle", "--model", f"{FIXTURE}:build", "--target", "onnx", "--out", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output
    with tarfile.open(fileobj=io.BytesIO(tarball_for(out).read_bytes()), mode="r:gz") as tar:
        assert f"{out.name}/plugins/CMakeLists.txt" in tar.getnames()
