"""manifest.json: what was exported, how, with which tools, and the sha256 of every file. Torch-free."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from deployconv import __version__
from deployconv.atomic import write_text_atomic

MANIFEST = "manifest.json"
_TOOLS = ("torch", "onnx", "onnxruntime", "onnxscript", "onnxsim", "onnxslim", "numpy", "tensorrt")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def file_hashes(out_dir: Path, exclude: tuple[str, ...] = (MANIFEST,)) -> dict[str, str]:
    return {p.relative_to(out_dir).as_posix(): sha256_file(p)
            for p in sorted(out_dir.rglob("*")) if p.is_file() and p.name not in exclude and not p.name.startswith(".")}


def write_manifest(out_dir: Path, body: dict[str, Any]) -> Path:
    """Write manifest.json with the hashes of every other file in out_dir (computed now)."""
    data = dict(body)
    data["files"] = file_hashes(out_dir)
    data.setdefault("tools", tool_versions())
    path = out_dir / MANIFEST
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def read_manifest(out_dir: Path) -> dict[str, Any]:
    from deployconv.errors import BadInputError

    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise BadInputError(f"{out_dir} has no {MANIFEST}", fix="pass a directory written by `deployconv export`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BadInputError(f"{path} is not valid JSON: {e}") from None


def verify_hashes(out_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """Files whose sha256 differs from the manifest's (or that are missing)."""
    bad = []
    for rel, digest in manifest.get("files", {}).items():
        p = Path(out_dir) / rel
        if not p.is_file():
            bad.append(f"{rel}: missing")
        elif sha256_file(p) != digest:
            bad.append(f"{rel}: sha256 differs")
    return bad
