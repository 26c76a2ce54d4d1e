"""Payloads between nodes: a round trip keeps every byte; a changed file or manifest is refused on arrival."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from deployconv.errors import CheckFailedError
from deployconv.export.manifest import write_manifest
from deployconv.matrix.transfer import pack, unpack


def _export_like(d):
    d.mkdir()
    (d / "model.onnx").write_bytes(b"\x08\x07onnx" * 100)
    (d / "sub").mkdir()
    (d / "sub" / "a.txt").write_text("hello")
    write_manifest(d, {"format": "test"})
    return d


def test_round_trip(tmp_path):
    src = _export_like(tmp_path / "src")
    dst = unpack(pack(src), tmp_path / "dst")
    for f in ("model.onnx", "sub/a.txt", "manifest.json"):
        assert (dst / f).read_bytes() == (src / f).read_bytes()


def test_a_changed_file_or_manifest_is_refused(tmp_path):
    src = _export_like(tmp_path / "src")
    digest, _ = pack(src)
    (src / "model.onnx").write_bytes(b"tampered")
    _, tampered = pack(src)
    with pytest.raises(CheckFailedError, match="do not match its manifest"):
        unpack((digest, tampered), tmp_path / "a")
    m = json.loads((src / "manifest.json").read_text())
    m["format"] = "other"
    (src / "manifest.json").write_text(json.dumps(m))
    _, tampered = pack(src)
    with pytest.raises(CheckFailedError, match="different manifest"):
        unpack((digest, tampered), tmp_path / "b")


def test_paths_out_of_the_destination_are_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises((CheckFailedError, tarfile.TarError)):
        unpack((None, buf.getvalue()), tmp_path / "d")
    assert not (tmp_path / "escape.txt").exists()
