"""An export directory to render: report.json and manifest.json recorded from a real
`deployconv export tests/fixtures/tiny_model.py:build --target onnx` (with its short benchmark: 11 and 64
PyTorch samples, 1750 ONNX Runtime samples; re-recorded when the page began reading through the manifest schema,
which the first recording predated). The page is built from these files; the tests read the same files
independently and compare."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

RECORDED = Path(__file__).parent / "fixtures" / "tiny_export"


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    d = tmp_path / "tiny-onnx"
    shutil.copytree(RECORDED, d)
    return d


def edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))
