"""The model-wide reparameterization walker.

Pre-order: a module is rewritten before its children, and the walk then descends into what the rewrite
returned, so the root module and modules returned by `fuse()` are visited too (timm's walker misses both).
Modules opt in by exposing one of:
  - `fuse()`            -> returns a replacement module (LSNet/LeViT style),
  - `reparameterize()`  -> rewrites in place (timm style; a returned module replaces it),
  - `switch_to_deploy()`-> rewrites in place (RepVGG / UniRepLKNet official style).
After the walk, Conv->BN / Linear->BN / BN->Linear pairs found by torch.fx are folded (plain user models),
then the graph pass (reparam/graph) fuses what no method covers: parallel branches and linear chains found by
their shape in the fx graph, each proven in fp64 at its site (near misses are reported with their reason).
Every rewrite is checked in fp64 on the activations a probe input produces at that module, and the whole
model is checked in fp64 and fp32; a failed check raises CheckFailedError.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from deployconv.core.errors import BadInputError, CheckFailedError
from deployconv.layers.modules import (
    fuse_bn_linear_modules,
    fuse_conv_bn_modules,
    fuse_linear_bn_modules,
    is_bn,
)
from deployconv.models.registry import model_info
from deployconv.reparam.finite import nonfinite_tensors
from deployconv.reparam.graph.fuse import graph_fuse
from deployconv.reparam.pairs import find_pairs
from deployconv.reparam.report import ReparamReport, RewriteRecord

REWRITE_METHODS = ("fuse", "reparameterize", "switch_to_deploy")
_DONE = "_deployconv_reparameterized"


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def output_tensors(out: Any) -> list[torch.Tensor]:
    """Every tensor in a model output (tensor, tuple/list or dict, nested), in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in output_tensors(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in output_tensors(v)]
    return []


