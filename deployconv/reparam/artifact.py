"""Saving and loading a deploy-form model without pickled code.

The file holds the state dict and the model name; loading rebuilds the structure deterministically
(create the train form, reparameterize without verification) and loads the tensors strictly. So the file is
readable with torch.load(weights_only=True) and works for zoo models and user sources alike.
"""

from __future__ import annotations

from pathlib import Path

import torch

from deployconv.core.errors import BadInputError
from deployconv.core.fsio import refuse_overwrite, write_atomic
from deployconv.models import create_model
from deployconv.reparam.walker import reparameterize

FORMAT = "deployconv.deploy/1"


def save_deploy(model: torch.nn.Module, path: str | Path, *, force: bool = False) -> Path:
    path = Path(path)
    refuse_overwrite(path, force)
    report = getattr(model, "reparam_report", None)
    payload = {
        "format": FORMAT,
        "model": getattr(model, "deployconv_name", None),
        "state_dict": model.state_dict(),
        "report": report.to_dict() if report is not None else None,
    }
    write_atomic(path, lambda tmp: torch.save(payload, tmp))
    return path


def load_deploy(path: str | Path) -> torch.nn.Module:

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"deploy file not found: {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or not payload.get("model"):
        raise BadInputError(f"{path} is not a deployconv deploy-form file",
                            fix="create one with `deployconv reparam --model NAME --out FILE`")
    model = reparameterize(create_model(payload["model"]), inplace=True, verify=False)
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        raise BadInputError(f"{path} does not match the deploy form of {payload['model']}",
                            details=[f"missing: {missing[:5]}", f"unexpected: {unexpected[:5]}"],
                            fix="re-create it with the same deployconv version")
    return model.eval()
