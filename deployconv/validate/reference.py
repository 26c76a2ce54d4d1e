"""reference.npz, read strictly: numeric arrays only (never pickles), the keys, dtypes and shapes the model needs.

A reference crosses the trust boundary with the bundle; a wrong one is a BadInputError (exit 2) that says which
array is wrong and how, never a numpy or ONNX Runtime traceback later."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deployconv.core.errors import BadInputError

REQUIRED = ("input", "expected")
_FIX = "re-export (reference.npz is written by `deployconv export`), or copy the bundle again"


@dataclass(frozen=True)
class Reference:
    input: np.ndarray
    expected: np.ndarray


def _bad(path: Path, what: str) -> BadInputError:
    return BadInputError(f"{path}: {what}", fix=_FIX)


def load_reference(path: Path, io: dict[str, Any] | None = None) -> Reference:
    """The input and expected arrays of `path`, checked: float arrays, the same number of samples, and (with the
    manifest's `io`) the model's input shape after the batch axis and rank of its output."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in REQUIRED if k not in data.files]
            if missing:
                raise _bad(path, f"has no {', '.join(missing)} array (found: {', '.join(data.files) or 'none'})")
            arrays = {k: data[k] for k in REQUIRED}
    except BadInputError:
        raise
    except ValueError as e:  # object arrays (pickles) are refused by allow_pickle=False
        raise _bad(path, f"cannot be read without running code or is malformed ({str(e)[:160]})") from None
    except (zipfile.BadZipFile, EOFError, KeyError, OSError) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise
        raise _bad(path, f"is not a valid .npz ({type(e).__name__}: {str(e)[:160]})") from None
    inp, exp = arrays["input"], arrays["expected"]
    for name, a in (("input", inp), ("expected", exp)):
        if a.dtype.kind != "f":
            raise _bad(path, f"{name} has dtype {a.dtype}, not a float type")
        if a.ndim < 1 or a.shape[0] == 0:
            raise _bad(path, f"{name} has shape {a.shape}: no samples")
        if not np.isfinite(a).all():
            raise _bad(path, f"{name} holds NaN or Inf")
    if inp.shape[0] != exp.shape[0]:
        raise _bad(path, f"input has {inp.shape[0]} samples but expected has {exp.shape[0]}")
    if io:
        _match_io(path, inp, exp, io)
    return Reference(inp, exp)


def _match_io(path: Path, inp: np.ndarray, exp: np.ndarray, io: dict[str, Any]) -> None:
    ins, outs = io.get("inputs") or [], io.get("outputs") or []
    if ins:
        want = ins[0]["shape"]
        if len(want) != inp.ndim or any(isinstance(w, int) and w > 0 and w != g
                                        for w, g in zip(want[1:], inp.shape[1:])):
            raise _bad(path, f"input has shape {inp.shape}; the model takes {ins[0]['name']} of shape {want}")
    if outs:
        want = outs[0]["shape"]
        if len(want) != exp.ndim or any(isinstance(w, int) and w > 0 and w != g
                                        for w, g in zip(want[1:], exp.shape[1:])):
            raise _bad(path, f"expected has shape {exp.shape}; the model gives {outs[0]['name']} of shape {want}")
