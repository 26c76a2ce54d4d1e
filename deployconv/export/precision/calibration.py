"""Calibration data for int8: user images through the model's own preprocessing (`--calib DIR`,
`--calib-samples N`), or seeded synthetic data with a loud warning that the resulting accuracy says little
about real images. Numpy + Pillow; onnxruntime only inside `ort_reader`.

Images are taken in a seeded shuffled order (a folder sorted by class then gives a mix of classes, not the
first N images of one class) until N decode; undecodable images are skipped and counted, never fatal. An
empty, missing or unreadable folder is a BadInputError.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from deployconv.core.errors import BadInputError
from deployconv.validate.images import IMAGE_SUFFIXES, preprocess

DEFAULT_SAMPLES = 64
SYNTHETIC_WARNING = ("int8 calibrated on SYNTHETIC data (seeded N(0,1) in the normalised input space): the "
                     "activation ranges, and so the int8 accuracy reported, are not representative of real "
                     "images; pass --calib DIR with a few hundred images from your data")


class Preprocessing(Protocol):
    """What calibration needs of a model's `ModelInfo` (deployconv.models.get_model_spec(name).info)."""

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    crop_pct: float


@dataclass
class CalibrationData:
    """Samples in the model's normalised input space, shape (N, C, H, W) float32, and where they came from."""

    array: np.ndarray
    source: str  # "images" | "synthetic"
    directory: str | None = None
    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # undecodable images
    seed: int | None = None

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"

    @property
    def representative(self) -> bool:
        return not self.synthetic

    @property
    def warning(self) -> str | None:
        """The message a CLI must print (loudly) when the data is not representative, else None."""
        return SYNTHETIC_WARNING if self.synthetic else None

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        for i in range(0, len(self), max(1, batch_size)):
            yield self.array[i:i + batch_size]

    def describe(self) -> dict[str, Any]:
        """For reports: what was used, how many, what was skipped, and the warning if any."""
        return {"source": self.source, "samples": len(self), "shape": list(self.array.shape[1:]),
                "directory": self.directory, "skipped": len(self.skipped), "skipped_files": self.skipped[:10],
                "seed": self.seed, "representative": self.representative, "warning": self.warning}


def synthetic_calibration(input_size: tuple[int, ...], samples: int = DEFAULT_SAMPLES, seed: int = 0) -> CalibrationData:
    """Seeded N(0,1) samples in the normalised input space (what the parity checks feed too)."""
    if samples < 1:
        raise BadInputError(f"--calib-samples must be >= 1, got {samples}")
    rng = np.random.default_rng(seed)
    arr = rng.standard_normal((samples, *input_size), dtype=np.float32)
    return CalibrationData(arr, "synthetic", seed=seed)


def _image_files(directory: Path) -> list[Path]:
    if not directory.exists():
        raise BadInputError(f"calibration folder not found: {directory}", fix="pass an existing folder to --calib")
    if not directory.is_dir():
        raise BadInputError(f"--calib must be a folder of images, got a file: {directory}",
                            fix="pass the folder that holds the images")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise BadInputError(f"calibration folder is not readable: {directory}",
                            fix="check the folder's permissions")
    try:
        files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError as e:
        raise BadInputError(f"cannot read calibration folder {directory}", why=str(e)) from e
    if not files:
        raise BadInputError(f"no images in calibration folder {directory}",
                            why=f"looked for {', '.join(sorted(IMAGE_SUFFIXES))} (recursively)",
                            fix="pass a folder that holds images from your data")
    return files


def calibration_from_images(directory: Path | str, info: Preprocessing, samples: int = DEFAULT_SAMPLES,
                            seed: int = 0) -> CalibrationData:
    """Up to `samples` decodable images of `directory` (recursive), preprocessed like the model's input."""
    if samples < 1:
        raise BadInputError(f"--calib-samples must be >= 1, got {samples}")
    directory = Path(directory)
    files = _image_files(directory)
    order = np.random.default_rng(seed).permutation(len(files))
    arrays: list[np.ndarray] = []
    used: list[str] = []
    skipped: list[str] = []
    size = tuple(info.input_size[1:])
    for k in order:
        if len(arrays) >= samples:
            break
        f = files[int(k)]
        try:
            arrays.append(preprocess(f, size, info.crop_pct, info.interpolation, info.mean, info.std))
            used.append(str(f))
        except Exception:  # undecodable image (Pillow raises many types): counted, not fatal
            skipped.append(str(f))
    if not arrays:
        raise BadInputError(f"none of the {len(skipped)} images tried in {directory} could be decoded",
                            details=[f"e.g. {s}" for s in skipped[:3]],
                            fix="pass a folder of JPEG/PNG images Pillow can open")
    return CalibrationData(np.stack(arrays).astype(np.float32), "images", str(directory), used, skipped, seed)


def load_calibration(calib_dir: Path | str | None, info: Preprocessing, samples: int = DEFAULT_SAMPLES,
                     seed: int = 0) -> CalibrationData:
    """The front door: images from `calib_dir` when given, else synthetic data (check `.warning`)."""
    if calib_dir is None:
        return synthetic_calibration(tuple(info.input_size), samples, seed)
    return calibration_from_images(calib_dir, info, samples, seed)


def ort_reader(calib: CalibrationData, input_name: str, batch_size: int = 8) -> Any:
    """An onnxruntime.quantization.CalibrationDataReader over `calib` in batches of `batch_size`. It also
    supports `len()` and `set_range(start, end)` in batches, which quantize_static's strided collection
    uses to build histograms batch by batch instead of holding every batch's activations at once."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = list(calib.batches(batch_size))
            self._start, self._end = 0, len(self._batches)
            self._next = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self._next >= self._end:
                return None
            self._next += 1
            return {input_name: self._batches[self._next - 1]}

        def rewind(self) -> None:
            self._next = self._start

        def set_range(self, start_index: int, end_index: int) -> None:
            self._start, self._end = start_index, min(end_index, len(self._batches))
            self._next = self._start

        def __len__(self) -> int:
            return len(self._batches)

    return _Reader()
