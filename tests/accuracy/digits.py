"""Real labelled images for the accuracy tests: sklearn's digits (1,797 8x8 images), upsampled to 32x32 RGB
PNGs in an ImageFolder, and a tiny RepVGG trained on a split of them in a few seconds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deployconv.validate.images import preprocess
from tests.accuracy.digits_net import INFO, digits_repvgg

SOURCE = str(Path(__file__).with_name("digits_net.py")) + ":digits_repvgg"


@dataclass
class Digits:
    train_dir: Path
    eval_dir: Path
    weights: Path
    source: str


def write_folder(images: np.ndarray, labels: np.ndarray, root: Path) -> Path:
    from PIL import Image

    for i, (img, label) in enumerate(zip(images, labels)):
        d = root / f"digit_{label}"
        d.mkdir(parents=True, exist_ok=True)
        pix = np.clip(img * (255.0 / 16.0), 0, 255).astype(np.uint8)
        Image.fromarray(pix, "L").resize((32, 32), Image.BILINEAR).convert("RGB").save(d / f"{i:04d}.png")
    return root


def _load(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    classes = sorted(p.name for p in root.iterdir())
    xs, ys = [], []
    for c, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            xs.append(preprocess(f, (32, 32), INFO.crop_pct, INFO.interpolation, INFO.mean, INFO.std))
            ys.append(c)
    # contiguous: preprocess returns a transposed view, np.stack keeps that layout, and torch 2.13's CPU
    # backward through this net aborts ("double free") on such a channels-last-strided batch
    return torch.from_numpy(np.ascontiguousarray(np.stack(xs))), torch.tensor(ys)


def make_digits(tmp: Path, epochs: int = 8, seed: int = 0) -> Digits:
    """Write train/eval ImageFolders (2/3 : 1/3, seeded), train the net on the train folder through the same
    preprocessing `eval` uses, save its state dict."""
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(seed).permutation(len(d.target))
    cut = len(order) * 2 // 3
    train_dir = write_folder(d.images[order[:cut]], d.target[order[:cut]], tmp / "train")
    eval_dir = write_folder(d.images[order[cut:]], d.target[order[cut:]], tmp / "eval")
    x, y = _load(train_dir)
    torch.manual_seed(seed)
    model = digits_repvgg()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-2, total_steps=epochs * -(-len(y) // 32))
    model.train()
    for _ in range(epochs):  # ~96% on the held-out third in ~6 s on one core
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 32):
            idx = perm[i:i + 32]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    model.eval()
    weights = tmp / "digits.pt"
    torch.save(model.state_dict(), weights)
    return Digits(train_dir, eval_dir, weights, SOURCE)


def plant_outlier(weights: Path, out: Path, channel: int = 1, offset: float = 1000.0) -> Path:
    """A planted int8-sensitive layer: stage1's output channel `channel` gets +`offset` (a BN bias), and stage2
    reads nothing from it (its weights on that input channel, and the identity branch's scale/shift on it, are
    zero). fp32 stays accurate (it only loses that channel's skip term: 96% -> 94% top-1 on the seeded split);
    int8 quantizes stage2's input per tensor, so the outlier's range crushes every other channel of that one
    tensor — keeping stage2's conv float is the fix."""
    sd = torch.load(weights, weights_only=True)
    sd["stage1.rbr_dense.bn.bias"][channel] += offset
    sd["stage2.rbr_dense.conv.weight"][:, channel] = 0
    sd["stage2.rbr_1x1.conv.weight"][:, channel] = 0
    sd["stage2.rbr_identity.weight"][channel] = 0
    sd["stage2.rbr_identity.bias"][channel] = 0
    torch.save(sd, out)
    return out
