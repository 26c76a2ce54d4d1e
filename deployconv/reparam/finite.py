"""Which parameters and buffers hold NaN or Inf, named with the module that holds them: the first thing to say
when a model's output is not finite (a bad checkpoint is far more common than a bad input)."""

from __future__ import annotations

import torch
from torch import nn


def nonfinite_tensors(model: nn.Module, limit: int = 20) -> list[str]:
    """'stem.1.running_var (buffer of BatchNorm2d stem.1): 1 NaN, 0 Inf of 8 values', at most `limit` rows."""
    rows: list[str] = []
    for mod_name, mod in model.named_modules():
        tensors = [("parameter", n, t) for n, t in mod.named_parameters(recurse=False)]
        tensors += [("buffer", n, t) for n, t in mod.named_buffers(recurse=False)]
        for kind, name, t in tensors:
            if t is None or not t.is_floating_point():
                continue
            nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
            if nan or inf:
                where = mod_name or "(the model itself)"
                full = f"{mod_name}.{name}" if mod_name else name
                rows.append(f"{full} ({kind} of {type(mod).__name__} {where}): {nan} NaN, {inf} Inf of "
                            f"{t.numel()} values")
                if len(rows) >= limit:
                    return rows
    return rows
