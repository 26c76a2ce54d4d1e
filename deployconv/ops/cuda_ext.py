"""The deployconv CUDA kernels (plugins_cpp/kernels) as PyTorch functions, for GPU tests and benchmarks.

`load_extension()` compiles plugins_cpp/torch_ext + kernels/*.cu once per source version into
`~/.cache/deployconv/torch_ext/<hash>` (the hash covers every source and header, the torch version and its CUDA
version, so an edit or a torch upgrade rebuilds and nothing stale is ever loaded) with
`torch.utils.cpp_extension.load`; where ninja is missing (it is what `load` needs) the same sources are built by
setuptools in a subprocess instead. Arch: torch's default, the visible GPU's (TORCH_CUDA_ARCH_LIST overrides).
The wrappers take the reference functions' arguments (deployconv/ops/*.py), validate them with the references'
own checks (so a bad call fails the same way on both), and call the kernel on the current CUDA stream.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

from deployconv.core.errors import BadInputError, MissingEnvironmentError
from deployconv.ops.dcnv4 import _check as _check_dcnv4
from deployconv.ops.dcnv4 import padded_dim
from deployconv.ops.deform_conv import _check as _check_deform
from deployconv.ops.deform_conv import _pair
from deployconv.ops.ska import _check as _check_ska

NATIVE_DIR = Path(__file__).resolve().parents[2] / "plugins_cpp"
_EXT_PREFIX = "deployconv_kernels_ext"
_NVCC_FLAGS = ["-O3", "-std=c++17"]  # not --use_fast_math: coordinates and floor() must match the reference


# --- pure decisions -------------------------------------------------------------------------------------------


def extension_sources(native_dir: Path = NATIVE_DIR) -> list[Path]:
    """The translation units: every kernel (.cu) and the binding (.cpp)."""
    return sorted((native_dir / "kernels").glob("*.cu")) + sorted((native_dir / "torch_ext").glob("*.cpp"))


def hashed_files(native_dir: Path = NATIVE_DIR) -> list[Path]:
    """Everything the build reads from the repository: sources and headers."""
    kernels = native_dir / "kernels"
    headers = sorted(kernels.glob("*.h")) + sorted(kernels.glob("*.cuh"))
    return extension_sources(native_dir) + headers


def source_hash(files: list[Path], salt: str) -> str:
    """16 hex digits over each file's name and bytes plus `salt` (torch / CUDA versions, flags)."""
    h = hashlib.sha256(salt.encode())
    for f in sorted(files, key=lambda p: p.name):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def missing_requirements(torch_cuda: str | None, cuda_available: bool, cuda_home: str | None,
                         have_sources: bool) -> list[str]:
    """Why the extension cannot be built or used here (empty list: it can)."""
    missing = []
    if torch_cuda is None:  # torch then reports no toolkit either: nothing more to say about nvcc
        missing.append("this PyTorch build has no CUDA support (torch.version.cuda is None)")
    else:
        if not cuda_available:
            missing.append("no CUDA device is visible (torch.cuda.is_available() is False)")
        if cuda_home is None:
            missing.append("torch found no CUDA toolkit (it looks at $CUDA_HOME, then nvcc on PATH, then "
                           "/usr/local/cuda)")
    if not have_sources:
        missing.append(f"the native sources are not in {NATIVE_DIR} (an installed wheel has no plugins_cpp/)")
    return missing


def cache_root() -> Path:
    """DEPLOYCONV_CACHE, else ~/.cache/deployconv."""
    return Path(os.environ.get("DEPLOYCONV_CACHE", Path.home() / ".cache" / "deployconv"))


# --- build and load -------------------------------------------------------------------------------------------


def _check_environment() -> None:
    from torch.utils.cpp_extension import CUDA_HOME

    missing = missing_requirements(torch.version.cuda, torch.cuda.is_available(), CUDA_HOME,
                                   bool(extension_sources()))
    if missing:
        raise MissingEnvironmentError(
            "cannot build the deployconv CUDA kernels for PyTorch",
            details=missing,
            why="the torch extension is compiled on first use with nvcc for the visible GPU",
            fix="run on a machine with an NVIDIA GPU, a CUDA build of PyTorch and the matching CUDA toolkit "
                "(nvcc on PATH or CUDA_HOME set), from a checkout of the repository",
        )


