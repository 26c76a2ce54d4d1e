"""Finding reparameterizable sites in an fx graph by their shape, not by a method.

Walking the graph in order, every node that is a linear op of one input (conv, BatchNorm, average pool,
identity, per-channel scale/shift, DBB's BNAndPad) or a sum of such ops gets an expression: the node it
starts from (its source) and one ConvForm equal to everything between. A chain grows only through nodes
whose output has one user, so the replaced nodes are needed nowhere else; a sum merges its operands when
both start from the same source. The sites are the largest expressions that replace at least two ops.
What looks fusable but is not exactly (a stride mismatch, a non-linearity between, shared weights, padding
after a biased op, a BatchNorm without running statistics) becomes a near miss with its reason.
"""

from __future__ import annotations

import operator

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx import Node

from deployconv.layers.modules import ChannelAffine
from deployconv.reparam.graph import forms
from deployconv.reparam.graph.algebra import merge
from deployconv.reparam.graph.expr import (
    Expr,
    Form,
    Lazy,
    Miss,
    Site,
    _affordable,
    _branch_label,
    _chain,
    _resolve,
)
from deployconv.reparam.graph.forms import ConvForm, Refused

__all__ = ["Expr", "Lazy", "Miss", "Site", "find_sites"]

_VALUE_KEEPING = {"to", "type_as", "contiguous", "detach"}
_SAFE_CONST_METHODS = {"view", "reshape", "unsqueeze", "squeeze", "flatten", "expand", *_VALUE_KEEPING}
_CONST_FUNCTIONS = {operator.add, operator.sub, operator.mul, operator.neg, torch.add, torch.mul}
_CONVS = {F.conv2d, torch.conv2d}
_ADDS = {operator.add, torch.add, operator.iadd}
_MULS = {operator.mul, torch.mul, operator.imul}


