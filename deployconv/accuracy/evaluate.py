"""`deployconv eval`'s engine: stream the labelled folder once, feed every stage each batch (the decoding is
shared), tally, and build the ledger."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployconv.accuracy.dataset import ImageFolder, default_workers, scan_image_folder, stream_batches
from deployconv.accuracy.ledger import ALPHA, CONFIDENCE, Ledger, Skipped, Tally, build_rows
from deployconv.accuracy.stages import Stage, StageOptions, build_stages
from deployconv.accuracy.stats import INTERVALS
from deployconv.core.errors import BadInputError
from deployconv.export.precision.calibration import calibration_from_images
from deployconv.models.registry import model_info
from deployconv.models.seeded import create_seeded

DEFAULT_BATCH = 32
DEFAULT_CALIB = 64


@dataclass
class EvalOptions:
    labels: Path | None = None
    limit: int | None = None
    batch: int = DEFAULT_BATCH
    workers: int | None = None
    interval: str = "wilson"
    confidence: float = CONFIDENCE
    alpha: float = ALPHA
    calib: Path | None = None  # default: a seeded sample of the evaluation folder (said in a note)
    calib_samples: int = DEFAULT_CALIB
    seed: int = 0
    stage: StageOptions = field(default_factory=StageOptions)


Progress = Callable[[int], None]  # images done in the last batch


def _reference(stages: list[Stage]) -> str | None:
    """The fp32 stage the others are compared with: the train form, else the first fp32 stage run."""
    for name in ("train", "deploy", "onnx", "simplified"):
        if any(s.name == name for s in stages):
            return name
    return None


def run_ledger(stages: list[Stage], skipped: list[Skipped], folder: ImageFolder, info: Any, opts: EvalOptions,
               on_batch: Progress | None = None, notes: list[str] | None = None) -> Ledger:
    """Stream `folder` once through every stage."""
    if opts.interval not in INTERVALS:
        raise BadInputError(f"--interval {opts.interval!r}", fix=f"use {' or '.join(INTERVALS)}")
    tallies = {s.name: Tally() for s in stages}
    workers = opts.workers or default_workers()
    skipped_files: list[str] = []
    n_skipped = 0
    t0 = time.perf_counter()
    for batch in stream_batches(folder, info, opts.batch, workers):
        n_skipped += len(batch.skipped)
        skipped_files += batch.skipped[: max(0, 10 - len(skipped_files))]
        if batch.labels.size:
            for s in stages:
                ts = time.perf_counter()
                logits = s.run(batch.array)
                if logits.ndim != 2:
                    logits = logits.reshape(logits.shape[0], -1)
                if logits.shape[1] <= int(batch.labels.max()):
                    raise BadInputError(f"class index {int(batch.labels.max())} is beyond the model's "
                                        f"{logits.shape[1]} outputs (stage {s.name})",
                                        fix="pass the class-index file that matches the model (--labels)")
                tallies[s.name].add(logits, batch.labels)
                tallies[s.name].seconds += time.perf_counter() - ts
        if on_batch:
            on_batch(batch.labels.size + len(batch.skipped))
    seconds = time.perf_counter() - t0
    images = len(folder) - n_skipped
    if images == 0:
        raise BadInputError(f"none of the {len(folder)} images in {folder.root} could be decoded",
                            details=[f"e.g. {s}" for s in skipped_files[:3]],
                            fix="pass a folder of JPEG/PNG images Pillow can open")
    ref = _reference(stages)
    rows = build_rows(tallies, {s.name: s.label for s in stages}, {s.name: s.emulated for s in stages}, ref,
                      opts.interval, opts.confidence, opts.alpha, {s.name: s.notes for s in stages})
    return Ledger(folder.describe(), opts.interval, opts.confidence, opts.alpha, ref, rows, skipped, images,
                  n_skipped, skipped_files, round(seconds, 3), round(len(folder) / seconds, 2) if seconds else 0.0,
                  workers, opts.batch, list(notes or []))


def evaluate(model: Any, data: Path, opts: EvalOptions, *, weights: Path | None = None,
             allow_missing: tuple[str, ...] = (), status: Callable[[str], None] | None = None,
             on_start: Callable[[int], None] | None = None, on_batch: Progress | None = None) -> Ledger:
    """The ledger of `model` (zoo name, file.py:factory or an nn.Module) on the ImageFolder `data`."""
    say = status or (lambda _s: None)
    folder = scan_image_folder(data, opts.labels, opts.limit, opts.seed)
    say("create model")
    train = create_seeded(model, weights, allow_missing, opts.seed) if isinstance(model, str) else model.eval()
    info = model_info(train)
    notes: list[str] = []
    calib = None
    if {"fp16", "int8"} & set(opts.stage.stages):
        say("calibration images")
        calib = calibration_from_images(opts.calib or data, info, opts.calib_samples, seed=opts.seed)
        if opts.calib is None:
            notes.append(f"int8 calibration and the fp16 guard used {len(calib)} images of the evaluation "
                         "folder itself (in-sample; pass --calib DIR with held-out images for an unbiased "
                         "int8 figure)")
    stages, skipped = build_stages(train, tuple(info.input_size), calib, opts.stage, progress=say)
    if not stages:
        raise BadInputError("no stage left to evaluate", why="; ".join(f"{s.name}: {s.reason}" for s in skipped),
                            fix="choose other --stages")
    if on_start:
        on_start(len(folder))
    return run_ledger(stages, skipped, folder, info, opts, on_batch, notes)