def build_directory() -> tuple[str, Path]:
    """(module name, build dir) for the current sources and toolchain."""
    salt = f"torch={torch.__version__};cuda={torch.version.cuda};flags={' '.join(_NVCC_FLAGS)};" \
           f"archs={os.environ.get('TORCH_CUDA_ARCH_LIST', '')}"
    digest = source_hash(hashed_files(), salt)
    return f"{_EXT_PREFIX}_{digest}", cache_root() / "torch_ext" / digest


def _build_with_setuptools(name: str, build_dir: Path, verbose: bool) -> ModuleType:
    """torch's BuildExtension without ninja, in a subprocess (setuptools wants a process of its own)."""
    script = textwrap.dedent(f"""
        from setuptools import setup
        from torch.utils.cpp_extension import BuildExtension, CUDAExtension
        setup(name={name!r}, script_args=["build_ext", "--build-lib", {str(build_dir)!r},
                                           "--build-temp", {str(build_dir / "tmp")!r}],
              ext_modules=[CUDAExtension({name!r}, {[str(s) for s in extension_sources()]!r},
                                         include_dirs=[{str(NATIVE_DIR / "kernels")!r}],
                                         extra_compile_args={{"cxx": ["-O3"], "nvcc": {_NVCC_FLAGS!r}}})],
              cmdclass={{"build_ext": BuildExtension.with_options(use_ninja=False)}})
    """)
    built = sorted(build_dir.glob(f"{name}*.so"))
    if not built:
        r = subprocess.run([sys.executable, "-c", script], cwd=build_dir, capture_output=not verbose, text=True)
        built = sorted(build_dir.glob(f"{name}*.so"))
        if r.returncode != 0 or not built:
            raise RuntimeError(f"building the deployconv torch extension failed:\n{r.stdout}\n{r.stderr}")
    spec = importlib.util.spec_from_file_location(name, built[0],
                                                  loader=importlib.machinery.ExtensionFileLoader(name, str(built[0])))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def load_extension(verbose: bool = False) -> ModuleType:
    """The compiled extension module (built on first call per source version; cached per process)."""
    _check_environment()
    from torch.utils import cpp_extension

    name, build_dir = build_directory()
    build_dir.mkdir(parents=True, exist_ok=True)
    if not cpp_extension.is_ninja_available():
        return _build_with_setuptools(name, build_dir, verbose)
    return cpp_extension.load(
        name=name,
        sources=[str(s) for s in extension_sources()],
        extra_include_paths=[str(NATIVE_DIR / "kernels")],
        extra_cflags=["-O3"],
        extra_cuda_cflags=_NVCC_FLAGS,
        build_directory=str(build_dir),
        verbose=verbose,
    )


# --- wrappers -------------------------------------------------------------------------------------------------


def _on_cuda(op: str, **tensors: Tensor | None) -> None:
    """Every given tensor on one CUDA device with one dtype (the kernels have one T)."""
    given = {k: t for k, t in tensors.items() if t is not None}
    first = next(iter(given.values()))
    for k, t in given.items():
        if not t.is_cuda:
            raise BadInputError(f"{op}: {k} is on {t.device}", why="the CUDA kernels take CUDA tensors",
                                fix="move the tensors to the GPU (.cuda())")
        if t.dtype != first.dtype:
            raise BadInputError(f"{op}: {k} is {t.dtype}, the others {first.dtype}",
                                why="the kernel reads all tensors with one element type",
                                fix="cast them to one of float32, float16, bfloat16")
    if first.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise BadInputError(f"{op}: dtype {first.dtype}", why="the kernels exist for float32, float16 and bfloat16",
                            fix="cast the inputs to one of those")


