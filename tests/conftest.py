"""Test-session settings.

One torch thread per test process: the tests use small tensors, where OpenMP threads only add
synchronisation, and on a loaded 2-core runner a descheduled thread makes tiny ops 10-30x slower.
"""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def trust_fixture(tmp_path_factory):
    """One export + bundle of the tiny model per session (tests/trust/fixture.py), shared by the trust suite and
    by anything that needs a real, schema-valid export folder; copy it before changing it."""
    from tests.trust.fixture import build_fixture

    return build_fixture(tmp_path_factory.mktemp("trust"))
