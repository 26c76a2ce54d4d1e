"""Run a PyTorch model with deployconv's CUDA kernels in place of the PyTorch references, for GPU benchmarks.

Two mechanisms, both reversible and both leaving every other call alone:
  * custom ops (`deployconv::ska`, `deployconv::deform_conv2d`, `deployconv::dcnv4`): a CUDA kernel is registered
    once per op with `torch.library.register_kernel` (the op keeps its reference as the default for every other
    device). The registered function calls our kernel only inside `with cuda_kernels():` and only for the dtypes
    the kernels have; anywhere else it returns the reference, so registering changes no result.
    torch.compile keeps such an op opaque and calls it at run time, so the switch works there too.
  * large-kernel depthwise convs are plain `nn.Conv2d(groups=C)`, which no registration can reach:
    `swap_depthwise(model)` returns a copy whose eligible convs are `KernelDepthwiseConv2d` modules that call the
    dwconv kernel (`depthwise_swap_reason` says why a conv is not eligible).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from deployconv.ops import cuda_ext
from deployconv.ops.dcnv4 import QUALNAME as DCNV4_QUALNAME
from deployconv.ops.dcnv4 import dcnv4 as dcnv4_reference
from deployconv.ops.deform_conv import QUALNAME as DEFORM_CONV_QUALNAME
from deployconv.ops.deform_conv import _check_op_args
from deployconv.ops.deform_conv import deform_conv2d as deform_conv2d_reference
from deployconv.ops.ska import QUALNAME as SKA_QUALNAME
from deployconv.ops.ska import ska as ska_reference

KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SWAPPABLE_OPS = ("ska", "deform_conv2d", "dcnv4")


@dataclass
class KernelSwap:
    """One op's switchable implementation on one device type: `kernel` while active and `supports(*args)`,
    `reference` otherwise."""

    qualname: str
    device_type: str
    kernel: Callable
    reference: Callable
    supports: Callable[..., bool]
    active: int = 0  # nesting depth of the enabling context
    registered: bool = False

    def __call__(self, *args, **kwargs):
        if self.active and self.supports(*args, **kwargs):
            return self.kernel(*args, **kwargs)
        return self.reference(*args, **kwargs)

    def register(self) -> None:
        """Register once; later calls do nothing (torch.library keeps one impl per op and dispatch key)."""
        if not self.registered:
            torch.library.register_kernel(self.qualname, self.device_type, self)
            self.registered = True


_LOCK = threading.Lock()


@contextmanager
def enabled(swaps: list[KernelSwap]) -> Iterator[list[KernelSwap]]:
    """Register `swaps` (once) and route their ops to the kernels inside the block."""
    with _LOCK:
        for s in swaps:
            s.register()
            s.active += 1
    try:
        yield swaps
    finally:
        with _LOCK:
            for s in swaps:
                s.active -= 1


def _same_kernel_dtype(*tensors: Tensor | None) -> bool:
    given = [t for t in tensors if t is not None]
    return bool(given) and given[0].dtype in KERNEL_DTYPES and all(t.dtype == given[0].dtype for t in given)


def _ska_swap() -> KernelSwap:
    return KernelSwap(SKA_QUALNAME, "cuda", lambda x, w: cuda_ext.ska(x, w), ska_reference,
                      lambda x, w: _same_kernel_dtype(x, w))


def _deform_conv2d_swap() -> KernelSwap:
    def kernel(x, weight, offset, bias, mask, stride, padding, dilation, group, offset_group):
        _check_op_args(x, weight, offset, bias, mask, stride, padding, dilation, group, offset_group)
        return cuda_ext.deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask)

    def reference(x, weight, offset, bias, mask, stride, padding, dilation, group, offset_group):
        _check_op_args(x, weight, offset, bias, mask, stride, padding, dilation, group, offset_group)
        return deform_conv2d_reference(x, offset, weight, bias, stride, padding, dilation, mask)

    return KernelSwap(DEFORM_CONV_QUALNAME, "cuda", kernel, reference,
                      lambda x, weight, offset, bias, mask, *_: _same_kernel_dtype(x, weight, offset, bias, mask))


def _dcnv4_swap() -> KernelSwap:
    return KernelSwap(DCNV4_QUALNAME, "cuda", cuda_ext.dcnv4, dcnv4_reference,
                      lambda value, offset_mask, *_: _same_kernel_dtype(value, offset_mask))


_FACTORIES = {"ska": _ska_swap, "deform_conv2d": _deform_conv2d_swap, "dcnv4": _dcnv4_swap}
_SWAPS: dict[str, KernelSwap] = {}


def op_swaps(ops: tuple[str, ...] = SWAPPABLE_OPS) -> list[KernelSwap]:
    """The (process-wide, created once) swaps of the named custom ops."""
    unknown = [o for o in ops if o not in _FACTORIES]
    if unknown:
        raise ValueError(f"no CUDA kernel swap for {unknown}; known: {list(_FACTORIES)}")
    with _LOCK:
        for o in ops:
            if o not in _SWAPS:
                _SWAPS[o] = _FACTORIES[o]()
    return [_SWAPS[o] for o in ops]


@contextmanager
def cuda_kernels(ops: tuple[str, ...] = SWAPPABLE_OPS) -> Iterator[list[KernelSwap]]:
    """Inside the block, CUDA calls of the named deployconv custom ops run our kernels (other dtypes and devices
    keep the reference). The extension is built on the first kernel call, not here."""
    with enabled(op_swaps(ops)) as swaps:
        yield swaps


# --- depthwise convs ----------------------------------------------------------------------------------------------


def depthwise_swap_reason(conv: nn.Module, min_kernel: int = 7) -> str | None:
    """None when `conv` is a depthwise conv the dwconv kernel computes exactly; else why not."""
    if type(conv) is not nn.Conv2d:
        return "not an nn.Conv2d"
    c = conv.in_channels
    if not (conv.groups == c == conv.out_channels and c > 1):
        return "not depthwise (groups == in_channels == out_channels)"
    kh, kw = conv.kernel_size
    if kh != kw:
        return f"kernel {kh}x{kw} is not square"
    if kh < min_kernel:
        return f"kernel {kh}x{kw} is below the large-kernel threshold {min_kernel}"
    if conv.stride[0] != conv.stride[1] or conv.stride[0] not in (1, 2):
        return f"stride {conv.stride}: the kernel has stride 1 or 2"
    if conv.dilation != (1, 1):
        return f"dilation {conv.dilation}: the kernel has none"
    if isinstance(conv.padding, str) or conv.padding[0] != conv.padding[1]:
        return f"padding {conv.padding!r}: the kernel takes one symmetric integer"
    if conv.padding_mode != "zeros":
        return f"padding_mode {conv.padding_mode!r}: the kernel zero-pads"
    return None


class KernelDepthwiseConv2d(nn.Module):
    """A depthwise `nn.Conv2d` computed by deployconv's dwconv kernel (same parameters, shared, not copied)."""

    def __init__(self, conv: nn.Conv2d, kernel: Callable | None = None):
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.stride, self.pad = conv.stride[0], conv.padding[0]
        self.kernel = kernel

    def forward(self, x: Tensor) -> Tensor:
        if self.kernel is None:
            return cuda_ext.dwconv2d(x.contiguous(), self.weight, self.bias, self.stride, self.pad)
        return self.kernel(x, self.weight, self.bias, self.stride, self.pad)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, kernel={self.weight.shape[2]}, stride={self.stride}, pad={self.pad}"


def swap_depthwise(model: nn.Module, min_kernel: int = 7, kernel: Callable | None = None,
                   inplace: bool = False) -> tuple[nn.Module, list[str]]:
    """(model with every eligible depthwise conv computed by the dwconv kernel, the swapped module paths).
    `kernel(x, weight, bias, stride, pad)` overrides the CUDA kernel (tests)."""
    work = model if inplace else copy.deepcopy(model)
    swapped = []
    for path, mod in list(work.named_modules()):
        for name, child in list(mod.named_children()):
            if depthwise_swap_reason(child, min_kernel) is None:
                setattr(mod, name, KernelDepthwiseConv2d(child, kernel))
                swapped.append(f"{path}.{name}" if path else name)
    return work, swapped
