"""A labelled image folder (ImageFolder layout: ROOT/<class>/<image>), its class index, and a streaming,
parallel decoder that never holds the set.

Labels: without a class-index file, the classes are the sorted folder names (torchvision's ImageFolder
order). With `--labels FILE`, each folder name is looked up in the file, which may be
- ImageNet's `imagenet_class_index.json` ({"0": ["n01440764", "tench"], ...}: folder = synset),
- a JSON object {"folder name": index, ...} or a JSON list ["folder of class 0", ...], or
- a text file with one class per line (first token = folder name, e.g. LOC_synset_mapping.txt).
A folder the index does not know, a class folder without images, or no class folders at all is a clear
BadInputError. An image that cannot be decoded is counted and skipped, never fatal.

Streaming: batches are decoded by a thread pool (Pillow releases the GIL while decoding and resizing), at
most `workers + 1` batches in flight, so memory is bounded by a few batches whatever the folder's size; the
list of file paths (tens of bytes an image) is the only thing proportional to the set.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deployconv.core.env import available_cpus
from deployconv.core.errors import BadInputError
from deployconv.validate.images import IMAGE_SUFFIXES, preprocess


@dataclass(frozen=True)
class ClassIndex:
    """Folder name -> class index of the model's output, and where the mapping came from."""

    mapping: dict[str, int]
    source: str  # "folder names (sorted)" or the file's path

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "classes_in_index": len(self.mapping)}


def read_class_index(path: Path) -> ClassIndex:
    """Parse a class-index file (formats in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"class-index file not found: {path}", fix="pass an existing file to --labels")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BadInputError(f"{path} is not valid JSON", why=str(e)) from e
        return ClassIndex(_from_json(data, path), str(path))
    names = [line.split()[0] for line in text.splitlines() if line.strip()]
    if not names:
        raise BadInputError(f"class-index file {path} is empty", fix="one class (folder name) per line")
    return ClassIndex(_unique({n: i for i, n in enumerate(names)}, names, path), str(path))


def _unique(mapping: dict[str, int], names: list[str], path: Path) -> dict[str, int]:
    if len(mapping) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise BadInputError(f"class-index file {path} names a class twice: {', '.join(dup[:5])}")
    return mapping


def _from_json(data: Any, path: Path) -> dict[str, int]:
    bad = BadInputError(f"class-index file {path} has an unknown layout",
                        why="expected {\"0\": [\"n01440764\", \"tench\"], ...} (ImageNet), {\"name\": index, ...} "
                            "or [\"name of class 0\", ...]")
    if isinstance(data, list) and all(isinstance(n, str) for n in data):
        return _unique({n: i for i, n in enumerate(data)}, data, path)
    if not isinstance(data, dict) or not data:
        raise bad
    if all(isinstance(v, int) for v in data.values()):
        return {str(k): int(v) for k, v in data.items()}
    if all(isinstance(v, list) and v and isinstance(v[0], str) for v in data.values()):
        try:
            names = {int(k): v[0] for k, v in data.items()}
        except ValueError:
            raise bad from None
        ordered = [names[i] for i in sorted(names)]
        return _unique({n: i for i, n in names.items()}, ordered, path)
    raise bad


@dataclass
class ImageFolder:
    """The scanned folder: (path, label) per image in a fixed order, and per-class counts."""

    root: Path
    samples: list[tuple[str, int]]
    classes: dict[str, int]  # folder -> label
    counts: dict[str, int]
    index: ClassIndex

    def __len__(self) -> int:
        return len(self.samples)

    def describe(self) -> dict[str, Any]:
        return {"root": str(self.root), "images": len(self), "classes": len(self.classes),
                "labels": self.index.describe()}


def scan_image_folder(root: Path, labels: Path | None = None, limit: int | None = None,
                      seed: int = 0) -> ImageFolder:
    """Scan ROOT/<class>/**/<image>. With `limit`, a seeded random subset of `limit` images (all classes
    represented in proportion), never the first N of one class."""
    root = Path(root)
    if not root.is_dir():
        raise BadInputError(f"data folder not found: {root}", fix="pass an ImageFolder: ROOT/<class>/<image>")
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as e:
        raise BadInputError(f"cannot read data folder {root}", why=str(e)) from e
    if not folders:
        loose = [p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        raise BadInputError(f"no class folders in {root}",
                            why=f"{len(loose)} image(s) at the top level, which have no class" if loose else
                            "the folder is empty",
                            fix="use the ImageFolder layout ROOT/<class name>/<image>")
    index = read_class_index(labels) if labels else ClassIndex({p.name: i for i, p in enumerate(folders)},
                                                              "folder names (sorted)")
    unknown = [p.name for p in folders if p.name not in index.mapping]
    if unknown:
        raise BadInputError(f"{len(unknown)} class folder(s) of {root} are not in the class index "
                            f"({index.source})", details=[f"e.g. {u}" for u in unknown[:5]],
                            fix="rename the folders to the index's class names, or pass the right --labels file")
    samples: list[tuple[str, int]] = []
    counts: dict[str, int] = {}
    empty: list[str] = []
    for p in folders:
        files = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            empty.append(p.name)
        counts[p.name] = len(files)
        samples += [(f, index.mapping[p.name]) for f in files]
    if empty:
        raise BadInputError(f"{len(empty)} class folder(s) of {root} hold no images",
                            details=[f"e.g. {e}" for e in empty[:5]],
                            why=f"looked for {', '.join(sorted(IMAGE_SUFFIXES))} (recursively)",
                            fix="remove the empty folders or add their images")
    if limit is not None and limit < len(samples):
        pick = np.sort(np.random.default_rng(seed).choice(len(samples), size=limit, replace=False))
        samples = [samples[int(i)] for i in pick]
    return ImageFolder(root, samples, {p.name: index.mapping[p.name] for p in folders}, counts, index)


@dataclass
class Batch:
    """Decoded images (N, C, H, W) float32, their labels, and the files of this chunk that failed."""

    array: np.ndarray
    labels: np.ndarray
    skipped: list[str] = field(default_factory=list)


def _decode(chunk: list[tuple[str, int]], info: Any) -> Batch:
    arrays, labels, skipped = [], [], []
    size = tuple(info.input_size[1:])
    for path, label in chunk:
        try:
            arrays.append(preprocess(Path(path), size, info.crop_pct, info.interpolation, info.mean, info.std))
            labels.append(label)
        except Exception:  # undecodable image (Pillow raises many types): counted, not fatal
            skipped.append(path)
    arr = np.ascontiguousarray(np.stack(arrays), np.float32) if arrays else np.zeros((0, *info.input_size), np.float32)
    return Batch(arr, np.asarray(labels, np.int64), skipped)


def default_workers() -> int:
    return max(1, min(8, available_cpus()))


def stream_batches(folder: ImageFolder, info: Any, batch: int, workers: int | None = None) -> Iterator[Batch]:
    """Decoded batches in the folder's order; at most `workers + 1` batches decoded ahead."""
    if batch < 1:
        raise BadInputError(f"--batch must be >= 1, got {batch}")
    workers = workers or default_workers()
    chunks = (folder.samples[i:i + batch] for i in range(0, len(folder.samples), batch))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deployconv-decode") as pool:
        pending: deque[Future[Batch]] = deque()
        for chunk in chunks:
            pending.append(pool.submit(_decode, chunk, info))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
