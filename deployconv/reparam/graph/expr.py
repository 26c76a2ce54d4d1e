"""The values the site matcher (match.py) works with: an expression (a source node and one ConvForm equal to
every op from it to here, with what it replaces and what it costs), a channel-preserving op not yet resolved
to a channel count (Lazy), a found site and a near miss. Chaining and resolving forms live here too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch.fx import Node

from deployconv.reparam.graph import forms
from deployconv.reparam.graph.algebra import compose
from deployconv.reparam.graph.forms import ConvForm

Factory = Callable[[int], ConvForm]


@dataclass(frozen=True)
class Lazy:
    """Channel-preserving ops whose channel count is not known yet (an identity, a pool, a scalar scale on
    the source): resolved when they meet a conv or BN (the other branch, the next op)."""

    steps: tuple[Factory, ...] = ()

    def at(self, channels: int) -> ConvForm:
        form = forms.identity_form(channels)
        for step in self.steps:
            form = compose(form, step(channels))
        return form


Form = ConvForm | Lazy


@dataclass
class Expr:
    source: Node
    form: Form
    nodes: list[Node]  # replaced by the fused module, in graph order
    fusing: int  # ops that disappear: convs, norms, pools, scales, sums
    label: str  # pattern text, e.g. "conv3x3-bn + conv1x1-bn + bn(x)"
    parallel: bool = False
    consts: list[Node] = field(default_factory=list)  # constant operands (get_attr chains) of the ops
    cost: int = 0  # multiply-adds per output pixel of the unfused ops (kernel taps), fixed part ...
    cost_pc: int = 0  # ... and per channel, for ops whose channel count is not known yet

    def total_cost(self, channels: int) -> int:
        return self.cost + self.cost_pc * channels


@dataclass(frozen=True)
class Site:
    root: Node
    source: Node
    form: ConvForm
    nodes: tuple[Node, ...]
    consts: tuple[Node, ...]
    pattern: str  # "parallel" | "chain"
    label: str
    modules: tuple[str, ...]


@dataclass(frozen=True)
class Miss:
    node: Node
    pattern: str
    reason: str


def _chain(a: Form, b: Form) -> Form:
    if isinstance(a, Lazy) and isinstance(b, Lazy):
        return Lazy(a.steps + b.steps)
    if isinstance(a, Lazy):
        return compose(a.at(b.in_channels), b)  # type: ignore[union-attr]
    if isinstance(b, Lazy):
        return compose(a, b.at(a.out_channels))
    return compose(a, b)


def _resolve(form: Form, channels: int | None) -> ConvForm | None:
    if isinstance(form, ConvForm):
        return form
    return form.at(channels) if channels is not None else None


def _affordable(e: Expr) -> bool:
    """Fused, the expression multiplies no more kernel taps per pixel than its ops do apart."""
    if not isinstance(e.form, ConvForm):
        return True
    return e.form.weight.numel() <= e.total_cost(e.form.out_channels)


def _branch_label(e: Expr) -> str:
    if not e.fusing:
        return "x"
    return e.label if e.parallel or e.label.startswith("conv") else f"{e.label}(x)"
