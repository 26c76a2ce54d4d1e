"""The page in a real headless browser (Debian's chromium): it loads, its DOM holds the same numbers as
report.json, and the embedded figures are drawn (their colours are on the screenshot)."""

from __future__ import annotations

import numpy as np
import pytest

from deployconv.report import write_report
from deployconv.report.plots import BAR, P50
from tests.report.chromium import dump_dom, find_chromium, screenshot
from tests.report.conftest import RECORDED
from tests.report.dom import load_files, parse
from tests.report.test_page import check_numbers

BROWSER = find_chromium()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no chromium on PATH (Debian: apt-get install chromium); the browser check needs a "
                            "real headless browser, the stdlib HTML checks in test_page.py run without one")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    pytest.importorskip("matplotlib", reason="matplotlib (the `report` extra) draws the figures checked here")
    out = tmp_path_factory.mktemp("browser") / "report.html"
    write_report(RECORDED, out)
    return out


def test_dom_after_rendering_holds_the_report_numbers(page):
    source, rendered = parse(page.read_text()), parse(dump_dom(BROWSER, page))
    check_numbers(rendered, load_files(RECORDED))
    assert [c.src for c in rendered.numbers] == [c.src for c in source.numbers]
    assert [c.text for c in rendered.numbers] == [c.text for c in source.numbers]
    assert len(rendered.images) == len(source.images) == 5
    for heading in ("Parity chain", "Latency", "Latency gate", "DLA / GPU layer placement"):
        assert heading in rendered.text


def _near(pixels: np.ndarray, hex_colour: str, alpha: float = 1.0, tol: int = 8) -> int:
    """Pixels within `tol` of the colour drawn at `alpha` over white."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)
    want = alpha * rgb + (1 - alpha) * 255
    return int((np.abs(pixels[..., :3].astype(np.float64) - want).max(axis=-1) <= tol).sum())


def test_figures_are_drawn(page, tmp_path):
    pil = pytest.importorskip("PIL.Image", reason="Pillow reads the screenshot")
    png = screenshot(BROWSER, page, tmp_path / "shot.png")
    pixels = np.asarray(pil.open(png).convert("RGB"))
    assert pixels.shape[1] == 1400
    # no CSS on the page uses these colours: only the embedded SVG figures can put them on screen
    assert _near(pixels, BAR) > 2000, "parity bars (solid) not drawn"
    assert _near(pixels, BAR, alpha=0.85) > 2000, "latency histogram bars not drawn"
    assert _near(pixels, P50) > 200, "p50 markers not drawn"
