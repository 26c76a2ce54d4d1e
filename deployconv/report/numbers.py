"""How numbers are written on the page. Pure; every formatter accepts NaN and infinities (a broken stage
reports them) and keeps enough digits that the text matches the stored value to its last shown digit."""

from __future__ import annotations

import math


def _special(x: float) -> str | None:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return None


def sci(x: float, digits: int = 2) -> str:
    """Scientific notation, `digits` after the point: errors span many decades."""
    return _special(x) or f"{x:.{digits}e}"


def fixed(decimals: int):
    """A formatter with a fixed number of decimals (cosines, agreements, CV)."""

    def fmt(x: float) -> str:
        return _special(x) or f"{x:.{decimals}f}"

    return fmt


def ms(x: float) -> str:
    """Milliseconds with about four significant digits; sub-millisecond GPU runs keep their microseconds."""
    special = _special(x)
    if special:
        return special
    a = abs(x)
    decimals = 4 if a < 1 else 3 if a < 10 else 2 if a < 1000 else 1
    return f"{x:.{decimals}f}"


def rate(x: float) -> str:
    """Throughput (items/s): one decimal below 1000, whole numbers above."""
    return _special(x) or (f"{x:.1f}" if abs(x) < 1000 else f"{x:.0f}")


def integer(x: float) -> str:
    return _special(float(x)) or f"{int(x)}"


def general(x: float) -> str:
    """Six significant digits, no trailing zeros: limits people wrote by hand (0.99999, 0.02)."""
    return _special(x) or f"{x:g}"
