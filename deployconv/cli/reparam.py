"""`deployconv reparam`: a model into deploy form, verified, with the fusion report. Needs torch (the export
extras); the torch modules are imported when the command runs, so the rest of the CLI stays torch-free."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from deployconv.cli.options import AllowMissingOpt, ForceOpt, JsonOpt, ModelOpt, WeightsOpt, out_option
from deployconv.core.console import print_json
from deployconv.core.errors import BadInputError
from deployconv.core.fsio import refuse_overwrite, safe_name
from deployconv.models import create_model


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """`--input-shape N,C,H,W` (or NxCxHxW)."""
    if text is None:
        return None
    if not re.fullmatch(r"\d+(,\d+)+", text.replace("x", ",")):
        raise BadInputError(f"bad --input-shape {text!r}", fix="use N,C,H,W, e.g. 1,3,224,224")
    return tuple(int(v) for v in text.replace("x", ",").split(","))


def reparam_cmd(
    model: ModelOpt,
    weights: WeightsOpt = None,
    allow_missing: AllowMissingOpt = None,
    out_file: Annotated[Path | None, out_option(
        "Where to save the deploy-form model (default: deployconv_out/<model>-deploy.pt).")] = None,
    input_shape: Annotated[str | None, typer.Option(
        "--input-shape", help="Probe shape N,C,H,W (default: the model's input size, batch 2).")] = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Reparameterize a model into deploy form, verify it, print the fusion report and save it."""
    import torch

    from deployconv.reparam import reparameterize
    from deployconv.reparam.artifact import save_deploy
    from deployconv.reparam.render import render_report  # its package (deployconv.reparam) loads torch

    target = out_file or Path("deployconv_out") / f"{safe_name(model)}-deploy.pt"
    refuse_overwrite(target, force)
    m = create_model(model, weights, allow_missing=tuple(allow_missing or ()))
    shape = parse_shape(input_shape)
    probe = torch.randn(*shape, generator=torch.Generator().manual_seed(0)) if shape else None
    deploy = reparameterize(m, probe=probe)
    save_deploy(deploy, target, force=force)
    report = deploy.reparam_report
    load = getattr(m, "load_report", None)
    if json_out:
        print_json({"report": report.to_dict(), "out": str(target),
                    "weights": None if load is None else load.__dict__})
        return
    render_report(report, saved_to=target, load_report=load)
