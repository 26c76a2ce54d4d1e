"""Tests of the engine planner and builder; shared helper below, tiny graphs in graphs.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def error_of(exc_type: type[BaseException], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The exception `fn(*args, **kwargs)` raises (it must raise `exc_type`), for asserting on its parts."""
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    return info.value
