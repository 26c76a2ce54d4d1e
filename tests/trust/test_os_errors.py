"""Every OSError kind is a what/why/fix message with exit 2 (the path) or 3 (the machine), never a traceback, and
nothing half-written is left, Ctrl-C included. The failures are injected where the bytes are written."""

from __future__ import annotations

import errno
import os

import pytest
from typer.testing import CliRunner

import deployconv.trust.signing as signing
from deployconv.cli.app import EXIT_INTERRUPTED, app
from deployconv.core.errors import EXIT_BAD_INPUT, EXIT_MISSING_ENV
from deployconv.core.os_errors import from_oserror


def run(*args: str):
    res = CliRunner().invoke(app, list(args))
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res


@pytest.mark.parametrize("code, exit_code, words", [
    (errno.ENOSPC, EXIT_MISSING_ENV, "no space left on the device"),
    (errno.EACCES, EXIT_MISSING_ENV, "permission denied"),
    (errno.EROFS, EXIT_MISSING_ENV, "the file system is read-only"),
    (errno.ENOENT, EXIT_BAD_INPUT, "no such file or directory"),
    (errno.EISDIR, EXIT_BAD_INPUT, "is a directory"),
])
def test_each_oserror_kind_is_a_message(tmp_path, monkeypatch, code, exit_code, words):
    """keygen writes through deployconv.core.fsio; the write fails with `code` half-way."""
    real = signing.write_atomic

    def failing(path, writer):
        def half(tmp):
            tmp.write_bytes(b"half")
            raise OSError(code, os.strerror(code), str(path))
        real(path, half)

    monkeypatch.setattr(signing, "write_atomic", failing)
    res = run("keygen", str(tmp_path / "key"))
    assert res.exit_code == exit_code and words in res.output and "fix:" in res.output, res.output
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too


def test_real_paths_that_are_wrong(tmp_path):
    (tmp_path / "adir.tar.gz").mkdir()
    res = run("unpack", str(tmp_path / "adir.tar.gz"))
    assert res.exit_code == EXIT_BAD_INPUT and "is a directory" in res.output
    res = run("unpack", str(tmp_path / "missing.tar.gz"))
    assert res.exit_code == EXIT_BAD_INPUT and "no such file" in res.output
    res = run("check", str(tmp_path / "missing"))
    assert res.exit_code == EXIT_BAD_INPUT
    (tmp_path / "pub").mkdir()
    assert run("check", str(tmp_path), "--trust", str(tmp_path / "pub")).exit_code == EXIT_BAD_INPUT


def test_mapping_is_pure_and_complete():
    assert from_oserror(OSError(errno.EDQUOT, "quota", "f")).exit_code == EXIT_MISSING_ENV
    assert from_oserror(OSError(errno.ENOTDIR, "not a dir", "f")).exit_code == EXIT_BAD_INPUT
    assert from_oserror(OSError(errno.EIO, "I/O error")).exit_code == EXIT_MISSING_ENV


def test_ctrl_c_leaves_nothing_half_written(tmp_path, monkeypatch):
    real = signing.write_atomic

    def interrupted(path, writer):
        def half(tmp):
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
        real(path, half)

    monkeypatch.setattr(signing, "write_atomic", interrupted)
    res = run("keygen", str(tmp_path / "key"))
    assert res.exit_code == EXIT_INTERRUPTED and "interrupted" in res.output
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_during_export_leaves_no_output(tmp_path, monkeypatch):
    """ENOSPC while the export writes reference.npz: exit 3, and neither OUT nor its temporary folder remains."""
    import numpy as np

    from tests.trust.fixture import MODEL_SOURCE

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(a[0]))

    monkeypatch.setattr(np, "savez_compressed", full)
    res = run("export", "--model", MODEL_SOURCE, "--out", str(tmp_path / "out"), "--no-bench")
    assert res.exit_code == EXIT_MISSING_ENV and "no space left" in res.output, res.output
    assert list(tmp_path.iterdir()) == []
