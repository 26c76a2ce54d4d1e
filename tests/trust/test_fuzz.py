"""The trust fuzz suite, short run (CI): mutated manifests, bundles, archives, ONNX files, reference.npz,
checkpoints and target TOMLs never crash deployconv (see tests/trust/fuzzlib.py for what each case asserts).
The long run (10,000+ cases) is tools/fuzz_trust.py; its result is in benchmarks/results/fuzz_trust.json."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings

from tests.trust.fuzzlib import cases, run_case

_counter = itertools.count()


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_no_mutation_crashes_or_escapes(trust_fixture, tmp_path_factory, case):
    work = tmp_path_factory.getbasetemp() / "fuzz" / f"case{next(_counter)}"
    failure = run_case(trust_fixture, case, work)
    assert failure is None, failure
