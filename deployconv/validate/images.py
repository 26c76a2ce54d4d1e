"""User images through the model's own preprocessing (resize, centre crop, normalise), numpy + Pillow only.

Images that cannot be decoded are skipped and counted, never fatal; an empty or unreadable directory is."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deployconv.core.errors import BadInputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm"}


@dataclass
class ImageBatch:
    array: np.ndarray  # (N, 3, H, W) float32
    files: list[str]
    skipped: list[str] = field(default_factory=list)


def preprocess(path: Path, size: tuple[int, int], crop_pct: float, interpolation: str,
               mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    from PIL import Image

    resample = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}[interpolation]
    with Image.open(path) as im:
        im = im.convert("RGB")
        h, w = size
        scale_to = math.floor(min(h, w) / crop_pct)  # timm convention: resize shorter side to size / crop_pct
        iw, ih = im.size
        ratio = scale_to / min(iw, ih)
        im = im.resize((max(w, round(iw * ratio)), max(h, round(ih * ratio))), resample)
        iw, ih = im.size
        left, top = (iw - w) // 2, (ih - h) // 2
        im = im.crop((left, top, left + w, top + h))
        arr = np.asarray(im, dtype=np.float32) / 255.0
    arr = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return arr.transpose(2, 0, 1)


def load_images(directory: Path, size: tuple[int, int], crop_pct: float, interpolation: str,
                mean: tuple[float, ...], std: tuple[float, ...], limit: int | None = None) -> ImageBatch:
    directory = Path(directory)
    if not directory.is_dir():
        raise BadInputError(f"image directory not found: {directory}", fix="pass an existing folder to --images")
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise BadInputError(f"no images in {directory}", why=f"looked for {', '.join(sorted(IMAGE_SUFFIXES))}",
                            fix="pass a folder that holds images")
    arrays, used, skipped = [], [], []
    for f in files[:limit] if limit else files:
        try:
            arrays.append(preprocess(f, size, crop_pct, interpolation, mean, std))
            used.append(str(f))
        except Exception:  # undecodable image: counted, not fatal
            skipped.append(str(f))
    if not arrays:
        raise BadInputError(f"none of the {len(files)} images in {directory} could be decoded")
    return ImageBatch(np.stack(arrays).astype(np.float32), used, skipped)
