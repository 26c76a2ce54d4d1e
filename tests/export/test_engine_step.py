"""The export's engine step builds in a staging folder and the write step moves its files into OUT, which is
written once: driven by a fake `tensorrt` (tests/fake_tensorrt.py), so this tests our wiring, not TensorRT."""

from __future__ import annotations

import json
from pathlib import Path

from deployconv.core.fsio import sha256_file
from deployconv.pipeline.engine import relocate
from deployconv.pipeline.export import ExportOptions, export
from deployconv.runtime.plugin_loading import forget_loaded
from deployconv.trust.manifest import read_manifest, verify_hashes
from tests.fake_tensorrt import install

FIXTURE = f"{Path(__file__).parents[1] / 'fixtures' / 'tiny_model.py'}:build"


def test_relocate_turns_every_staging_path_into_out():
    staging, out = Path("/tmp/.o.engine-x1"), Path("runs/o")
    entry = {"what": f"cannot read {staging}/model.onnx", "trtexec": [f"trtexec --onnx={staging}/model.onnx"],
             "engine": {"timing_cache": {"path": f"{staging}/cache"}, "bytes": 3, "sm": None}}
    moved = relocate(entry, staging, out)
    assert str(staging) not in json.dumps(moved)
    assert moved["trtexec"] == ["trtexec --onnx=runs/o/model.onnx"] and moved["engine"]["bytes"] == 3
    assert moved["engine"]["timing_cache"]["path"] == "runs/o/cache"


def test_the_engine_is_staged_then_written_with_the_export(tmp_path, monkeypatch):
    fake = install(monkeypatch)
    out = tmp_path / "o"
    seen: list[tuple[str, bool]] = []
    try:
        res = export(FIXTURE, "trt-fp32", out, options=ExportOptions(bench=False),
                     progress=lambda step: seen.append((step, out.exists())))
    finally:
        forget_loaded(fake)
    assert [s for s, _ in seen][-2:] == ["engine", "write"] and not any(there for _, there in seen)  # OUT: last
    man = read_manifest(out)
    assert res.passed and res.report["engine"]["status"] == "built" == man.engine.status
    assert "engine.plan" in man.files and verify_hashes(out, man) == []
    # the engine's record names the model.onnx in OUT: the very file it was built from
    assert man.engine.engine.onnx_sha256 == sha256_file(out / "model.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["o"]  # no staging or temporary folder left beside OUT
    assert ".o.engine-" not in json.dumps(man.engine.to_dict())
    assert list(res.timings)[-2:] == ["engine", "write"]