def _to64(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.double() if x.is_floating_point() else x
    if isinstance(x, (list, tuple)):
        return type(x)(_to64(v) for v in x)
    if isinstance(x, dict):
        return {k: _to64(v) for k, v in x.items()}
    return x


def diff(a: Any, b: Any) -> tuple[float, float]:
    """(max abs, max abs relative to the reference's max magnitude) over all output tensors."""
    ta, tb = output_tensors(a), output_tensors(b)
    if len(ta) != len(tb) or any(x.shape != y.shape for x, y in zip(ta, tb)):
        return float("inf"), float("inf")
    mabs, scale = 0.0, 0.0
    for x, y in zip(ta, tb):
        x, y = x.double(), y.double()
        if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
            return float("inf"), float("inf")
        mabs = max(mabs, (x - y).abs().max().item() if x.numel() else 0.0)
        scale = max(scale, x.abs().max().item() if x.numel() else 0.0)
    return mabs, mabs / max(scale, 1e-30)


@torch.no_grad()
def _run64(module: nn.Module, args: tuple, kwargs: dict) -> Any:
    return copy.deepcopy(module).double()(*_to64(args), **_to64(kwargs))


def _method(m: nn.Module) -> str | None:
    if getattr(m, _DONE, False):
        return None
    for name in REWRITE_METHODS:
        if callable(getattr(m, name, None)):
            return name
    return None


def _fingerprint(m: nn.Module) -> list[tuple]:
    """Identity of a module's tensors: a rewrite that changes nothing leaves it equal."""
    return [(k, v.data_ptr(), tuple(v.shape)) for k, v in m.state_dict(keep_vars=True).items()] + [
        (k, type(c).__name__) for k, c in m.named_modules()]


class _Walker:
    def __init__(self, captured: dict[int, tuple[tuple, dict]], verify: bool):
        self.captured, self.verify, self.records = captured, verify, []

    @torch.no_grad()
    def apply(self, m: nn.Module, path: str) -> nn.Module:
        name = _method(m)
        if name is None:
            return m
        inputs = self.captured.get(id(m)) if self.verify else None
        ref = _run64(m, *inputs) if inputs else None
        before = count_params(m)
        fingerprint = _fingerprint(m)
        result = getattr(m, name)()
        new = result if isinstance(result, nn.Module) else m
        new.eval()
        object.__setattr__(new, _DONE, True)
        if new is m and _fingerprint(m) == fingerprint:
            return m  # already in deploy form (e.g. its parent's rewrite handled it): nothing to record
        record = RewriteRecord(path or "<root>", f"{type(m).__name__}.{name}", type(m).__name__,
                               before, count_params(new))
        if ref is not None:
            record.max_abs_diff, record.max_rel_diff = diff(ref, _run64(new, *inputs))
        self.records.append(record)
        return new

    def walk(self, m: nn.Module, path: str = "") -> nn.Module:
        m = self.apply(m, path)
        for name, child in list(m.named_children()):
            new = self.walk(child, f"{path}.{name}" if path else name)
            if new is not child:
                setattr(m, name, new)
        return m


def _capture_inputs(model: nn.Module, probe: torch.Tensor | tuple) -> dict[int, tuple[tuple, dict]]:
    """First-call inputs of every module that opts into a rewrite (for per-rewrite checks)."""
    captured: dict[int, tuple[tuple, dict]] = {}
    handles = []

    def hook(mod, args, kwargs):
        captured.setdefault(id(mod), (tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args),
                                      dict(kwargs)))

    for m in model.modules():
        if _method(m):
            handles.append(m.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad():
            model(*_args(probe))
    finally:
        for h in handles:
            h.remove()
    return captured


@torch.no_grad()
def fold_pairs(model: nn.Module) -> list[RewriteRecord]:
    """Fold every fx-found Conv->BN / Linear->BN / BN->Linear pair: fused module in place of the first (or
    the Linear), nn.Identity in place of the BN. Paths stay valid because nothing is removed."""
    records = []
    for pair in find_pairs(model):
        a, b = model.get_submodule(pair.first), model.get_submodule(pair.second)
        if pair.kind == "conv_bn":
            fused, keep, drop = fuse_conv_bn_modules(a, b), pair.first, pair.second
        elif pair.kind == "linear_bn":
            fused, keep, drop = fuse_linear_bn_modules(a, b), pair.first, pair.second
        else:
            fused, keep, drop = fuse_bn_linear_modules(a, b), pair.second, pair.first
        before = count_params(a) + count_params(b)
        model.set_submodule(keep, fused)
        model.set_submodule(drop, nn.Identity())
        records.append(RewriteRecord(f"{pair.first}+{pair.second}", f"fold_{pair.kind}(fx)",
                                     f"{type(a).__name__}+{type(b).__name__}", before, count_params(fused)))
    return records


def _graph_pass(work: nn.Module, probe: torch.Tensor | tuple | None, tolerance: float, report: ReparamReport,
                name: str) -> nn.Module:

    if any(t.is_meta for t in (*work.parameters(), *work.buffers())):
        # Some sites depend on values (a BN shift of zero lets BN->Conv fold through padding) and none can be proven
        # without them: a meta-device model (shapes only) keeps what the methods and pair folds made.
        report.notes.append("graph pass skipped: the model is on the meta device (no values to match or prove)")
        return work
    result = graph_fuse(work, probe, tolerance)
    report.rewrites += result.records
    report.near_misses += result.near_misses
    if result.failures:
        raise CheckFailedError(
            f"graph fusion of {name} failed its fp64 check at {len(result.failures)} site(s); "
            "they were rolled back and the run stops",
            details=[f"{f.path}: {f.label} (fp64 rel {f.max_rel_diff:.3e} > {tolerance:.1e})"
                     for f in result.failures],
            why="the fused conv does not compute what the unfused ops compute on the probe's activations",
            fix="report the site (a deployconv bug); reparameterize(..., graph=False) skips the graph pass",
        )
    return result.model


def _args(probe: torch.Tensor | tuple) -> tuple:
    """A probe is one input tensor, or a tuple of them for a model with several inputs."""
    return probe if isinstance(probe, tuple) else (probe,)


def default_probe(model: nn.Module, batch: int = 2, seed: int = 0) -> torch.Tensor:

    info = model_info(model)
    g = torch.Generator().manual_seed(seed)
    p = next(model.parameters(), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    return torch.randn(batch, *info.input_size, generator=g).to(dtype=dtype)


@torch.no_grad()
def reparameterize(
    model: nn.Module,
    inplace: bool = False,
    *,
    probe: torch.Tensor | tuple | None = None,
    verify: bool = True,
    tolerance: float | None = None,
    graph: bool = True,
) -> nn.Module:
    """Return the deploy-form model; its `.reparam_report` (ReparamReport) says what ran where and how
    exactly the outputs agree.

    Both forms are evaluated in fp64, so the figure isolates the fusion itself: for an fp64 model it proves
    the math (default tolerance 1e-10 relative); for an fp32 model it measures the rounding of the fused
    weights to fp32 (default 1e-5 relative, far below any real fusion bug).
    `graph=False` skips the graph pass (method rewrites and pair folds only)."""
    if not isinstance(model, nn.Module):
        raise BadInputError(f"reparameterize needs a torch.nn.Module, got {type(model).__name__}")
    model.eval()
    work = model if inplace else copy.deepcopy(model)
    if probe is None:
        probe = default_probe(work)
    if tolerance is None:
        p = next(work.parameters(), None)
        tolerance = 1e-10 if p is not None and p.dtype == torch.float64 else 1e-5
    name = getattr(model, "deployconv_name", type(model).__name__)
    report = ReparamReport(model=name, probe_shape=[list(a.shape) for a in probe] if isinstance(probe, tuple) else list(probe.shape), params_before=count_params(work),
                           params_after=0, tolerance_fp64_rel=tolerance)
    if verify:
        try:
            ref32 = work(*_args(probe))
        except Exception as e:
            raise BadInputError(
                f"the probe input {report.probe_shape} does not run through {name}",
                why=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                fix="pass a probe of the model's input shape (CLI: --input-shape N,C,H,W)",
            ) from None
        ref64 = _run64(work, _args(probe), {})
        bad = sum(int((~torch.isfinite(t)).sum()) for t in output_tensors(ref32) + output_tensors(ref64))
        if bad:

            culprits = nonfinite_tensors(work)
            raise CheckFailedError(
                f"{name} produces NaN/Inf on the probe input before any rewrite ({bad} values)"
                + (f"; {len(culprits)} tensor(s) of the model are not finite:" if culprits else ""),
                details=culprits,
                why="a fusion cannot be verified against a train form that is not finite",
                fix="fix or replace the tensors named above (a bad checkpoint?)" if culprits
                else "every parameter and buffer is finite: check the input shape/scale",
            )
        captured = _capture_inputs(work, probe)
    else:
        captured = {}
    walker = _Walker(captured, verify)
    work = walker.walk(work)
    report.rewrites = walker.records
    try:
        report.rewrites += fold_pairs(work)
    except Exception as e:  # tracing is best effort; what is left is reported below
        report.notes.append(f"fx pair folding skipped: {type(e).__name__}: {e}")
    if graph:
        work = _graph_pass(work, probe if verify else None, tolerance, report, name)
    work.eval()
    report.params_after = count_params(work)
    report.remaining_batchnorm = [p for p, m in work.named_modules() if is_bn(m)]
    for attr in ("deployconv_name", "deployconv_info"):
        if hasattr(model, attr):
            setattr(work, attr, getattr(model, attr))
    if verify:
        report.fp64_max_abs_diff, report.fp64_max_rel_diff = diff(ref64, _run64(work, _args(probe), {}))
        report.fp32_max_abs_diff, report.fp32_max_rel_diff = diff(ref32, work(*_args(probe)))
        report.passed = report.fp64_max_rel_diff <= tolerance
        if not report.passed:
            worst = max((r for r in report.rewrites if r.max_rel_diff is not None),
                        key=lambda r: r.max_rel_diff, default=None)
            raise CheckFailedError(
                f"reparameterized {name} is not equivalent to its train form",
                why=f"fp64 max relative difference {report.fp64_max_rel_diff:.3e} > tolerance {tolerance:.1e}"
                + (f"; worst single rewrite: {worst.rewrite} at {worst.path} ({worst.max_rel_diff:.3e})"
                   if worst else ""),
                fix="a module's fuse()/reparameterize() is wrong; run with --debug and inspect that module",
            )
    else:
        report.notes.append("verification disabled")
    object.__setattr__(work, "reparam_report", report)
    return work
