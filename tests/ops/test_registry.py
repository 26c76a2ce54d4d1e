"""The op registry: every op file's ENTRY agrees with the plugin table, and `translation_table` refuses what
cannot be exported (unknown lowering, opset below an op's minimum) with an error naming the fix."""

from __future__ import annotations

import pytest

from deployconv.core.errors import BadInputError
from deployconv.ops.lowering_table import ENTRIES, entries, translation_table
from deployconv.ops.registry import LOWERINGS, plugin_node
from deployconv.plugins.table import plugin_for_op


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_every_op_file_defines_a_complete_entry(entry):
    assert entry.qualname.startswith("deployconv::")
    assert set(entry.lowerings) == set(LOWERINGS) == set(entry.min_opset)
    assert all(callable(f) for f in entry.lowerings.values())
    assert plugin_for_op(entry.qualname).op == entry.qualname  # the plugin lowering has a table row
    assert str(entry.torch_op) == entry.qualname.replace("::", ".") + ".default"


def test_translation_table_maps_each_op_to_the_chosen_lowering():
    ops = entries()
    assert {"ska", "deform_conv2d"} <= set(ops)
    table = translation_table({"ska": "plugin"}, 19)  # the others default to standard
    assert table[ops["ska"].torch_op] is ops["ska"].lowerings["plugin"]
    assert table[ops["deform_conv2d"].torch_op] is ops["deform_conv2d"].lowerings["standard"]
    assert len(table) == len(ops)


@pytest.mark.parametrize("op,lowering,minimum", [("deform_conv2d", "standard", 19), ("ska", "standard", 18)])
def test_opset_below_the_minimum_names_it(op, lowering, minimum):
    choice = dict.fromkeys(entries(), "plugin") | {op: lowering}
    assert entries()[op].min_opset[lowering] == minimum
    with pytest.raises(BadInputError, match=f"(?s){op}.*opset >= {minimum}.*--opset {minimum}"):
        translation_table(choice, minimum - 1)
    translation_table(choice, minimum)


def test_unknown_lowering_names_the_choices():
    with pytest.raises(BadInputError, match=r"(?s)ska has no 'fast'.*standard, plugin"):
        translation_table({"ska": "fast"}, 19)


def test_plugin_node_refuses_attributes_that_drift_from_the_table():
    with pytest.raises(RuntimeError, match="plugin table"):
        plugin_node("deployconv::deform_conv2d", (None,) * 5, {"strides": [1, 1]})
    ok = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "group": 1, "offset_group": 1}
    with pytest.raises(RuntimeError, match="kind int"):
        plugin_node("deployconv::deform_conv2d", (None,) * 5, ok | {"group": 1.0})
    with pytest.raises(RuntimeError, match="inputs"):
        plugin_node("deployconv::ska", (None,), {})
