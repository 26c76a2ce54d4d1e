"""The engine entry drift (issue #11): one EngineEntry, written the same by `export` and `build-engine`, its
temporary paths rewritten to the final folder, and the CLI naming the file that was written."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from deployconv.core.target import get_target

V1 = Path(__file__).parents[1] / "fixtures" / "artifacts_v1"
SHA = "cd" * 32


def _built(tmp: Path) -> dict:
    """What build_engine returns, with the temporary folder in its nested strings (a TensorRT warning naming the
    ONNX, a timing cache kept beside it)."""
    return {"engine": {"file": "engine.plan", "sha256": SHA, "bytes": 4, "onnx": "model.onnx", "tensorrt": "10.3",
                       "messages": [f"WARNING: {tmp}/model.onnx: weights of node Conv_0 are subnormal"],
                       "messages_total": 1, "timing_cache": {"path": str(tmp / "timing.cache"), "sha256": SHA},
                       "plan": {"device": "gpu"}, "trtexec": "trtexec --onnx=model.onnx", "layers": None}}


def _tiny_onnx():
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


@pytest.fixture
def exported_entry(tmp_path, monkeypatch):
    import deployconv.pipeline.engine as engine_step_module
    from deployconv.pipeline.engine import engine_step
    from deployconv.pipeline.options import ExportOptions

    tmp, out = tmp_path / "tmp-export", tmp_path / "out"
    tmp.mkdir()
    monkeypatch.setattr(engine_step_module, "build_engine", lambda *a, **k: copy.deepcopy(_built(tmp)))
    outcome = engine_step(_tiny_onnx(), get_target("trt-fp32"), ExportOptions(), None, {}, tmp, out)
    return tmp, out, json.loads(json.dumps(outcome.entry.to_dict()))


def test_export_and_build_engine_write_the_same_entry(exported_entry, tmp_path):
    from deployconv.trust.engine_record import record_engine

    tmp, _, exported = exported_entry
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copyfile(V1 / "onnx" / "manifest.json", folder / "manifest.json")
    (folder / "engine.plan").write_bytes(b"plan")
    record_engine(folder, folder, _built(tmp))
    recorded = json.loads((folder / "manifest.json").read_text())["engine"]
    assert set(recorded) == set(exported)  # the old build-engine entry had no status, export's did
    assert recorded["status"] == exported["status"] == "built"
    assert set(recorded["engine"]) == set(exported["engine"])


def test_the_export_entry_names_no_temporary_path(exported_entry):
    tmp, out, exported = exported_entry
    text = json.dumps(exported)
    assert str(tmp) not in text  # the old `here_str` rewrote nothing nested
    assert exported["engine"]["messages"] == [f"WARNING: {out}/model.onnx: weights of node Conv_0 are subnormal"]
    assert exported["engine"]["timing_cache"]["path"] == str(out / "timing.cache")


def test_relocate_rewrites_every_nested_string(tmp_path):
    """The old `here_str` rewrote top-level strings only; the engine entry is nested."""
    from deployconv.pipeline.engine import relocate

    tmp, out = tmp_path / "t", tmp_path / "o"
    value = {"a": [f"{tmp}/x", ("y", f"at {tmp}")], "b": {"c": str(tmp)}, "n": 3}
    assert relocate(value, tmp, out) == {"a": [f"{out}/x", ("y", f"at {out}")], "b": {"c": str(out)}, "n": 3}


def test_render_names_the_engine_file_export_wrote(tmp_path):
    """cli/render read an `engine_path` key nothing writes, so it always printed the bare default."""
    from deployconv.cli.render import render_export
    from deployconv.core.console import out

    report = json.loads((V1 / "trt-fp32" / "report.json").read_text())
    report["engine"] = {"status": "built", "engine": {"file": "engine.plan", "sha256": SHA}}
    with out.capture() as cap:
        render_export(report, tmp_path)
    assert f"engine built: {tmp_path / 'engine.plan'}" in cap.get()
