"""int8 calibration data: user images through the model's preprocessing, synthetic data with its warning,
clear errors for folders that cannot be used, and the ONNX Runtime reader adapter."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from deployconv.core.errors import BadInputError
from deployconv.export.precision.calibration import (
    CalibrationData,
    calibration_from_images,
    load_calibration,
    ort_reader,
    synthetic_calibration,
)


@dataclass(frozen=True)
class Info:  # the ModelInfo fields calibration reads
    input_size: tuple[int, int, int] = (3, 32, 32)
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    crop_pct: float = 0.875


def _write_images(folder, n: int, size=(48, 40)) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"img_{i}.png")


def test_synthetic_is_seeded_and_flagged_not_representative():
    a = synthetic_calibration((3, 8, 8), samples=5, seed=3)
    b = synthetic_calibration((3, 8, 8), samples=5, seed=3)
    c = synthetic_calibration((3, 8, 8), samples=5, seed=4)
    assert a.array.shape == (5, 3, 8, 8) and a.array.dtype == np.float32
    np.testing.assert_array_equal(a.array, b.array)
    assert not np.array_equal(a.array, c.array)
    assert a.synthetic and not a.representative
    assert a.warning is not None and "SYNTHETIC" in a.warning and "--calib" in a.warning
    d = a.describe()
    assert d["representative"] is False and d["warning"] == a.warning and d["samples"] == 5


def test_load_calibration_without_dir_is_synthetic_with_model_shape():
    cal = load_calibration(None, Info(), samples=3)
    assert cal.synthetic and cal.array.shape == (3, 3, 32, 32)


def test_images_use_model_preprocessing_and_count_undecodable(tmp_path):
    _write_images(tmp_path / "a", 4)
    (tmp_path / "a" / "broken.jpg").write_bytes(b"this is not a jpeg")
    cal = calibration_from_images(tmp_path, Info(), samples=100)
    assert not cal.synthetic and cal.representative and cal.warning is None
    assert cal.array.shape == (4, 3, 32, 32) and cal.array.dtype == np.float32
    assert len(cal.skipped) == 1 and cal.skipped[0].endswith("broken.jpg")
    assert cal.describe()["skipped"] == 1
    # normalised with the model's mean/std: an 8-bit image maps into [(0-mean)/std, (1-mean)/std]
    lo = (0 - np.array(Info.mean)) / np.array(Info.std)
    hi = (1 - np.array(Info.mean)) / np.array(Info.std)
    per_channel = cal.array.transpose(1, 0, 2, 3).reshape(3, -1)
    assert np.all(per_channel.min(1) >= lo - 1e-5) and np.all(per_channel.max(1) <= hi + 1e-5)


def test_samples_limit_and_seeded_pick(tmp_path):
    _write_images(tmp_path, 6)
    a = calibration_from_images(tmp_path, Info(), samples=2, seed=0)
    b = calibration_from_images(tmp_path, Info(), samples=2, seed=0)
    assert len(a) == 2 and a.files == b.files


def test_undecodable_images_do_not_count_towards_samples(tmp_path):
    _write_images(tmp_path, 3)
    for i in range(3):
        (tmp_path / f"bad_{i}.png").write_bytes(b"\x89PNG broken")
    cal = calibration_from_images(tmp_path, Info(), samples=3)
    assert len(cal) == 3  # the three good ones, however the shuffle ordered them
    assert all("bad_" in s for s in cal.skipped)


@pytest.mark.parametrize("case", ["missing", "file", "empty", "no_images", "all_broken"])
def test_unusable_folder_is_bad_input(tmp_path, case):
    target = tmp_path / "calib"
    if case == "file":
        target.write_text("x")
    elif case == "empty":
        target.mkdir()
    elif case == "no_images":
        target.mkdir()
        (target / "notes.txt").write_text("no images here")
    elif case == "all_broken":
        target.mkdir()
        (target / "a.jpg").write_bytes(b"nope")
    with pytest.raises(BadInputError) as e:
        calibration_from_images(target, Info())
    assert e.value.exit_code == 2


def test_unreadable_folder_is_bad_input(tmp_path, monkeypatch):
    # the tests may run as root, where chmod 000 still reads: simulate the permission check instead
    _write_images(tmp_path, 1)
    import deployconv.export.precision.calibration as calibration

    monkeypatch.setattr(calibration.os, "access", lambda *_a, **_k: False)
    with pytest.raises(BadInputError, match="not readable"):
        calibration_from_images(tmp_path, Info())


def test_bad_sample_count_is_bad_input(tmp_path):
    with pytest.raises(BadInputError):
        synthetic_calibration((3, 4, 4), samples=0)


def test_ort_reader_batches_rewinds_and_ranges():
    cal = CalibrationData(np.arange(5 * 2, dtype=np.float32).reshape(5, 2), "synthetic", seed=0)
    r = ort_reader(cal, "x", batch_size=2)
    from onnxruntime.quantization import CalibrationDataReader

    assert isinstance(r, CalibrationDataReader)
    got = []
    while (item := r.get_next()) is not None:
        got.append(item["x"])
    assert [g.shape[0] for g in got] == [2, 2, 1] and len(r) == 3
    np.testing.assert_array_equal(np.concatenate(got), cal.array)
    r.rewind()
    assert r.get_next() is not None
    r.set_range(1, 2)
    np.testing.assert_array_equal(r.get_next()["x"], cal.array[2:4])
    assert r.get_next() is None
