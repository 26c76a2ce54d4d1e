"""Golden logits of the OFFICIAL model code on seeded weights in the official key layout.

    PYTHONPATH=/tmp/golden-site python tools/golden/make_golden.py --family lsnet \
        --official-repo /tmp/official/lsnet --out tests/golden/ [--models lsnet_t lsnet_t_distill]

`--official-repo` is a checkout (or the extracted files) of the official repository; it is imported from where
it lies and never copied into this repository. `--out` is a directory (one `<model>.json` per model) or, with a
single model, a `.json` path. `timm` (LSNet pins 0.5.4; UniRepLKNet only needs its layers and registry) must
be importable, e.g. from a scratch `pip install --target` directory on PYTHONPATH.

For each model: build the official variant in train form, load `seeded_state_dict(official.state_dict(), seed)`
strictly, switch to eval (after loading: LSNet's Attention caches its bias table in `.train(False)`), run it in
fp32 on `seeded_input((2, 3, 224, 224), seed)`, apply the official reparameterization and run again. The JSON
holds both logit sets, the state-dict hash and layout, and provenance (repository, commit, variant function).

Stubs (installed only for modules that are not importable, and printed): `torchvision` (timm 0.5.4 imports a few
names at import time; none is used to build or run a model), `triton` (the official LSNet SKA has only a Triton
GPU kernel: the module is imported with a no-op `triton.jit`, then `SKA.forward` is replaced by the plain
PyTorch brute-force sum of the SKA formula, the same math the Triton kernel computes).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import math
import subprocess
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tools.golden.recipe import (  # noqa: E402
    RECIPE_VERSION,
    integer_buffers_sha256,
    layout,
    seeded_input,
    seeded_state_dict,
    state_dict_sha256,
)

FORMAT_VERSION = 1
DEFAULT_SEED = 20250
INPUT_SHAPE = (2, 3, 224, 224)

STUBBED: list[str] = []


# --------------------------------------------------------------------------------------------- stubs
class _StubModule(types.ModuleType):
    """A module that provides only the listed names (placeholders); anything else raises AttributeError, so
    the importing code's own `try: from x import y / except ImportError` fallbacks still run."""

    def __init__(self, name: str, names: dict[str, Any]):
        super().__init__(name)
        self.__dict__.update(names)
        self.__path__: list[str] = []  # a package, so submodules can be registered under it


def _placeholder(qualname: str) -> type:
    def _fail(*_a: Any, **_k: Any) -> None:
        raise RuntimeError(f"{qualname} is a stub installed by make_golden.py; it must not be used")

    return type(qualname.rsplit(".", 1)[-1], (), {"__init__": _fail, "__module__": qualname.rsplit(".", 1)[0]})


def _install_stub(name: str, names: tuple[str, ...] = ()) -> _StubModule:
    mod = _StubModule(name, {n: _placeholder(f"{name}.{n}") for n in names})
    sys.modules[name] = mod
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, mod)
    STUBBED.append(name + (f" ({', '.join(names)})" if names else ""))
    return mod


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def stub_torchvision() -> None:
    """timm 0.5.4 imports these torchvision names at import time (data transforms, datasets, utils); none is
    used to build or run a model."""
    if _importable("torchvision"):
        return
    _install_stub("torchvision")
    _install_stub("torchvision.transforms")
    _install_stub("torchvision.transforms.functional")  # no InterpolationMode -> timm's PIL fallback
    _install_stub("torchvision.datasets", ("CIFAR100", "CIFAR10", "MNIST", "QMNIST", "KMNIST", "FashionMNIST",
                                           "ImageNet", "ImageFolder"))
    _install_stub("torchvision.ops")
    _install_stub("torchvision.ops.misc", ("FrozenBatchNorm2d",))


def stub_triton() -> None:
    """Enough of `triton` for LSNet's model/ska.py to import: `triton.jit` returns the function unchanged (the
    kernels are never launched: SKA.forward is replaced below), `triton.language` offers the dtype names."""
    if _importable("triton"):
        return
    triton = _install_stub("triton")
    tl = _install_stub("triton.language")
    triton.jit = lambda fn=None, **_k: fn if fn is not None else (lambda f: f)
    triton.cdiv = lambda a, b: (a + b - 1) // b
    for n in ("constexpr", "float16", "float32", "float64"):
        setattr(tl, n, object())
    STUBBED[-2] += " (jit = identity, cdiv)"
    STUBBED[-1] += " (constexpr, float16, float32, float64)"