def _contig(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


def ska(x: Tensor, w: Tensor, scale: Tensor | None = None, shift: Tensor | None = None,
        residual: Tensor | None = None) -> Tensor:
    """`deployconv.ops.ska.ska(x, w)`, then `scale[c] * y + shift[c] + residual` fused (each optional; scale and
    shift are read as fp32)."""
    _check_ska(x, w)
    _on_cuda("ska", x=x, w=w, residual=residual)
    c = x.shape[1]
    aff = []
    for name, t in (("scale", scale), ("shift", shift)):
        if t is not None and t.numel() != c:
            raise BadInputError(f"ska: {name} has {t.numel()} elements for {c} channels", why="one per channel")
        aff.append(None if t is None else t.detach().to(device=x.device, dtype=torch.float32).reshape(c).contiguous())
    if residual is not None and residual.shape != x.shape:
        raise BadInputError(f"ska: residual {tuple(residual.shape)} for x {tuple(x.shape)}", why="same shape as x")
    return load_extension().ska(x.contiguous(), w.contiguous(), aff[0], aff[1], _contig(residual))


def deform_conv2d(
    input: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0, dilation: int | tuple[int, int] = 1,
    mask: Tensor | None = None,
) -> Tensor:
    """`deployconv.ops.deform_conv.deform_conv2d` (torchvision's signature) on the fused CUDA kernel."""
    st, pd, dl = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    _check_deform(input, offset, weight, bias, mask, st, pd, dl)
    _on_cuda("deform_conv2d", input=input, offset=offset, weight=weight, bias=bias, mask=mask)
    return load_extension().deform_conv2d(input.contiguous(), weight.contiguous(), offset.contiguous(),
                                          _contig(bias), _contig(mask), st[0], st[1], pd[0], pd[1], dl[0], dl[1])


def dcnv4(
    value: Tensor, offset_mask: Tensor, kernel_h: int, kernel_w: int, stride_h: int, stride_w: int, pad_h: int,
    pad_w: int, dilation_h: int, dilation_w: int, group: int, group_channels: int, offset_scale: float,
    remove_center: int,
) -> Tensor:
    """`deployconv.ops.dcnv4.dcnv4` on the CUDA kernel. The kernel reads offset_mask with the official padded
    width P = ceil(G*K*3/8)*8; another width (the reference accepts any P >= G*K*3) is re-packed first."""
    remove_center = int(remove_center)
    _, _, k = _check_dcnv4(value, offset_mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
                     dilation_w, group, group_channels, offset_scale, remove_center)
    _on_cuda("dcnv4", value=value, offset_mask=offset_mask)
    p = padded_dim(group, kernel_h, kernel_w, remove_center)
    if offset_mask.shape[3] != p:
        used = offset_mask[..., : group * k * 3]
        offset_mask = torch.nn.functional.pad(used, (0, p - used.shape[3]))
    return load_extension().dcnv4(value.contiguous(), offset_mask.contiguous(), kernel_h, kernel_w, stride_h,
                                  stride_w, pad_h, pad_w, dilation_h, dilation_w, group, group_channels,
                                  float(offset_scale), remove_center)


def dwconv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1,
             padding: int | None = None) -> Tensor:
    """Depthwise conv, NCHW: `F.conv2d(x, weight, bias, stride, padding, groups=C)` with a square (C, 1, k, k)
    weight; padding defaults to (k - 1) // 2 ("same" at stride 1 for odd k). Stride 1 or 2."""
    if x.dim() != 4 or weight.dim() != 4 or tuple(weight.shape[:2]) != (x.shape[1], 1) \
            or weight.shape[2] != weight.shape[3]:
        raise BadInputError(f"dwconv2d: x {tuple(x.shape)} and weight {tuple(weight.shape)}",
                            why="x must be (N, C, H, W) and weight (C, 1, k, k)")
    if bias is not None and tuple(bias.shape) != (x.shape[1],):
        raise BadInputError(f"dwconv2d: bias {tuple(bias.shape)}", why=f"expected ({x.shape[1]},)")
    k = weight.shape[2]
    pad = (k - 1) // 2 if padding is None else int(padding)
    if stride not in (1, 2) or pad < 0:
        raise BadInputError(f"dwconv2d: stride={stride}, padding={pad}", why="the kernel has stride 1 or 2, pad >= 0")
    if x.shape[2] + 2 * pad < k or x.shape[3] + 2 * pad < k:
        raise BadInputError(f"dwconv2d: a {k}x{k} kernel on {tuple(x.shape[2:])} with padding {pad}",
                            why="the output would be empty")
    _on_cuda("dwconv2d", x=x, weight=weight, bias=bias)
    return load_extension().dwconv2d(x.contiguous(), weight.contiguous(), _contig(bias), int(stride), pad)
