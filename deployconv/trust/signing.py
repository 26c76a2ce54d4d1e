"""Ed25519 signatures over manifest.json (the `cryptography` package). The manifest binds every file; the
signature, in manifest.json.sig next to it, binds the manifest to whoever holds the private key.

Keys are PEM files: the private key PKCS#8 (written 0600, never overwritten), the public key SubjectPublicKeyInfo.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployconv.core.artifacts.names import MANIFEST, SIGNATURE
from deployconv.core.errors import BadInputError, CheckFailedError, MissingEnvironmentError
from deployconv.core.fsio import refuse_overwrite, write_atomic

ALGORITHM = "ed25519"


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as e:
        raise MissingEnvironmentError(f"signatures need the cryptography package ({e})",
                                      fix="pip install cryptography (a dependency of deployconv)") from None
    return serialization, ed25519


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    fingerprint: str


def fingerprint(public_key: Any) -> str:
    """sha256 of the raw 32-byte public key, hex: what a user compares by eye."""
    import hashlib

    serialization, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def keygen(private_path: Path, *, force: bool = False) -> KeyPair:
    """A new Ed25519 key: PRIVATE (0600) and PRIVATE.pub."""
    serialization, ed25519 = _crypto()
    private_path = Path(private_path)
    public_path = private_path.with_name(private_path.name + ".pub")
    refuse_overwrite(private_path, force)
    refuse_overwrite(public_path, force)
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def write_private(tmp: Path) -> None:
        tmp.write_bytes(pem)

    write_atomic(private_path, write_private)
    os.chmod(private_path, 0o600)
    write_atomic(public_path, lambda tmp: tmp.write_bytes(pub))
    return KeyPair(private_path, public_path, fingerprint(key.public_key()))


def _load_pem(path: Path, private: bool) -> Any:
    serialization, ed25519 = _crypto()
    kind = "private" if private else "public"
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise BadInputError(f"cannot read the {kind} key {path} ({e.strerror})",
                            fix="pass the file `deployconv keygen` wrote") from None
    try:
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))
    except (ValueError, TypeError) as e:
        raise BadInputError(f"{path} is not an unencrypted PEM {kind} key ({e})",
                            fix="pass the file `deployconv keygen` wrote (KEY for --sign, KEY.pub for --trust)") \
            from None
    want = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, want):
        raise BadInputError(f"{path} is not an Ed25519 {kind} key", fix="make one with `deployconv keygen`")
    return key


def load_private_key(path: Path) -> Any:
    """The Ed25519 private key in `path` (checked before long work, so a bad --sign fails in a second)."""
    return _load_pem(path, private=True)


def sign_manifest(directory: Path, private_key: Path) -> str:
    """Write DIR/manifest.json.sig; the signer's fingerprint."""
    key = _load_pem(private_key, private=True)
    data = (Path(directory) / MANIFEST).read_bytes()
    fp = fingerprint(key.public_key())
    body = {"algorithm": ALGORITHM, "signed": MANIFEST, "public_key_sha256": fp,
            "signature": base64.b64encode(key.sign(data)).decode()}
    write_atomic(Path(directory) / SIGNATURE, lambda tmp: tmp.write_text(json.dumps(body, indent=2) + "\n"))
    return fp


def verify_signature(directory: Path, public_key: Path) -> str:
    """The signer's fingerprint when DIR/manifest.json.sig is a valid signature of DIR/manifest.json by
    `public_key`; else CheckFailedError (exit 1) saying why."""
    key = _load_pem(public_key, private=False)  # first: says so when cryptography is missing
    from cryptography.exceptions import InvalidSignature

    fp = fingerprint(key)
    sig_path = Path(directory) / SIGNATURE
    fix = "copy the bundle again from the workstation that signed it; a bundle cannot be re-signed on the device"
    if not sig_path.is_file():
        raise CheckFailedError(f"{directory} is not signed (no {SIGNATURE})",
                               why="--trust accepts only bundles signed by that key",
                               fix="sign it on the workstation: `deployconv bundle ... --sign KEY`")
    try:
        body = json.loads(sig_path.read_text())
        signature = base64.b64decode(body["signature"], validate=True)
        ok_shape = body.get("algorithm") == ALGORITHM and body.get("signed") == MANIFEST
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise CheckFailedError(f"{sig_path} is not a deployconv signature file", fix=fix) from None
    if not ok_shape:
        raise CheckFailedError(f"{sig_path} is not an {ALGORITHM} signature of {MANIFEST}", fix=fix)
    try:
        key.verify(signature, (Path(directory) / MANIFEST).read_bytes())
    except InvalidSignature:
        signer = body.get("public_key_sha256")
        raise CheckFailedError(f"{directory}: the signature does not verify with {public_key}",
                               details=[f"trusted key sha256 {fp}", f"signed by  sha256 {signer}"],
                               why="the manifest changed after signing, or another key signed it",
                               fix=fix) from None
    return fp
