"""Payloads between nodes: a round trip keeps every byte; a changed file or manifest is refused on arrival."""

from __future__ import annotations

import io
import json
import shutil
import tarfile

import pytest

from deployconv.core.errors import CheckFailedError
from deployconv.matrix.transfer import pack, unpack


@pytest.fixture
def export_dir(trust_fixture, tmp_path):
    """A real export folder (strict manifest, sub-folders), copied so each test may change it."""
    return shutil.copytree(trust_fixture.bundle, tmp_path / "src")


def test_round_trip(export_dir, tmp_path):
    src = export_dir
    dst = unpack(pack(src), tmp_path / "dst")
    files = [p.relative_to(src) for p in src.rglob("*") if p.is_file()]
    assert any(len(f.parts) > 1 for f in files)  # sub-folders travel too
    for f in files:
        assert (dst / f).read_bytes() == (src / f).read_bytes()


def test_a_changed_file_or_manifest_is_refused(export_dir, tmp_path):
    src = export_dir
    digest, _ = pack(src)
    (src / "model.onnx").write_bytes(b"tampered")
    _, tampered = pack(src)
    with pytest.raises(CheckFailedError, match="do not match its manifest"):
        unpack((digest, tampered), tmp_path / "a")
    m = json.loads((src / "manifest.json").read_text())
    m["precision"] = "other"
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
