"""The shape of the house, for reviews: packages, the largest modules, module and package cycles (counting imports
inside functions), in-function imports of our own modules, and the longest functions.

    PYTHONPATH=. python tools/house.py [--root CHECKOUT]   (another checkout, e.g. an older commit's `git worktree`)
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import import_graph as g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=g.REPO, help="the checkout to measure (default: this one)")
    root = ap.parse_args().root.resolve()
    g.REPO, g.PKG = root, root / "deployconv"
    mods = g.modules()
    sizes = sorted(((len(p.read_text().splitlines()), str(p.relative_to(root))) for p in mods.values()), reverse=True)
    packages = sorted({m.split(".")[1] for m, p in mods.items() if p.name == "__init__.py" and m.count(".") == 1})
    print(f"packages ({len(packages)}): {', '.join(packages)}")
    print(f"modules: {len(mods)}; over 400 lines: {sum(n > 400 for n, _ in sizes)}")
    for n, name in sizes[:5]:
        print(f"  {n:5d}  {name}")
    mc, pc = g.cycles(g.module_graph()), g.cycles(g.package_graph())
    print(f"module cycles: {len(mc)} ({sum(map(len, mc))} modules)" + "".join(f"\n  {' '.join(c)}" for c in mc))
    print(f"package cycles: {len(pc)}" + "".join(f"\n  {' '.join(p or '(front door)' for p in c)}" for c in pc))
    print(f"imports of our own modules: {len(g.edges())}, inside functions: {sum(e.lazy for e in g.edges())}")
    fns = []
    for p in mods.values():
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                fns.append((n.end_lineno - n.lineno + 1, f"{p.relative_to(root)}:{n.name}"))
    print("longest functions:")
    for n, name in sorted(fns, reverse=True)[:3]:
        print(f"  {n:5d}  {name}")


if __name__ == "__main__":
    main()
