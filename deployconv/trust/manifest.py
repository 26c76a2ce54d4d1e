"""manifest.json: what was exported, how, with which tools, and the sha256 of every file. Torch-free."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from deployconv.core.artifacts.manifest import Manifest
from deployconv.core.artifacts.names import MANIFEST, SIGNATURE
from deployconv.core.artifacts.paths import path_problem
from deployconv.core.errors import BadInputError
from deployconv.core.fsio import sha256_file, write_text_atomic
from deployconv.core.version import __version__
from deployconv.trust.closed import _walk
from deployconv.trust.schema import validate_manifest

_TOOLS = ("torch", "onnx", "onnxruntime", "onnxscript", "onnxsim", "onnxslim", "numpy", "tensorrt")


def tool_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"deployconv": __version__, "python": platform.python_version()}
    for t in _TOOLS:
        try:
            out[t] = metadata.version(t)
        except metadata.PackageNotFoundError:
            out[t] = None
    return out


def io_signature(model_proto: Any) -> dict[str, list[dict]]:
    """Inputs/outputs of an ONNX graph: name, element type, shape (str for symbolic dims)."""
    import onnx

    def sig(values):
        rows = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else None)
                    for d in t.shape.dim]
            rows.append({"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                         "shape": dims})
        return rows

    return {"inputs": sig(model_proto.graph.input), "outputs": sig(model_proto.graph.output)}


def file_hashes(out_dir: Path, exclude: tuple[str, ...] = (MANIFEST, SIGNATURE)) -> dict[str, str]:
    """sha256 of every regular file under out_dir (dot files included: the manifest is closed), except the
    manifest and its signature at the top. A link is refused: a manifest never lists what a link points at."""
    files, problems = _walk(Path(out_dir))
    if problems:
        raise BadInputError(f"{out_dir} holds what a manifest cannot list", details=problems[:10],
                            fix="remove the links and special files, then write it again")
    return {rel: sha256_file(Path(out_dir) / rel) for rel in files if rel not in exclude}


def write_manifest(out_dir: Path, body: Manifest | dict[str, Any]) -> Path:
    """Write manifest.json with the hashes of every other file in out_dir (computed now). A Manifest is written
    through its to_dict(); either form is checked against the schema first (a writer never writes what a reader
    would refuse)."""
    data = body.body() if isinstance(body, Manifest) else dict(body)
    data["files"] = file_hashes(out_dir)
    if not data.get("tools"):
        data["tools"] = tool_versions()
    data = Manifest.from_dict(data, str(out_dir / MANIFEST)).to_dict()
    path = out_dir / MANIFEST
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def read_manifest(out_dir: Path) -> Manifest:
    """manifest.json parsed and checked against the schema (deployconv.core.artifacts.Manifest): BadInputError
    (exit 2) on anything that is not a complete, well-typed manifest of this version, or of a newer one."""
    path = Path(out_dir) / MANIFEST
    if path.is_symlink() or not path.is_file():
        raise BadInputError(f"{out_dir} has no {MANIFEST}" + (" (it is a link)" if path.is_symlink() else ""),
                            fix="pass a directory written by `deployconv export` or `deployconv bundle`")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BadInputError(f"{path} is not valid JSON: {str(e)[:200]}",
                            fix="re-export, or copy the bundle again; never edit manifest.json") from None
    return validate_manifest(data, str(path))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def verify_hashes(out_dir: Path, manifest: Manifest | dict[str, Any]) -> list[str]:
    """Listed files whose sha256 differs from the manifest's, that are missing, or whose path is unsafe (absolute,
    `..`: never read). The closed check (deployconv.trust.closed.verify_closed) also finds unlisted files."""
    bad = []
    listed = manifest.files if isinstance(manifest, Manifest) else manifest.get("files", {})
    for rel, digest in listed.items():
        why = path_problem(rel)
        if why is not None:
            bad.append(f"{rel!r}: unsafe path ({why}); not read")
            continue
        p = Path(out_dir) / rel
        if p.is_symlink() or not p.is_file():
            bad.append(f"{rel}: missing" if not p.is_symlink() else f"{rel}: is a symbolic link")
        elif sha256_file(p) != digest:
            bad.append(f"{rel}: sha256 differs")
    return bad
