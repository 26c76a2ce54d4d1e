"""Zoo summary rows (for `deployconv models`): parameter counts in train and deploy form.

Models are built on the meta device, so even repvgg_b3 costs no memory or time; the deploy form comes
from running the real reparameterization on the meta model (shapes only, no verification).
"""

from __future__ import annotations

import torch

from deployconv.models.registry import get_model_spec, list_models
from deployconv.reparam.walker import count_params, reparameterize


def zoo_row(name: str) -> dict:

    spec = get_model_spec(name)
    with torch.device("meta"):
        model = spec.builder().eval()
    train = count_params(model)
    deploy = count_params(reparameterize(model, inplace=True, verify=False))
    return {"name": name, "family": spec.family, "params_train": train, "params_deploy": deploy,
            "input_size": list(spec.info.input_size), "fixed_hw": spec.info.fixed_hw}


def zoo_rows(pattern: str | None = None) -> list[dict]:
    return [zoo_row(n) for n in list_models(pattern)]
