"""The labelled folder: labels from folder names or a class-index file, clear errors, skipped images, and a
decoder with bounded look-ahead."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deployconv.accuracy import dataset
from deployconv.accuracy.dataset import read_class_index, scan_image_folder, stream_batches
from deployconv.core.errors import BadInputError
from deployconv.models.registry import ModelInfo

INFO = ModelInfo(input_size=(3, 8, 8), crop_pct=1.0, interpolation="bilinear")


def _folder(root: Path, classes: dict[str, int]) -> Path:
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(np.full((8, 8, 3), (i * 20) % 256, np.uint8)).save(root / name / f"{i}.png")
    return root


def test_folder_names_sorted_are_the_default_labels(tmp_path: Path) -> None:
    f = scan_image_folder(_folder(tmp_path, {"b": 2, "a": 3}))
    assert f.classes == {"a": 0, "b": 1}
    assert [label for _, label in f.samples] == [0, 0, 0, 1, 1]


@pytest.mark.parametrize("layout", ["imagenet", "dict", "list", "txt"])
def test_class_index_formats(tmp_path: Path, layout: str) -> None:
    names = ["n015", "n001", "n007"]
    if layout == "imagenet":
        p = tmp_path / "idx.json"
        p.write_text(json.dumps({str(i): [n, f"thing {i}"] for i, n in enumerate(names)}))
    elif layout == "dict":
        p = tmp_path / "idx.json"
        p.write_text(json.dumps({n: i for i, n in enumerate(names)}))
    elif layout == "list":
        p = tmp_path / "idx.json"
        p.write_text(json.dumps(names))
    else:
        p = tmp_path / "idx.txt"
        p.write_text("".join(f"{n} some words, more\n" for n in names))
    assert read_class_index(p).mapping == {"n015": 0, "n001": 1, "n007": 2}
    f = scan_image_folder(_folder(tmp_path / "data", {"n007": 1, "n015": 1}), p)
    assert f.classes == {"n007": 2, "n015": 0}


def test_unknown_class_and_empty_folder_are_errors(tmp_path: Path) -> None:
    idx = tmp_path / "idx.json"
    idx.write_text(json.dumps(["cat", "dog"]))
    with pytest.raises(BadInputError, match="not in the class index"):
        scan_image_folder(_folder(tmp_path / "d1", {"cat": 1, "cow": 1}), idx)
    root = _folder(tmp_path / "d2", {"cat": 1})
    (root / "dog").mkdir()
    with pytest.raises(BadInputError, match="hold no images"):
        scan_image_folder(root)
    (tmp_path / "d3").mkdir()
    with pytest.raises(BadInputError, match="no class folders"):
        scan_image_folder(tmp_path / "d3")


def test_unreadable_image_is_counted_and_skipped(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"a": 3, "b": 2})
    (root / "b" / "broken.png").write_bytes(b"not a png")
    f = scan_image_folder(root)
    batches = list(stream_batches(f, INFO, batch=2, workers=2))
    assert sum(b.labels.size for b in batches) == 5
    assert [Path(s).name for b in batches for s in b.skipped] == ["broken.png"]
    assert all(b.array.flags.c_contiguous for b in batches)


def test_limit_is_a_seeded_subset_of_all_classes(tmp_path: Path) -> None:
    f = scan_image_folder(_folder(tmp_path, {"a": 10, "b": 10}), limit=8, seed=3)
    assert len(f) == 8 and {label for _, label in f.samples} == {0, 1}
    assert f.samples == scan_image_folder(tmp_path, limit=8, seed=3).samples


def test_look_ahead_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory stays flat: never more than workers + 1 decoded batches waiting for the consumer."""
    f = scan_image_folder(_folder(tmp_path, {"a": 40}))
    lock = threading.Lock()
    state = {"decoded": 0, "consumed": 0, "peak": 0}
    real = dataset._decode

    def counting(chunk, info):
        out = real(chunk, info)
        with lock:
            state["decoded"] += 1
            state["peak"] = max(state["peak"], state["decoded"] - state["consumed"])
        return out

    monkeypatch.setattr(dataset, "_decode", counting)
    for _ in stream_batches(f, INFO, batch=2, workers=3):
        threading.Event().wait(0.01)  # a slow consumer: the decoder must wait, not run ahead
        with lock:
            state["consumed"] += 1
    assert state["consumed"] == 20
    assert state["peak"] <= 3 + 1
