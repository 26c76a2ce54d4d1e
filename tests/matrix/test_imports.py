"""ray is optional: only deployconv/matrix/ray_executor.py imports it, and nothing imports that module at import
time (run.py loads it when --executor ray is asked for)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "deployconv"


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at top level) for every import in the file."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, id(node) in top))
    return out


def test_only_the_ray_executor_imports_ray():
    importers = sorted(str(p.relative_to(PKG.parent)) for p in PKG.rglob("*.py")
                       if any(m == "ray" or m.startswith("ray.") for m, _ in _imports(p)))
    assert importers == ["deployconv/matrix/ray_executor.py"]


def test_nothing_imports_the_ray_executor_at_module_level():
    for p in PKG.rglob("*.py"):
        for module, top in _imports(p):
            if module == "deployconv.matrix.ray_executor":
                assert not top, f"{p} imports the Ray executor at import time"


def test_matrix_core_is_torch_free_at_import():
    """The pure modules and the device side of the steps import neither torch nor ray at module level."""
    for name in ("spec", "graph", "results", "steps", "scheduler", "transfer", "local", "summary", "page", "live"):
        mods = [m for m, top in _imports(PKG / "matrix" / f"{name}.py") if top]
        assert not any(m.split(".")[0] in ("torch", "ray", "onnx") for m in mods), (name, mods)
