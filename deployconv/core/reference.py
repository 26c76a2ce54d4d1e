"""reference.npz: the inputs and the PyTorch outputs recorded at export, for parity anywhere. Torch-free.

The classic single-input, single-output, single-shape export writes `input`, `expected`, `expected_fp64` (the
layout every existing bundle has). A model with named inputs/outputs or several shape points writes
`POINT/input/NAME`, `POINT/expected/NAME`, `POINT/expected_fp64/NAME` (POINT: min, opt, max).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deployconv.core.errors import BadInputError


@dataclass
class RefPoint:
    point: str
    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    expected_fp64: dict[str, np.ndarray]

    def batch(self) -> np.ndarray | dict[str, np.ndarray]:
        return next(iter(self.inputs.values())) if len(self.inputs) == 1 else dict(self.inputs)

    def expected_batch(self) -> np.ndarray | dict[str, np.ndarray]:
        exp = {k: v.astype(np.float64) for k, v in self.expected.items()}
        return next(iter(exp.values())) if len(exp) == 1 else exp


def _as_dict(x: np.ndarray | dict, name: str) -> dict[str, np.ndarray]:
    return dict(x) if isinstance(x, dict) else {name: x}


def save_reference(path: Path, points: list[RefPoint]) -> None:
    p = points[0]
    if len(points) == 1 and len(p.inputs) == 1 and len(p.expected) == 1:
        np.savez_compressed(path, input=next(iter(p.inputs.values())),
                            expected=next(iter(p.expected.values())).astype(np.float32),
                            expected_fp64=next(iter(p.expected_fp64.values())))
        return
    arrays = {}
    for r in points:
        arrays.update({f"{r.point}/input/{k}": v for k, v in r.inputs.items()})
        arrays.update({f"{r.point}/expected/{k}": v.astype(np.float32) for k, v in r.expected.items()})
        arrays.update({f"{r.point}/expected_fp64/{k}": v for k, v in r.expected_fp64.items()})
    np.savez_compressed(path, **arrays)


def load_reference(path: Path, input_names: list[str] | None = None,
                   output_names: list[str] | None = None) -> list[RefPoint]:
    """The recorded points, in min/opt/max order; the classic layout is one point named with the manifest's
    input/output names (default `input`/`output`)."""
    if not Path(path).is_file():
        raise BadInputError(f"{Path(path).parent} has no reference.npz", fix="re-export with this deployconv version")
    ref = np.load(path)
    keys = list(ref.files)
    if "input" in keys and "expected" in keys:
        i_name = (input_names or ["input"])[0]
        o_name = (output_names or ["output"])[0]
        return [RefPoint("opt", {i_name: ref["input"]}, {o_name: ref["expected"]},
                         {o_name: ref["expected_fp64"]} if "expected_fp64" in keys else {})]
    points: dict[str, RefPoint] = {}
    for k in keys:
        parts = k.split("/", 2)
        if len(parts) != 3 or parts[1] not in ("input", "expected", "expected_fp64"):
            raise BadInputError(f"reference.npz has an unknown entry {k!r}", fix="re-export with this deployconv version")
        point, kind, name = parts
        r = points.setdefault(point, RefPoint(point, {}, {}, {}))
        getattr(r, "inputs" if kind == "input" else kind)[name] = ref[k]
    order = {"min": 0, "opt": 1, "max": 2}
    out = sorted(points.values(), key=lambda r: order.get(r.point, 9))
    if input_names:
        for r in out:
            r.inputs = {n: r.inputs[n] for n in input_names if n in r.inputs}
    if output_names:
        for r in out:
            r.expected = {n: r.expected[n] for n in output_names if n in r.expected}
    return out