class _Matcher:
    def __init__(self, gm: torch.fx.GraphModule):
        self.gm = gm
        self.calls: dict[str, int] = {}
        for n in gm.graph.nodes:
            if n.op == "call_module":
                self.calls[n.target] = self.calls.get(n.target, 0) + 1
        # exprs: the whole chain or sum ending at a node, as long as it is exact (what a sum may merge);
        # tails: the part of it worth fusing on its own (a chain that would cost more fused, e.g. a depthwise
        # conv then a pointwise one, restarts at the op that made it costly).
        self.exprs: dict[Node, Expr] = {}
        self.tails: dict[Node, Expr] = {}
        self.misses: list[Miss] = []
        self._missed_targets: set = set()

    # -- constants -------------------------------------------------------------------------------------
    def const(self, a) -> torch.Tensor | None:
        """The value of a constant operand: a number, a get_attr, or a view/reshape chain of one."""
        if isinstance(a, bool):
            return None
        if isinstance(a, (int, float)):
            return torch.tensor(float(a), dtype=torch.float64)
        if not isinstance(a, Node):
            return None
        if a.op == "get_attr":
            v = self.gm
            for part in a.target.split("."):
                v = getattr(v, part)
            return v.detach().double() if isinstance(v, torch.Tensor) and v.is_floating_point() else None
        if (a.op == "call_method" and a.target in _SAFE_CONST_METHODS) or \
                (a.op == "call_function" and a.target in _CONST_FUNCTIONS):
            if a.op == "call_method" and a.target in _VALUE_KEEPING:
                return self.const(a.args[0])  # .to(device) / .type_as(w): same value, kept in fp64
            args = []
            for x in a.args:
                v = self.const(x) if isinstance(x, Node) else x
                if v is None and isinstance(x, Node):
                    return None
                args.append(v)
            if any(isinstance(v, Node) for v in a.kwargs.values()) or not args:
                return None
            fn = getattr(args[0], a.target) if a.op == "call_method" else a.target
            return fn(*(args[1:] if a.op == "call_method" else args), **a.kwargs)
        return None

    def const_nodes(self, a) -> list[Node]:
        """The nodes of a constant operand (its get_attr leaves and the ops between)."""
        out, todo = [], [a]
        while todo:
            x = todo.pop()
            if isinstance(x, Node) and x not in out:
                out.append(x)
                todo.extend(x.all_input_nodes)
        return out

    @staticmethod
    def per_channel(t: torch.Tensor) -> torch.Tensor | None:
        """t as a per-channel vector when it broadcasts over NCHW by channel only (else None)."""
        if t.dim() > 4:
            return None
        shape = (1,) * (4 - t.dim()) + tuple(t.shape)
        if shape[0] != 1 or shape[2] != 1 or shape[3] != 1:
            return None
        return t.reshape(-1)

    # -- ops of one input --------------------------------------------------------------------------------
    def unary(self, n: Node) -> tuple[Node, Form, str, bool, list[Node], int, int] | None:
        """(input, form, label, is_identity, constant nodes, cost, cost per channel) for a linear op of one
        input, else None. Costs are kernel taps: what the op multiplies per output pixel."""
        if n.op == "call_module":
            if len(n.args) != 1 or n.kwargs or not isinstance(n.args[0], Node):
                return None
            m = self.gm.get_submodule(n.target)
            kind = self._module_kind(m)
            if kind is None:
                return None
            if self.calls[n.target] > 1 and kind != "identity":
                raise Refused(f"shared weights: {n.target} is called {self.calls[n.target]} times")
            inp = n.args[0]
            if kind == "identity":
                return inp, Lazy(), "", True, [], 0, 0
            if kind == "conv":
                f = forms.conv_form(m)
                return inp, f, f"conv{f.describe()}", False, [], f.weight.numel(), 0
            if kind == "bn":
                f = forms.bn_form(m)
                return inp, f, "bn", False, [], f.out_channels, 0
            if kind == "bnpad":
                f = forms.bn_and_pad_form(m)
                return inp, f, "bnpad", False, [], f.out_channels, 0
            if kind == "affine":
                f = forms.affine_form(m.scale, m.shift)
                return inp, f, "affine", False, [], f.out_channels, 0
            if kind == "pool":
                taps = forms.avg_pool_form(m, 1).weight.numel()  # raises Refused for non-convolution pools
                return inp, Lazy((lambda c, m=m: forms.avg_pool_form(m, c),)), "avgpool", False, [], 0, taps
            return None
        if n.op == "call_function" and n.target in _CONVS:
            return self.functional_conv(n)
        if n.op in ("call_function", "call_method") and not n.kwargs and len(n.args) == 2:
            target = n.target
            is_mul = target in _MULS or target == "mul"
            is_add = target in _ADDS or target == "add"
            if not (is_mul or is_add):
                return None
            a, b = n.args
            ca, cb = self.const(a), self.const(b)
            if (ca is None) == (cb is None):
                return None
            inp, c, cnode = (a, cb, b) if cb is not None else (b, ca, a)
            if not isinstance(inp, Node) or (target is operator.iadd and len(inp.users) != 1):
                return None
            vec = self.per_channel(c)
            if vec is None:
                return None
            consts = self.const_nodes(cnode)
            if vec.numel() == 1:
                s = float(vec)
                step = ((lambda ch, s=s: forms.affine_form(torch.full((ch,), s, dtype=torch.float64),
                                                            torch.zeros(ch, dtype=torch.float64)))
                        if is_mul else
                        (lambda ch, s=s: forms.affine_form(torch.ones(ch, dtype=torch.float64),
                                                            torch.full((ch,), s, dtype=torch.float64))))
                return inp, Lazy((step,)), "scale" if is_mul else "shift", False, consts, 0, 1
            ones, zeros = torch.ones_like(vec), torch.zeros_like(vec)
            f = forms.affine_form(vec, zeros) if is_mul else forms.affine_form(ones, vec)
            return inp, f, "scale" if is_mul else "shift", False, consts, vec.numel(), 0
        return None

    def functional_conv(self, n: Node) -> tuple[Node, Form, str, bool, list[Node], int, int] | None:
        """F.conv2d with a constant kernel, e.g. DBB's IdentityBasedConv1x1 (weight + identity, each call)."""
        names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
        bound = {**dict(zip(names, n.args)), **n.kwargs}
        inp, w_node, b_node = bound.get("input"), bound.get("weight"), bound.get("bias")
        if not isinstance(inp, Node) or any(isinstance(bound.get(k), Node) for k in names[3:]):
            return None
        weight = self.const(w_node)
        bias = self.const(b_node) if b_node is not None else None
        if weight is None or weight.dim() != 4 or (b_node is not None and bias is None):
            return None
        groups = int(bound.get("groups", 1))
        conv = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]),
                         bound.get("stride", 1), bound.get("padding", 0), bound.get("dilation", 1), groups,
                         bias=bias is not None, device="meta")
        f = forms.conv_form_of(conv, weight, bias)
        consts = self.const_nodes(w_node) + (self.const_nodes(b_node) if b_node is not None else [])
        return inp, f, f"conv{f.describe()}", False, consts, weight.numel(), 0

    @staticmethod
    def _module_kind(m: nn.Module) -> str | None:
        if type(m) is nn.Identity or (type(m) in (nn.Dropout, nn.Dropout2d) and not m.training):
            return "identity"
        if forms.is_bn_and_pad(m):
            return "bnpad"
        if type(m).forward is nn.Conv2d.forward and isinstance(m, nn.Conv2d):
            return "conv"
        if type(m).forward is nn.BatchNorm2d.forward and isinstance(m, nn.BatchNorm2d):
            return "bn"
        if isinstance(m, ChannelAffine):
            return "affine"
        if type(m) is nn.AvgPool2d:
            return "pool"
        return None

    def _is_sum(self, n: Node) -> bool:
        if n.kwargs or len(n.args) != 2 or not all(isinstance(a, Node) for a in n.args):
            return False
        if n.op == "call_function" and n.target in _ADDS:
            return self.const(n.args[0]) is None and self.const(n.args[1]) is None
        return n.op == "call_method" and n.target == "add" and self.const(n.args[1]) is None

    # -- the walk --------------------------------------------------------------------------------------------
    def miss(self, n: Node, pattern: str, reason: str) -> None:
        key = (n.target if n.op == "call_module" else n.name, reason)
        if key not in self._missed_targets:
            self._missed_targets.add(key)
            self.misses.append(Miss(n, pattern, reason))

    def operand(self, a: Node) -> Expr:
        """An operand of a sum as a branch: its expression if it has one and only the sum uses it, else an
        identity branch starting at the operand itself."""
        e = self.exprs.get(a)
        if e is not None and len(a.users) == 1:
            return e
        return Expr(a, Lazy(), [], 0, "x")

    def visit(self, n: Node) -> None:
        try:
            op = self.unary(n)
        except Refused as e:
            self.miss(n, "chain", str(e))
            return
        if op is not None:
            inp, f, label, ident, consts, cost, cost_pc = op
            fresh = Expr(inp, f, [n], 0 if ident else 1, label, False, list(consts), cost, cost_pc)
            prev = self.exprs.get(inp) if len(inp.users) == 1 else None
            self.exprs[n] = self.tails[n] = fresh
            if prev is None:
                return
            try:
                self.exprs[n] = self._extend(prev, n, f, label, ident, consts, cost, cost_pc)
            except Refused as e:
                self.miss(n, "chain", str(e))
                return
            tail = self._extend(self.tails[inp], n, f, label, ident, consts, cost, cost_pc)
            if _affordable(tail):
                self.tails[n] = tail
            return
        if self._is_sum(n):
            a, b = n.args
            if a is b or (n.target is operator.iadd and len(a.users) != 1):
                return
            ea, eb = self.operand(a), self.operand(b)
            if ea.source is not eb.source:
                self._why_not_same_source(n, ea, eb)
                return
            if isinstance(ea.form, Lazy) and isinstance(eb.form, Lazy):
                return  # channels unknown and nothing to gain (x + pool(x) on its own)
            try:
                c = next(f.in_channels for f in (ea.form, eb.form) if isinstance(f, ConvForm))
                fa, fb = _resolve(ea.form, c), _resolve(eb.form, c)
                form = merge([fa, fb])  # type: ignore[list-item]
            except Refused as e:
                self.miss(n, "parallel", str(e))
                return
            before = ea.total_cost(c) + eb.total_cost(c)
            if form.weight.numel() > before:
                self.miss(n, "parallel", f"cost: the merged {form.describe()} conv (groups {form.groups}) would "
                                         f"multiply {form.weight.numel()} taps per pixel, the branches {before}")
                return
            labels = [_branch_label(e) for e in (ea, eb)]
            self.exprs[n] = self.tails[n] = Expr(ea.source, form, ea.nodes + eb.nodes + [n],
                                                 ea.fusing + eb.fusing + 1, " + ".join(labels), True,
                                                 ea.consts + eb.consts, before, 0)

    @staticmethod
    def _extend(prev: Expr, n: Node, f: Form, label: str, ident: bool, consts: list[Node], cost: int,
                cost_pc: int) -> Expr:
        lab = "-".join(x for x in (prev.label, label) if x) if not prev.parallel else \
            (f"({prev.label})-{label}" if label else prev.label)
        return Expr(prev.source, _chain(prev.form, f), [*prev.nodes, n], prev.fusing + (0 if ident else 1), lab,
                    prev.parallel, prev.consts + consts, prev.cost + cost, prev.cost_pc + cost_pc)

    def _why_not_same_source(self, n: Node, ea: Expr, eb: Expr) -> None:
        """A sum whose branches would share a source but for a non-linear op at most two steps up one of
        them (relu(conv(x)) + conv(x)): a near miss naming that op. Longer paths (residuals) are not."""
        for x, y in ((ea, eb), (eb, ea)):
            if not y.fusing:
                continue  # the other side is a plain skip connection: a residual, not a missed merge
            node, blocker = x.source, None
            for _ in range(2):
                inputs = [a for a in node.all_input_nodes if self.const(a) is None]
                if len(inputs) != 1:
                    break
                if node not in self.exprs and blocker is None:
                    blocker = node
                node = inputs[0]
                if node is y.source:
                    if blocker is not None:
                        what = (type(self.gm.get_submodule(blocker.target)).__name__ if blocker.op == "call_module"
                                else getattr(blocker.target, "__name__", str(blocker.target)))
                        self.miss(n, "parallel", f"non-linearity between: a branch passes through "
                                                 f"{blocker.name} ({what}), which is not linear")
                    return

    def sites(self) -> list[Site]:
        nodes = list(self.gm.graph.nodes)
        for n in nodes:
            self.visit(n)
        consumed: set[Node] = set()
        out = []
        for n in reversed(nodes):  # a site's users are decided first; what they consume is not a root
            e = self.tails.get(n)
            if e is None or n in consumed:
                continue
            consumed.update(e.nodes)
            form = _resolve(e.form, None)
            if e.fusing < 2 or form is None:
                continue
            mods = tuple(x.target for x in e.nodes if x.op == "call_module")
            out.append(Site(n, e.source, form, tuple(e.nodes), tuple(dict.fromkeys(e.consts)),
                            "parallel" if e.parallel else "chain", e.label, mods))
        return out[::-1]


def find_sites(gm: torch.fx.GraphModule) -> tuple[list[Site], list[Miss]]:
    """Sites (disjoint, in graph order) and near misses of one traced unit."""
    m = _Matcher(gm)
    sites = m.sites()
    return sites, m.misses
