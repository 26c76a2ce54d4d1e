"""A parity stage over any runtime Runner for models with named inputs and outputs: feeds by name, outputs in
the manifest's order, chunked along the batch. Torch-free (validate on a device without PyTorch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Batch = np.ndarray | dict[str, np.ndarray]


def runner_stage(runner: Any, plan_names: list[str], max_batch: int | None = None) -> Callable[[Batch], Any]:
    """A parity stage over an active runtime Runner: named feeds in, outputs in `plan_names` order out
    (chunked along the batch when `max_batch` is given)."""
    meta = runner.input_metadata()
    first = next(iter(meta))

    def run(batch: Batch) -> Any:
        feed = batch if isinstance(batch, dict) else {first: batch}
        n = len(next(iter(feed.values())))
        shape = meta[first].shape
        static = shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None
        step = static or min(n, max_batch or n)
        chunks = []
        for i in range(0, n, step):
            part = {k: v[i:i + step].astype(meta[k].dtype) if meta[k].dtype is not None else v[i:i + step]
                    for k, v in feed.items()}
            chunks.append(runner.infer(part))
        missing = [n for n in plan_names if n not in chunks[0]]
        if missing:
            from deployconv.core.errors import CheckFailedError

            raise CheckFailedError(f"{runner.name} has no output(s) {missing}",
                                   why=f"its outputs: {list(chunks[0])}; the manifest records {plan_names}",
                                   fix="re-export: the runtime graph and the manifest disagree")
        cat = {k: np.concatenate([np.asarray(c[k], dtype=np.float64) for c in chunks], axis=0) for k in plan_names}
        return cat[plan_names[0]] if len(plan_names) == 1 else cat

    return run
