"""One trust fixture (export + bundle of the tiny model) per test session, copied by each test that changes it."""

from __future__ import annotations

import pytest

from tests.trust.fixture import build_fixture


@pytest.fixture(scope="session")
def trust_fixture(tmp_path_factory):
    return build_fixture(tmp_path_factory.mktemp("trust"))
