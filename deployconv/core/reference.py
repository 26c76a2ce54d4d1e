"""reference.npz: the inputs and the PyTorch outputs recorded at export, for parity anywhere. Torch-free.

The classic single-input, single-output, single-shape export writes `input`, `expected`, `expected_fp64` (the
layout every existing bundle has). A model with named inputs/outputs or several shape points writes
`POINT/input/NAME`, `POINT/expected/NAME`, `POINT/expected_fp64/NAME` (POINT: min, opt, max).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


_FIX = "re-export (reference.npz is written by `deployconv export`), or copy the bundle again"
_ORDER = {"min": 0, "opt": 1, "max": 2}


def _bad(path: Path, what: str) -> BadInputError:
    return BadInputError(f"{path}: {what}", fix=_FIX)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the .npz, numeric only: object arrays (pickles) are refused, never unpickled."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ValueError as e:  # object arrays (pickles) are refused by allow_pickle=False
        raise _bad(path, f"cannot be read without running code or is malformed ({str(e)[:160]})") from None
    except (zipfile.BadZipFile, EOFError, KeyError, OSError) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise
        raise _bad(path, f"is not a valid .npz ({type(e).__name__}: {str(e)[:160]})") from None


def _check_point(path: Path, r: RefPoint, classic: bool) -> None:
    """Numeric arrays; expected outputs finite floats. The classic layout (one image in, one tensor out) also: a
    float input, samples in both, the same number. Named layouts: the inputs agree on their samples (an output
    need not be batched)."""
    where = "" if classic else f"{r.point}: "
    if not r.inputs or not r.expected:
        raise _bad(path, f"{where}has no {'input' if not r.inputs else 'expected'} array")
    named = [("input", k, a) for k, a in r.inputs.items()] + [("expected", k, a) for k, a in r.expected.items()]
    for kind, key, a in named:
        label = f"{where}{kind}" + ("" if classic else f" {key!r}")
        if (kind == "expected" or classic) and a.dtype.kind != "f":
            raise _bad(path, f"{label} has dtype {a.dtype}, not a float type")
        if a.dtype.kind not in "fiub":
            raise _bad(path, f"{label} has dtype {a.dtype}, not a numeric type")
        if (kind == "input" or classic) and (a.ndim < 1 or a.shape[0] == 0):
            raise _bad(path, f"{label} has shape {a.shape}: no samples")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise _bad(path, f"{label} holds NaN or Inf")
    counted = named if classic else [n for n in named if n[0] == "input"]
    if len({a.shape[0] for _, _, a in counted}) > 1:
        sizes = ", ".join(f"{kind} {key!r}: {a.shape[0]}" for kind, key, a in counted)
        raise _bad(path, f"{where}the arrays disagree on the number of samples ({sizes})")


def _match_io(path: Path, r: RefPoint, io: dict[str, Any]) -> None:
    """The classic layout against the manifest's `io`: the model's input shape after the batch axis, and the rank
    (and fixed sizes) of its output."""
    for kind, arrays, rows in (("input", r.inputs, io.get("inputs") or []), ("expected", r.expected,
                                                                              io.get("outputs") or [])):
        if not rows:
            continue
        a, want = next(iter(arrays.values())), rows[0]["shape"]
        if len(want) != a.ndim or any(isinstance(w, int) and w > 0 and w != g for w, g in zip(want[1:], a.shape[1:])):
            what = "takes" if kind == "input" else "gives"
            raise _bad(path, f"{kind} has shape {a.shape}; the model {what} {rows[0]['name']} of shape {want}")


def load_reference(path: Path, input_names: list[str] | None = None, output_names: list[str] | None = None, *,
                   io: dict[str, Any] | None = None) -> list[RefPoint]:
    """The recorded points, in min/opt/max order; the classic layout is one point named with the manifest's
    input/output names (default `input`/`output`).

    Read strictly: a reference crosses the trust boundary with the bundle, so a wrong one is a BadInputError
    (exit 2) saying which array is wrong and how, never a numpy or runtime traceback later. `io`: the manifest's
    io signature, checked against the classic layout's shapes."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path.parent} has no reference.npz", fix="re-export with this deployconv version")
    ref = _read_arrays(path)
    if "input" in ref or "expected" in ref:  # the classic layout
        missing = [k for k in ("input", "expected") if k not in ref]
        if missing:
            raise _bad(path, f"has no {', '.join(missing)} array (found: {', '.join(ref) or 'none'})")
        o_name = (output_names or ["output"])[0]
        point = RefPoint("opt", {(input_names or ["input"])[0]: ref["input"]}, {o_name: ref["expected"]},
                         {o_name: ref["expected_fp64"]} if "expected_fp64" in ref else {})
        if point.batch().dtype.kind != "f":
            raise _bad(path, f"input has dtype {point.batch().dtype}, not a float type")
        _check_point(path, point, classic=True)
        if io:
            _match_io(path, point, io)
        return [point]
    if not ref:
        raise _bad(path, "has no arrays")
    points: dict[str, RefPoint] = {}
    for k, v in ref.items():
        parts = k.split("/", 2)
        if len(parts) != 3 or parts[1] not in ("input", "expected", "expected_fp64"):
            raise BadInputError(f"reference.npz has an unknown entry {k!r}", fix="re-export with this deployconv version")
        point, kind, name = parts
        r = points.setdefault(point, RefPoint(point, {}, {}, {}))
        getattr(r, "inputs" if kind == "input" else kind)[name] = v
    out = sorted(points.values(), key=lambda r: _ORDER.get(r.point, 9))
    for r in out:
        if input_names:
            r.inputs = {n: r.inputs[n] for n in input_names if n in r.inputs}
        if output_names:
            r.expected = {n: r.expected[n] for n in output_names if n in r.expected}
        _check_point(path, r, classic=False)
    return out
