"""The manifest bound by a pin (its sha256, `check --expect`) or an Ed25519 signature (`keygen`, `bundle --sign`,
`check --trust`), and the safe `unpack` of a bundle archive."""

from __future__ import annotations

import json
import shutil
import stat

from typer.testing import CliRunner

from deployconv.cli.app import app
from deployconv.core.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED
from deployconv.pipeline.bundle import make_bundle
from deployconv.trust.pin import manifest_sha256, pin_path
from tests.trust.fixture import minimal_checkout


def cli(*args: str):
    res = CliRunner().invoke(app, list(args))
    assert "Traceback" not in res.output, res.output
    return res


def test_a_bundle_prints_and_writes_its_pin(trust_fixture):
    digest = manifest_sha256(trust_fixture.bundle)
    assert pin_path(trust_fixture.bundle).read_text() == f"{digest}  tiny/manifest.json\n"
    assert cli("check", str(trust_fixture.bundle), "--expect", digest).exit_code == 0
    assert cli("check", str(trust_fixture.bundle), "--expect", str(pin_path(trust_fixture.bundle))).exit_code == 0
    assert cli("validate", str(trust_fixture.bundle), "--torch-free", "--expect", digest).exit_code == 0
    assert pin_path(trust_fixture.export).is_file() is False  # export() writes no pin; the export command does


def test_any_other_manifest_fails_the_pin(trust_fixture, tmp_path):
    digest = manifest_sha256(trust_fixture.bundle)
    b = tmp_path / "b"
    shutil.copytree(trust_fixture.bundle, b)
    man = json.loads((b / "manifest.json").read_text())
    man["parity_passed"] = True  # a consistent manifest, one harmless-looking edit
    (b / "manifest.json").write_text(json.dumps(man, indent=1))
    res = cli("check", str(b), "--expect", digest)
    assert res.exit_code == EXIT_CHECK_FAILED and "is not the pinned manifest" in res.output
    assert cli("check", str(b), "--expect", "abc").exit_code == EXIT_BAD_INPUT


def test_sign_and_trust(trust_fixture, tmp_path):
    res = cli("keygen", str(tmp_path / "key"))
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE((tmp_path / "key").stat().st_mode) == 0o600
    assert cli("keygen", str(tmp_path / "key")).exit_code == EXIT_BAD_INPUT  # never overwritten without --force
    cli("keygen", str(tmp_path / "other"))
    out = tmp_path / "signed" / "tiny"
    result = make_bundle(trust_fixture.export, out, root=minimal_checkout(tmp_path / "src"),
                         sign_key=tmp_path / "key")
    assert result.signer and (out / "manifest.json.sig").is_file()
    res = cli("check", str(out), "--trust", str(tmp_path / "key.pub"), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["checks"][0]["name"] == "manifest"
    assert cli("validate", str(out), "--torch-free", "--trust", str(tmp_path / "key.pub")).exit_code == 0

    res = cli("check", str(out), "--trust", str(tmp_path / "other.pub"))
    assert res.exit_code == EXIT_CHECK_FAILED and "does not verify" in res.output
    assert cli("check", str(trust_fixture.bundle), "--trust", str(tmp_path / "key.pub")).exit_code == \
        EXIT_CHECK_FAILED  # unsigned
    tampered = tmp_path / "t"
    shutil.copytree(out, tampered)
    man = json.loads((tampered / "manifest.json").read_text())
    man["parity_passed"] = True
    (tampered / "manifest.json").write_text(json.dumps(man))
    res = cli("check", str(tampered), "--trust", str(tmp_path / "key.pub"))
    assert res.exit_code == EXIT_CHECK_FAILED and "the manifest changed after signing" in res.output
    res = cli("check", str(out), "--trust", str(tmp_path / "key"))  # the private key is not a public key
    assert res.exit_code == EXIT_BAD_INPUT


def test_unpack_then_check_fresh(trust_fixture, tmp_path):
    res = cli("unpack", str(trust_fixture.tarball), "--into", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert cli("check", str(tmp_path / "tiny"), "--fresh", "--expect",
               manifest_sha256(trust_fixture.bundle)).exit_code == 0


def test_unpack_refuses_escaping_members(trust_fixture, tmp_path):
    from tests.trust.fuzzlib import _make_tar

    for op in ("dotdot", "absolute", "symlink", "hardlink", "outside", "dup"):
        archive = _make_tar(trust_fixture, tmp_path / f"{op}.tar.gz", {"op": op, "seed": 0})
        res = cli("unpack", str(archive), "--into", str(tmp_path / op))
        assert res.exit_code == EXIT_BAD_INPUT, (op, res.output)
        assert not (tmp_path / op).exists() and not (tmp_path / "escape.txt").exists()
