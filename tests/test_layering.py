"""The one-way house: every import in deployconv/ (top of file, inside functions, import_module strings) goes down
the layer map in tests/import_graph.py, never up or sideways; no module or package cycles; an own module is
imported inside a function only when it is the way to a heavy optional dependency (torch, onnxruntime, ...)."""

from __future__ import annotations

import pytest

from tests import import_graph as g


def _fmt(e: g.Edge) -> str:
    return f"{g.modules()[e.src].relative_to(g.REPO)}:{e.line} imports {e.dst}" + (" (in a function)" if e.lazy else "")


def test_every_package_is_on_the_map():
    pkgs = {g.package_of(m) for m in g.modules()}
    for p in sorted(pkgs):
        g.level_of(p)  # raises, naming the package


def test_imports_go_only_downward():
    bad = []
    for e in g.edges():
        a, b = g.package_of(e.src), g.package_of(e.dst)
        if a != b and g.level_of(b) >= g.level_of(a):
            bad.append(_fmt(e) + f"  [{a or 'front door'} -> {b or 'front door'}]")
    assert not bad, "imports against the layer map:\n" + "\n".join(bad)


def test_no_module_cycles_counting_imports_in_functions():
    assert g.cycles(g.module_graph()) == []


def test_no_package_cycles():
    assert g.cycles(g.package_graph()) == []


def test_own_modules_are_imported_lazily_only_to_defer_a_heavy_dependency():
    heavy = g.heavy_modules()
    bad = [_fmt(e) for e in g.edges() if e.lazy and not (e.dst in heavy and e.src not in heavy)]
    assert not bad, ("move these imports to the top of the file (only a module that loads torch, onnxruntime, "
                     "tensorrt, ... may be imported inside a function, by a module that does not):\n" + "\n".join(bad))


def test_the_checker_sees_what_it_must(tmp_path):
    """The rules catch what they claim to: an upward, a lazy and a cyclic import, in a synthetic graph."""
    assert g.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert g.cycles({"a": {"b"}, "b": set()}) == []
    assert g.level_of("core") < g.level_of("export") < g.level_of("pipeline") < g.level_of("cli")
    assert g.level_of("export") == g.level_of("engine")  # siblings: neither may import the other
    with pytest.raises(KeyError):
        g.level_of("nowhere")
    # the scanner reads imports inside functions and import_module strings
    lazy = [e for e in g.edges() if e.lazy]
    assert lazy, "no in-function import found at all: the scanner is blind"
