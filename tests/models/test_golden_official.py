"""Our zoo models reproduce the OFFICIAL model code: train form and deploy form, fp32, on official-layout weights.

Each `tests/golden/<model>.json` was made by `tools/golden/make_golden.py` from the official repository's code
(commit recorded in the file) on `seeded_state_dict(official.state_dict(), seed)`. Here the same recipe is
applied to OUR model's state dict, written as an official-style checkpoint (`{'model': state_dict}`), loaded
through `create_model(name, weights=...)`, and the logits must match the official ones to 1e-5 (absolute, logits
of order 1), before and after `deployconv.reparam.reparameterize`. If our key layout, shapes or integer buffers
(e.g. `attention_bias_idxs`) differ from the official ones, the state-dict hash differs and the test names the
keys.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from tools.golden.recipe import (
    RECIPE_VERSION,
    integer_buffers_sha256,
    layout,
    seeded_input,
    seeded_state_dict,
    state_dict_sha256,
)

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"
GOLDENS = sorted(GOLDEN_DIR.glob("*.json"))
TOL = 1e-5  # max abs difference on logits (of order 1): far above fp32 rounding (~1e-6), far below any bug


@dataclass
class Case:
    golden: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    model: torch.nn.Module | None
    load_error: Exception | None
    x: torch.Tensor


def _require_family(family: str) -> None:
    """Skip only when the family module does not exist yet; any error inside it must surface."""
    module = f"deployconv.models.{family}"
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} does not exist (ImportError): the {family} family is not in the zoo yet")


@pytest.fixture(scope="module", params=GOLDENS, ids=[p.stem for p in GOLDENS])
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    from deployconv.models import create_model

    golden = json.loads(request.param.read_text())
    _require_family(golden["family"])
    name, seed = golden["model"], golden["seed"]
    sd = seeded_state_dict(create_model(name).state_dict(), seed)
    ckpt = tmp_path_factory.mktemp(name) / f"{name}_official_layout.pth"
    torch.save({"model": sd}, ckpt)
    model, error = None, None
    try:
        model = create_model(name, weights=ckpt)
    except Exception as e:  # reported by the tests below, after the layout diagnosis
        error = e
    return Case(golden, sd, model, error, seeded_input(tuple(golden["input"]["shape"]), seed))


def _layout_diagnosis(golden: dict[str, Any], sd: dict[str, torch.Tensor]) -> list[str]:
    def parse(entries: list[str]) -> dict[str, str]:
        return dict(e.split(" ", 1) for e in entries)

    official, ours = parse(golden["state_dict"]["layout"]), parse(layout(sd))
    missing = sorted(set(official) - set(ours))
    extra = sorted(set(ours) - set(official))
    shapes = [f"{k}: ours {ours[k]} vs official {official[k]}" for k in sorted(set(ours) & set(official))
              if ours[k] != official[k]]
    want_int, have_int = golden["state_dict"]["integer_buffers_sha256"], integer_buffers_sha256(sd)
    ints = [k for k in sorted(set(want_int) & set(have_int)) if want_int[k] != have_int[k]]
    lines = []
    for title, items in (("official keys our model lacks", missing), ("keys the official model lacks", extra),
                         ("shape/dtype differences", shapes), ("integer buffers with other values", ints)):
        if items:
            lines.append(f"{title} ({len(items)}): " + "; ".join(items[:8])
                         + (f"; ... (+{len(items) - 8} more)" if len(items) > 8 else ""))
    return lines


def _compare(name: str, what: str, got: torch.Tensor, want: list, tol: float = TOL) -> None:
    ref = torch.tensor(want, dtype=torch.float32).double()  # the JSON's 9 digits round-trip fp32 exactly
    if got.shape != ref.shape:
        raise AssertionError(f"{name} {what}: logits shape {tuple(got.shape)} vs official {tuple(ref.shape)}")
    if not torch.isfinite(got).all():
        raise AssertionError(f"{name} {what}: non-finite logits")
    err = (got.double() - ref).abs()
    if err.max().item() <= tol:
        return
    worst = int(err.argmax())
    same_top1 = bool((got.argmax(-1) == ref.argmax(-1)).all())
    raise AssertionError(
        f"{name} {what}: max |ours - official| = {err.max().item():.3e} > {tol:.0e} "
        f"(mean {err.mean().item():.3e}, at flat index {worst}: ours {got.flatten()[worst].item():.6f} vs "
        f"official {ref.flatten()[worst].item():.6f}; logits max |.| {ref.abs().max().item():.3f}; "
        f"top-1 {'agrees' if same_top1 else 'DIFFERS'})"
    )


def test_golden_files_present() -> None:
    assert GOLDENS, f"no golden files in {GOLDEN_DIR}; run tools/golden/make_golden.py"


def test_state_dict_matches_official_layout(case: Case) -> None:
    g = case.golden
    assert g["recipe_version"] == RECIPE_VERSION, (
        f"{g['model']}.json was made with recipe v{g['recipe_version']}, the recipe is v{RECIPE_VERSION}: "
        "regenerate the goldens with tools/golden/make_golden.py")
    if state_dict_sha256(case.state_dict) != g["state_dict"]["sha256"]:
        diagnosis = _layout_diagnosis(g, case.state_dict)
        pytest.fail(
            f"{g['model']}: the seeded state dict differs from the official one "
            f"({g['official']['variant_function']} @ {g['official']['repo_url']} {g['official']['commit'][:12]}): "
            "key layout, shapes or integer buffers differ from official.\n  "
            + "\n  ".join(diagnosis or ["same keys, shapes and integer tables: the recipe's values drifted "
                                        "(or a num_batches_tracked differs); regenerate the goldens"]),
            pytrace=False,
        )


def _loaded(case: Case) -> torch.nn.Module:
    if case.model is None:
        pytest.fail(f"{case.golden['model']}: loading the official-layout checkpoint failed: {case.load_error}",
                    pytrace=False)
    return case.model


@torch.no_grad()
def test_train_form_matches_official(case: Case) -> None:
    model = _loaded(case)
    _compare(case.golden["model"], "train form vs official train form", model(case.x), case.golden["logits_train"])


@torch.no_grad()
def test_deploy_form_matches_official(case: Case) -> None:
    from deployconv.reparam import reparameterize

    model = _loaded(case)
    # The comparison with the official logits is the check here; the walker's own per-rewrite fp64
    # verification (slow: a minute for LSNet on 2 cores) only runs to name the culprit after a failure.
    y = reparameterize(model, probe=case.x, verify=False)(case.x)
    name = case.golden["model"]
    try:
        _compare(name, "deploy form vs official train form", y, case.golden["logits_train"])
        _compare(name, "deploy form vs official deploy form", y, case.golden["logits_official_deploy"])
    except AssertionError as e:
        try:
            reparameterize(model, probe=case.x, verify=True)
            note = "the walker's fp64 check passes: the train form itself differs, or a rewrite is exact in fp64"
        except Exception as walker_error:
            note = f"walker check: {walker_error}"
        raise AssertionError(f"{e}\n{note}") from None


def test_recipe_is_deterministic_and_order_free() -> None:
    template = {"b.bn.running_var": torch.zeros(4), "a.conv.weight": torch.zeros(3, 2, 3, 3),
                "m.attention_bias_idxs": torch.arange(6).view(2, 3), "b.bn.num_batches_tracked": torch.tensor(5)}
    one = seeded_state_dict(template, 7)
    two = seeded_state_dict(dict(reversed(template.items())), 7)
    assert state_dict_sha256(one) == state_dict_sha256(two)
    assert state_dict_sha256(one) != state_dict_sha256(seeded_state_dict(template, 8))
    assert torch.equal(one["m.attention_bias_idxs"], template["m.attention_bias_idxs"])
    assert one["b.bn.num_batches_tracked"].item() == 5
    assert ((one["b.bn.running_var"] >= 0.5) & (one["b.bn.running_var"] <= 1.5)).all()
