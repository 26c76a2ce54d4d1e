"""One model per family through the whole export pipeline: parity chain passes on ONNX Runtime and the graph
is clean. (benchmarks/simplifiers.py exports all zoo models; see benchmarks/results/simplifiers_cpu.json.)"""

from __future__ import annotations

import pytest

from deployconv.pipeline.export import ExportOptions, export


@pytest.mark.slow
@pytest.mark.parametrize("name", ["unireplknet_a", "repvgg_a0", "resnet50_dcn", "dcnv4_tiny"])
def test_family_exports_and_passes_parity(name, tmp_path):
    res = export(name, "ort-cpu", tmp_path / name, options=ExportOptions(bench=False, batch=2, parity_batches=1))
    assert res.passed, res.report["parity"]
    g = res.report["graph"]["final"]
    assert g["batchnorm"] == 0 and g["identity"] == 0 and not g["dead"] and not g["duplicates"]
    assert not g["custom_nodes"]  # standard lowering: ONNX-domain ops only
    if name == "resnet50_dcn":
        assert g["op_counts"]["DeformConv"] == 13