def ska_bruteforce(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """out[b,c,h,w] = sum_{i,j} x[b,c,h-p+i,w-p+j] * w[b, c mod G, ks*i+j, h, w], zero padded, stride 1, in
    the same (i, j) order as the official kernel. x: (B,C,H,W), w: (B,G,ks*ks,H,W)."""
    _, c, h, width = x.shape
    g = w.shape[1]
    ks = math.isqrt(w.shape[2])
    pad = (ks - 1) // 2
    xp = F.pad(x, (pad, pad, pad, pad))
    wc = w[:, torch.arange(c, device=w.device) % g]  # channel c uses weight set c mod G (interleaved)
    out = torch.zeros_like(x)
    for i in range(ks):
        for j in range(ks):
            out = out + xp[:, :, i:i + h, j:j + width] * wc[:, :, ks * i + j]
    return out


# --------------------------------------------------------------------------------------------- families
@dataclass(frozen=True)
class Family:
    repo_url: str
    module: str  # the official module that defines the variants
    files: tuple[str, ...]  # official files imported (provenance)
    variants: dict[str, str]  # our zoo name -> official variant function
    deploy_name: str  # the official reparameterization, as recorded in the JSON
    default_models: tuple[str, ...]
    prepare: Callable[[], None]  # stubs / patches before importing `module`
    deploy: Callable[[torch.nn.Module], torch.nn.Module]  # official reparameterization


def _prepare_lsnet() -> None:
    stub_torchvision()
    stub_triton()
    ska = importlib.import_module("model.ska")

    def forward(self: torch.nn.Module, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return ska_bruteforce(x, w)

    ska.SKA.forward = forward
    STUBBED.append("model.ska.SKA.forward -> PyTorch brute-force SKA (the Triton kernel needs a GPU)")


def _deploy_lsnet(model: torch.nn.Module) -> torch.nn.Module:
    utils = importlib.import_module("utils")
    model = copy.deepcopy(model)
    utils.replace_batchnorm(model)
    return model


def _prepare_unireplknet() -> None:
    stub_torchvision()


def _deploy_unireplknet(model: torch.nn.Module) -> torch.nn.Module:
    model = copy.deepcopy(model)
    model.reparameterize_unireplknet()
    return model


def _prepare_repvgg() -> None:
    pass


def _deploy_repvgg(model: torch.nn.Module) -> torch.nn.Module:
    return importlib.import_module("repvgg").repvgg_model_convert(model, do_copy=True)


FAMILIES: dict[str, Family] = {
    "lsnet": Family(
        repo_url="https://github.com/jameslahm/lsnet",
        module="model.lsnet",
        files=("model/lsnet.py", "model/ska.py", "utils.py"),
        variants={n: n for n in ("lsnet_t", "lsnet_t_distill", "lsnet_s", "lsnet_s_distill", "lsnet_b",
                                 "lsnet_b_distill")},
        deploy_name="utils.replace_batchnorm",
        default_models=("lsnet_t", "lsnet_t_distill", "lsnet_s", "lsnet_b"),
        prepare=_prepare_lsnet,
        deploy=_deploy_lsnet,
    ),
    "unireplknet": Family(
        repo_url="https://github.com/AILab-CVC/UniRepLKNet",
        module="unireplknet",
        files=("unireplknet.py",),
        variants={n: n for n in ("unireplknet_a", "unireplknet_f", "unireplknet_p", "unireplknet_n",
                                 "unireplknet_t", "unireplknet_s")},
        deploy_name="UniRepLKNet.reparameterize_unireplknet",
        default_models=("unireplknet_a", "unireplknet_f"),
        prepare=_prepare_unireplknet,
        deploy=_deploy_unireplknet,
    ),
    "repvgg": Family(
        repo_url="https://github.com/DingXiaoH/RepVGG",
        module="repvgg",
        files=("repvgg.py", "se_block.py"),
        variants={
            "repvgg_a0": "create_RepVGG_A0", "repvgg_a1": "create_RepVGG_A1", "repvgg_a2": "create_RepVGG_A2",
            "repvgg_b0": "create_RepVGG_B0", "repvgg_b1": "create_RepVGG_B1", "repvgg_b1g2": "create_RepVGG_B1g2",
            "repvgg_b2": "create_RepVGG_B2", "repvgg_b3": "create_RepVGG_B3",
        },
        deploy_name="repvgg_model_convert",
        default_models=("repvgg_a0", "repvgg_b1g2"),
        prepare=_prepare_repvgg,
        deploy=_deploy_repvgg,
    ),
}


# --------------------------------------------------------------------------------------------- running
def _git_commit(repo: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def _rounded(t: torch.Tensor) -> list:
    """fp32 values with 9 significant digits: enough to round-trip every float32 exactly."""
    return [[float(f"{v:.9g}") for v in row] for row in t.detach().float().tolist()]


def _summary(t: torch.Tensor) -> dict[str, float]:
    t = t.double()
    return {"std": round(t.std().item(), 6), "mean": round(t.mean().item(), 6),
            "max_abs": round(t.abs().max().item(), 6)}


@torch.no_grad()
def make_one(fam_name: str, mod: types.ModuleType, name: str, seed: int, commit: str | None) -> dict[str, Any]:
    fam = FAMILIES[fam_name]
    fn_name = fam.variants[name]
    model = getattr(mod, fn_name)()
    model.train()  # as constructed; weights are loaded before .eval() (LSNet caches attention biases there)
    sd = seeded_state_dict(model.state_dict(), seed)
    model.load_state_dict(sd, strict=True)
    model.eval()
    x = seeded_input(INPUT_SHAPE, seed)
    train = model(x)
    train64 = copy.deepcopy(model).double()(x.double())
    deploy_model = fam.deploy(model)
    deploy_model.eval()
    deploy = deploy_model(x)
    if not (torch.isfinite(train).all() and torch.isfinite(deploy).all()):
        raise RuntimeError(f"{name}: non-finite logits; the recipe's scales do not suit this model")
    return {
        "format_version": FORMAT_VERSION,
        "model": name,
        "family": fam_name,
        "official": {
            "repo_url": fam.repo_url,
            "commit": commit,
            "files": list(fam.files),
            "variant_function": f"{fam.module}.{fn_name}",
            "deploy_function": fam.deploy_name,
            "stubs": list(STUBBED),
        },
        "seed": seed,
        "input": {"shape": list(INPUT_SHAPE), "recipe": "tools.golden.recipe.seeded_input(shape, seed)"},
        "recipe_version": RECIPE_VERSION,
        "environment": {"torch": torch.__version__, "timm": _version("timm"), "dtype": "float32",
                        "device": "cpu"},
        "state_dict": {
            "sha256": state_dict_sha256(sd),
            "num_tensors": len(sd),
            "num_elements": sum(int(v.numel()) for v in sd.values()),
            "integer_buffers_sha256": integer_buffers_sha256(sd),
            "layout": layout(sd),
        },
        "summary": {
            "logits_train": _summary(train),
            "official_deploy_vs_train_max_abs": (deploy - train).abs().max().item(),
            "official_fp32_vs_fp64_max_abs": (train.double() - train64).abs().max().item(),
        },
        "logits_train": _rounded(train),
        "logits_official_deploy": _rounded(deploy),
    }


def dump_json(data: dict[str, Any]) -> str:
    """Indented JSON with each logit row on one line (small files, readable diffs)."""
    rows: dict[str, str] = {}
    shallow = dict(data)
    for key in ("logits_train", "logits_official_deploy"):
        for i, row in enumerate(data[key]):
            rows[f"@@{key}:{i}@@"] = json.dumps(row, separators=(",", ":"))
        shallow[key] = [f"@@{key}:{i}@@" for i in range(len(data[key]))]
    text = json.dumps(shallow, indent=1)
    for marker, row in rows.items():
        text = text.replace(json.dumps(marker), row)
    return text + "\n"


def _version(module: str) -> str | None:
    m = sys.modules.get(module)
    return getattr(m, "__version__", None) if m else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", required=True, choices=sorted(FAMILIES))
    ap.add_argument("--official-repo", required=True, type=Path, help="official checkout (imported in place)")
    ap.add_argument("--out", required=True, type=Path, help="directory, or a .json path with one model")
    ap.add_argument("--models", nargs="+", help="zoo names (default: the family's usual set)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--commit", help="official commit, when --official-repo is not a git checkout")
    args = ap.parse_args(argv)

    fam = FAMILIES[args.family]
    models = args.models or list(fam.default_models)
    unknown = [m for m in models if m not in fam.variants]
    if unknown:
        ap.error(f"unknown {args.family} models {unknown}; known: {sorted(fam.variants)}")
    if args.out.suffix == ".json" and len(models) != 1:
        ap.error("--out is a .json file: pass exactly one model with --models")
    repo = args.official_repo.resolve()
    commit = args.commit or _git_commit(repo)
    if commit is None:
        ap.error("cannot read the official commit: pass --commit")

    torch.set_grad_enabled(False)
    sys.path.insert(0, str(repo))
    fam.prepare()
    mod = importlib.import_module(fam.module)
    print("stubbed:", *(STUBBED or ["nothing"]), sep="\n  ", file=sys.stderr)

    for name in models:
        out = args.out if args.out.suffix == ".json" else args.out / f"{name}.json"
        data = make_one(args.family, mod, name, args.seed, commit)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(dump_json(data))
        s = data["summary"]
        print(f"{name}: logits std {s['logits_train']['std']:.3f} max|.| {s['logits_train']['max_abs']:.3f}; "
              f"official deploy-train {s['official_deploy_vs_train_max_abs']:.2e}, "
              f"fp32-fp64 {s['official_fp32_vs_fp64_max_abs']:.2e} -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
