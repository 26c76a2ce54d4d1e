"""Every import in deployconv/, read from the source (no module is run): at the top of a file, inside functions,
and `import_module("deployconv....")` strings. Used by the layering and torch-free tests.

The layer map is stated once, here: `LAYERS`, bottom first. A module may import its own package and any package
on a lower level, nothing on its own level or above. `deployconv/__init__.py` and `__main__.py` are the front
door and sit above everything."""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "deployconv"

# Bottom first. Packages on one level are siblings: they may not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("trust",),
    ("plugins",),
    ("layers",),
    ("ops",),
    ("models",),
    ("reparam",),
    ("runtime",),
    ("validate",),
    ("export", "engine"),
    ("accuracy",),
    ("pipeline", "report"),
    ("matrix",),
    ("cli",),
)
FRONT_DOOR = ("deployconv", "deployconv.__main__")

# Third-party packages that a device may lack (the `export`, `ort`, `trt`, `report`, `ray` extras). Only these may be
# imported inside a function; an own module may be imported lazily only when it is the way to one of them.
HEAVY = frozenset({"torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "onnxsim", "onnxslim", "PIL",
                   "tensorrt", "cuda", "cupy", "matplotlib", "ray", "sklearn", "scipy", "timm", "triton"})


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    lazy: bool  # inside a function (or an import_module string)
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def package_of(mod: str) -> str:
    """deployconv.validate.parity -> validate; the front door -> ''."""
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 and mod not in FRONT_DOOR else ""


def level_of(package: str) -> int:
    if package == "":
        return len(LAYERS)
    for i, names in enumerate(LAYERS):
        if package in names:
            return i
    raise KeyError(f"package {package!r} is not in the layer map (tests/import_graph.py LAYERS)")


def _resolve(target: str, mods: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        cand = ".".join(parts[:i])
        if cand in mods:
            return cand
    return None


class _Walker(ast.NodeVisitor):
    def __init__(self, mod: str, is_pkg: bool, mods: dict[str, Path]):
        self.mod, self.is_pkg, self.mods = mod, is_pkg, mods
        self.depth = 0
        self.edges: list[Edge] = []
        self.third_party: list[tuple[str, bool, int]] = []

    def _fn(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _fn

    def _add(self, target: str, line: int, lazy: bool) -> None:
        if target.split(".")[0] != "deployconv":
            self.third_party.append((target.split(".")[0], lazy, line))
            return
        dst = _resolve(target, self.mods)
        if dst is not None and dst != self.mod:
            self.edges.append(Edge(self.mod, dst, lazy, line))

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self._add(a.name, node.lineno, self.depth > 0)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.mod.split(".")
            if not self.is_pkg:
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        for a in node.names:  # `from pkg import submodule` names the submodule
            full = f"{target}.{a.name}"
            self._add(full if full in self.mods else target, node.lineno, self.depth > 0)

    def visit_Constant(self, node: ast.Constant) -> None:
        v = node.value
        if isinstance(v, str) and v.startswith("deployconv.") and v in self.mods:
            self._add(v, node.lineno, True)


@cache
def _scan() -> tuple[tuple[Edge, ...], dict[str, tuple[tuple[str, bool, int], ...]]]:
    mods = modules()
    edges: list[Edge] = []
    third: dict[str, tuple[tuple[str, bool, int], ...]] = {}
    for mod, path in mods.items():
        w = _Walker(mod, path.name == "__init__.py", mods)
        w.visit(ast.parse(path.read_text(), str(path)))
        edges += w.edges
        third[mod] = tuple(w.third_party)
    return tuple(edges), third


def edges() -> tuple[Edge, ...]:
    return _scan()[0]


def third_party(mod: str) -> tuple[tuple[str, bool, int], ...]:
    return _scan()[1][mod]


@cache
def heavy_modules(packages: frozenset[str] = HEAVY) -> frozenset[str]:
    """Our modules that load one of `packages` when imported (at the top of themselves or of a module they import
    at the top, or in the __init__ of a package they sit in: importing deployconv.reparam.render runs
    deployconv/reparam/__init__.py first)."""
    top = defaultdict(set)
    for e in edges():
        if not e.lazy:
            top[e.src].add(e.dst)
    heavy = {m for m in modules() if any(p in packages and not lazy for p, lazy, _ in third_party(m))}
    changed = True
    while changed:
        changed = False
        for m in modules():
            parents = {".".join(m.split(".")[:i]) for i in range(2, m.count(".") + 1)}
            if m not in heavy and (top[m] | parents) & heavy:
                heavy.add(m)
                changed = True
    return frozenset(heavy)


def module_graph() -> dict[str, set[str]]:
    """Module -> the modules it imports (top of file and in functions)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for e in edges():
        graph[e.src].add(e.dst)
    return graph


def package_graph() -> dict[str, set[str]]:
    """Package -> the other packages its modules import ('' is the front door)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for e in edges():
        a, b = package_of(e.src), package_of(e.dst)
        if a != b:
            graph[a].add(b)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on, stack, out = set(), [], []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
            elif nxt not in index:
                index[nxt] = low[nxt] = counter
                counter += 1
                stack.append(nxt)
                on.add(nxt)
                work.append((nxt, iter(sorted(graph.get(nxt, ())))))
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
    return out
