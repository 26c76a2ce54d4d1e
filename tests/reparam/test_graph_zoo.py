"""Zoo models keep their deploy forms: their own methods run first and win, and the graph pass finds nothing
left to fuse in what they return (issue #15)."""

from __future__ import annotations

import pytest
import torch

from deployconv.models import create_model
from deployconv.reparam import reparameterize


@pytest.mark.parametrize("name", ["repvgg_a0", "lsnet_t", "unireplknet_a"])
def test_zoo_deploy_forms_unchanged_by_the_graph_pass(name):
    torch.manual_seed(0)
    train = create_model(name)
    without = reparameterize(train, verify=False, graph=False)
    with_graph = reparameterize(train, verify=False)
    assert type(with_graph) is type(without)
    assert [r for r in with_graph.reparam_report.rewrites if r.rewrite.startswith("graph:")] == []
    assert [(n, type(m).__name__) for n, m in with_graph.named_modules()] == \
        [(n, type(m).__name__) for n, m in without.named_modules()]
    a, b = without.state_dict(), with_graph.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
