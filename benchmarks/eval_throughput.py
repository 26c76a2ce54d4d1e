"""`deployconv eval`'s streaming ledger vs a plain loop, on a synthetic ImageFolder: images/s and peak RSS.

The plain loop is what a user would otherwise write (or what running one validate script per format does):
for each stage, decode every image serially, preprocess, batch, run. deployconv's loop decodes each image
once on a thread pool and feeds every stage the same batch. Each measurement runs in its own process, so
its peak RSS (ru_maxrss) is its own; the ledger also runs on a 1/10 subset to show the memory does not grow
with the set. The model is a tiny RepVGG-style net (64x64 input), so the image work dominates, as it does
for a small deployed model on a big validation set.

Usage: python -m benchmarks.eval_throughput [--images 10000] [--stages train,deploy,onnx] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "eval_throughput_cpu.json"
SOURCE = f"{Path(__file__).resolve()}:tiny_net"


def tiny_net():
    """The benchmark's model (a user source, file.py:factory)."""
    from torch import nn

    from deployconv.models.registry import ModelInfo
    from deployconv.models.repvgg import RepVGGBlock

    net = nn.Sequential(RepVGGBlock(3, 16, stride=2), RepVGGBlock(16, 32, stride=2), RepVGGBlock(32, 32),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    net.deployconv_info = ModelInfo(input_size=(3, 64, 64), interpolation="bilinear", crop_pct=0.875,
                                    num_classes=10)
    return net


def make_folder(root: Path, n: int, seed: int = 0) -> None:
    """n JPEGs (160x120, smooth random content) in 10 class folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / f"class_{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(small).resize((160, 120), Image.BILINEAR).save(d / f"{i:06d}.jpg", quality=90)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ledger(data: Path, stages: str, batch: int, limit: int | None) -> dict:
    from deployconv.accuracy.evaluate import EvalOptions, evaluate
    from deployconv.accuracy.stages import StageOptions, parse_stages

    opts = EvalOptions(batch=batch, limit=limit, stage=StageOptions(stages=parse_stages(stages)))
    ledger = evaluate(SOURCE, data, opts)
    return {"images": ledger.images, "seconds": ledger.seconds, "images_per_s": ledger.images_per_s,
            "decode_workers": ledger.decode_workers, "stages": [s.name for s in ledger.stages]}


def run_plain(data: Path, stages: str, batch: int) -> dict:
    """One pass per stage, serial decode: the loop a user writes per format."""
    from deployconv.accuracy.dataset import scan_image_folder
    from deployconv.accuracy.stages import StageOptions, build_stages, parse_stages
    from deployconv.models import create_model
    from deployconv.models.registry import model_info
    from deployconv.validate.images import preprocess

    model = create_model(SOURCE)
    info = model_info(model)
    built, _ = build_stages(model, info.input_size, None, StageOptions(stages=parse_stages(stages)))
    folder = scan_image_folder(data)
    size = tuple(info.input_size[1:])
    t0 = time.perf_counter()
    correct = {}
    for s in built:
        hits = 0
        for i in range(0, len(folder.samples), batch):
            chunk = folder.samples[i:i + batch]
            x = np.stack([preprocess(Path(p), size, info.crop_pct, info.interpolation, info.mean, info.std)
                          for p, _ in chunk]).astype(np.float32)
            labels = np.array([lab for _, lab in chunk])
            hits += int((s.run(np.ascontiguousarray(x)).argmax(1) == labels).sum())
        correct[s.name] = hits
    seconds = time.perf_counter() - t0
    return {"images": len(folder), "seconds": round(seconds, 3), "images_per_s": round(len(folder) / seconds, 2),
            "stages": list(correct)}


def _child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.child == "plain":
        res = run_plain(args.data, args.stages, args.batch)
    else:
        res = run_ledger(args.data, args.stages, args.batch, args.limit)
    res["peak_rss_mib"] = round(_peak_rss_mib(), 1)
    sys.stdout.write("RESULT " + json.dumps(res) + "\n")


def _measure(kind: str, data: Path, args: argparse.Namespace, limit: int | None = None) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.eval_throughput", "--child", kind, "--data", str(data),
           "--stages", args.stages, "--batch", str(args.batch), "--threads", str(args.threads)]
    if limit:
        cmd += ["--limit", str(limit)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--stages", default="train,deploy,onnx")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in each measured process")
    ap.add_argument("--data", type=Path, default=None, help="reuse a folder (else a temporary one is written)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    from benchmarks._env import fingerprint, package_version
    from deployconv.core.fsio import write_text_atomic

    with tempfile.TemporaryDirectory(prefix="deployconv-evalbench-") as tmp:
        data = args.data or Path(tmp) / "data"
        if args.data is None:
            t = time.perf_counter()
            make_folder(data, args.images)
            print(f"wrote {args.images} images in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        ledger_small = _measure("ledger", data, args, limit=max(1, args.images // 10))
        ledger = _measure("ledger", data, args)
        plain = _measure("plain", data, args)
    result = {
        "benchmark": "eval_throughput",
        "what": "images/s through all stages and peak RSS: deployconv eval's streaming ledger (parallel decode, "
                "shared by the stages) vs a plain per-stage serial loop; the ledger also on a 1/10 subset",
        "conditions": {"images": args.images, "image": "160x120 JPEG q90, 10 classes", "model": "tiny RepVGG-"
                       "style net, 64x64 input (bilinear resize + centre crop 0.875)", "stages": args.stages,
                       "batch": args.batch, "torch_threads": args.threads,
                       "onnxruntime": package_version("onnxruntime"), "pillow": package_version("pillow")},
        "env": fingerprint(),
        "ledger": ledger, "ledger_subset": ledger_small, "plain_loop": plain,
        "speedup": round(ledger["images_per_s"] / plain["images_per_s"], 2),
    }
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("ledger", "ledger_subset", "plain_loop", "speedup")}, indent=2))


if __name__ == "__main__":
    main()
