"""What `export` takes besides the model and target (the CLI's flags, as data)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_SIMPLIFIER = "onnxslim"


@dataclass
class ExportOptions:
    weights: Path | None = None
    allow_missing: tuple[str, ...] = ()
    batch: int = 1
    opset: int | None = None
    simplifier: str = DEFAULT_SIMPLIFIER
    images: Path | None = None
    parity_batches: int = 2
    seed: int = 0
    bench: bool = True
    bench_seconds: float = 1.0
    threads: int | None = None
    batch_given: bool = False  # static-shape targets: whether --batch chose the batch
    io_dtype: str | None = None  # None: the target's
    calib: Path | None = None
    calib_samples: int | None = None
    calib_method: str | None = None
    plugins: Path | None = None
    require_engine: bool = False
    inputs: tuple[str, ...] = ()  # --input NAME=DIMS[:DTYPE] (deployconv.core.io_spec)
    dims: tuple[str, ...] = ()  # --dim SYM=MIN..OPT..MAX
    profiles: tuple[str, ...] = ()  # --profile SYM=MIN..OPT..MAX[,...]: several TensorRT optimization profiles
