"""`deployconv keygen` and `deployconv unpack`: the signing key for bundles, and a safe way to unpack one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deployconv.cli.options import ForceOpt, JsonOpt
from deployconv.core.console import out, print_json
from deployconv.trust.signing import keygen
from deployconv.trust.unpack import unpack_bundle


def keygen_cmd(
    key: Annotated[Path, typer.Argument(help="Private key file to write (KEY); the public key goes to KEY.pub.",
                                        show_default=False)],
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Make an Ed25519 key pair for `bundle --sign KEY` (workstation) and `check --trust KEY.pub` (device)."""
    pair = keygen(key, force=force)
    if json_out:
        print_json({"private": str(pair.private), "public": str(pair.public), "public_key_sha256": pair.fingerprint})
        return
    out.print(f"private key: {pair.private} (mode 0600: keep it on the workstation)", highlight=False)
    out.print(f"public key:  {pair.public} (copy it to the device; sha256 {pair.fingerprint})", highlight=False)


def unpack_cmd(
    archive: Annotated[Path, typer.Argument(help="OUT.tar.gz made by `deployconv bundle`.", show_default=False)],
    dest: Annotated[Path, typer.Option("--into", "-C", help="Folder to unpack into.")] = Path("."),
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Unpack a bundle archive, refusing links, `..`, absolute names and anything outside its one folder."""
    folder = unpack_bundle(archive, dest, force=force)
    if json_out:
        print_json({"out": str(folder)})
    else:
        out.print(f"unpacked: {folder}; next: deployconv check {folder} --fresh --expect SHA256", highlight=False)

