"""One trained digits model and its image folders for the whole accuracy test session (~10 s)."""

from __future__ import annotations

import pytest

from tests.accuracy.digits import Digits, make_digits


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Digits:
    pytest.importorskip("sklearn", reason="scikit-learn (the dev extra) ships the digits images")
    return make_digits(tmp_path_factory.mktemp("digits"))
