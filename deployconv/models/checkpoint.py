"""Loading official checkpoint files as they are, strictly, with a key report a person can act on."""

from __future__ import annotations

import argparse
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from deployconv.core.errors import BadInputError

# Wrappers official training scripts put around the state dict, tried in this order.
_WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "module")
_SHOW = 5


@dataclass
class LoadReport:
    """What a checkpoint load did; `allowed_missing` lists keys the user explicitly let be absent."""

    path: str
    wrapper: str | None
    stripped_prefix: str | None
    num_tensors: int
    allowed_missing: list[str] = field(default_factory=list)


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], str | None, str | None]:
    """Read a checkpoint file with weights_only=True and unwrap it to a flat state dict.

    Returns (state_dict, wrapper key used or None, stripped prefix or None).
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"checkpoint file not found: {path}", fix="check the path given to --weights")
    try:
        # argparse.Namespace is what DeiT-style training scripts (LSNet's among them) store under 'args';
        # it is a plain attribute bag, safe to allow.
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise  # the disk, not the file's content: deployconv.core.os_errors says what and how to fix
    except Exception as e:  # torch's restricted unpickler on arbitrary bytes raises anything (IndexError, KeyError..)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadInputError(
            f"cannot read checkpoint {path}",
            why=f"torch.load(weights_only=True) failed: {first}",
            fix="pass a PyTorch checkpoint (.pth/.pt) holding tensors; deployconv never unpickles arbitrary code",
        ) from None
    wrapper = None
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], dict):
                obj, wrapper = obj[key], key
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BadInputError(
            f"{path} holds no state dict",
            why="expected a dict of tensors, or one under 'model' / 'state_dict'",
            fix="pass the checkpoint file the official repository released",
        )
    prefix = None
    for p in ("module.", "_orig_mod."):
        if all(k.startswith(p) for k in obj):
            obj = {k[len(p):]: v for k, v in obj.items()}
            prefix = p
    return dict(obj), wrapper, prefix


def _listing(title: str, items: list[str]) -> list[str]:
    if not items:
        return []
    shown = ", ".join(items[:_SHOW]) + (f", ... (+{len(items) - _SHOW} more)" if len(items) > _SHOW else "")
    return [f"{title} ({len(items)}): {shown}"]


def load_checkpoint(
    model: torch.nn.Module,
    path: str | Path,
    *,
    filter_fn: Callable[[dict, torch.nn.Module], dict] | None = None,
    allow_missing: tuple[str, ...] = (),
    optional_keys: tuple[str, ...] = (),
) -> LoadReport:
    """Load strictly: any missing, unexpected or mis-shaped key is an error listing each kind.

    `optional_keys` (from the model's ModelInfo) never loosen anything: when every missing key matches one of
    them, the error names the exact --allow-missing flag that would accept it."""
    sd, wrapper, prefix = read_state_dict(path)
    if filter_fn is not None:
        sd = filter_fn(sd, model)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [
        f"{k} {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in sd and sd[k].shape != own[k].shape
    ]
    # BN's batch counter is training bookkeeping that older torchvision/timm files lack; it never affects
    # inference, so its absence is tolerated (the model keeps 0).
    counters = [k for k in missing if k.endswith("num_batches_tracked")]
    allowed = [k for k in missing if k not in counters and any(fnmatch.fnmatch(k, p) for p in allow_missing)]
    missing = [k for k in missing if k not in allowed and k not in counters]
    if missing or unexpected or mismatched:
        hint = "; keys the model may lack on purpose can be allowed with --allow-missing PATTERN" if missing else ""
        expected_gaps = [p for p in optional_keys if any(fnmatch.fnmatch(k, p) for k in missing)]
        if missing and expected_gaps and all(any(fnmatch.fnmatch(k, p) for p in optional_keys) for k in missing):
            flags = " ".join(f"--allow-missing '{p}'" for p in expected_gaps)
            hint = f"; this model may legitimately lack these keys: pass {flags} (they keep their initial values)"
        raise BadInputError(
            f"checkpoint {path} does not match model {type(model).__name__}",
            details=_listing("missing keys", missing)
            + _listing("unexpected keys", unexpected)
            + _listing("shape mismatches", mismatched),
            why="loading is strict so that a wrong or partial checkpoint never loads silently",
            fix="pass the checkpoint released for this exact variant" + hint,
        )
    model.load_state_dict(sd, strict=not (allowed or counters))
    model.eval()
    # Modules that derive state from loaded tensors (caches) refresh here, whatever the call order.
    for m in model.modules():
        hook = getattr(m, "on_weights_loaded", None)
        if callable(hook):
            hook()
    return LoadReport(str(path), wrapper, prefix, len(sd), allowed)

