"""One fine-tuning step (forward + backward + SGD) with BN in eval mode: Eval vs Tune vs Deploy mode, on CPU.

    .venv/bin/python -m benchmarks.tune_mode [--model repvgg_a0] [--batch 32] [--steps 8] [--threads N]

Modes (all start from the same seeded weights, so their first-step losses must agree):
  eval   - train-form model, every BN in eval mode: conv, then BN with frozen statistics (the usual fine-tune);
  tune   - the same model after `tune_mode(model)`: conv(x, W*c, beta + c*(b - mean)) recomputed per step;
  deploy - speed reference: every fx-found Conv->BN pair folded into one conv beforehand (`fold_pairs`);
           branch structure kept (RepVGG blocks still sum three branches), so it differs from Tune mode only
           by the per-step weight fusion and the BN-grad terms.

Memory: each mode runs in its own fresh subprocess, so ru_maxrss is that mode's own peak; the bytes autograd
saves for backward in one step are counted with saved_tensors_hooks, de-duplicated by storage (and split into
parameter storage and the rest). Time: one more subprocess holds all modes and interleaves their steps (order
rotated each cycle), so load from other processes on a shared machine hits all modes alike; the time ratio
to Eval mode is the median over cycles. Results: a table on stdout, JSON with the environment fingerprint and
every condition in --out (atomic write).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODES = ("eval", "tune", "deploy")
LOCAL_MODELS = ("local_resnet18",)
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "tune_mode_cpu.json"


# --- the worker: one mode in one process --------------------------------------------------------------------


def _local_resnet18():
    """A plain ResNet-18 (torchvision layout) for when the zoo lacks a model; no dependency on torchvision."""
    from torch import nn

    def conv_bn(cin, cout, k, s):
        return [nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout)]

    class Basic(nn.Module):
        def __init__(self, cin, cout, s):
            super().__init__()
            self.body = nn.Sequential(*conv_bn(cin, cout, 3, s), nn.ReLU(), *conv_bn(cout, cout, 3, 1))
            self.down = nn.Sequential(*conv_bn(cin, cout, 1, s)) if (s != 1 or cin != cout) else nn.Identity()

        def forward(self, x):
            return (self.body(x) + self.down(x)).relu()

    layers = [*conv_bn(3, 64, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, s in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Basic(cin, cout, s), Basic(cout, cout, 1)]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000))


def _build(name: str):
    if name == "local_resnet18":
        return _local_resnet18(), (3, 224, 224), 1000
    from deployconv.models import create_model, model_info

    model = create_model(name)
    info = model_info(model)
    return model, tuple(info.input_size), info.num_classes


def _saved_bytes(step, model) -> dict[str, int]:
    """Bytes of the tensors autograd saves during `step()`, one count per storage."""
    import torch

    owned = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        seen[s.data_ptr()] = max(seen.get(s.data_ptr(), 0), s.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    params = sum(n for p, n in seen.items() if p in owned)
    total = sum(seen.values())
    return {"saved_bytes": total, "saved_bytes_params": params, "saved_bytes_other": total - params,
            "saved_tensors": len(seen)}


def _maxrss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024  # Linux reports KiB


def _setup(mode: str, args: argparse.Namespace):
    """The model in `mode` (from seed 0), its data, and a `step()` doing one SGD fine-tuning step."""
    import torch

    torch.manual_seed(0)
    model, input_size, num_classes = _build(args.model)
    model.eval()  # every BN in eval mode: fine-tuning with frozen statistics
    pairs = "-"
    if mode == "tune":
        from deployconv.reparam.tune_mode import tune_mode, tune_mode_pairs

        tune_mode(model)
        pairs = len(tune_mode_pairs(model))
    elif mode == "deploy":
        from deployconv.reparam.walker import fold_pairs

        pairs = len([r for r in fold_pairs(model) if r.rewrite == "fold_conv_bn(fx)"])
    size = (args.size, args.size) if args.size else input_size[1:]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, input_size[0], *size, generator=gen)
    y = torch.randint(0, num_classes, (args.batch,), generator=gen)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    losses: list[float] = []

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())

    info = {"mode": mode, "pairs": pairs, "input_shape": list(x.shape),
            "params": sum(p.numel() for p in model.parameters()),
            "bn_modules": sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())}
    return model, step, losses, info


def memory_worker(args: argparse.Namespace) -> dict:
    """One mode in a fresh process: saved-for-backward bytes of the first step, peak RSS over two steps."""
    import torch

    torch.set_num_threads(args.threads)
    model, step, losses, info = _setup(args.mode, args)
    rss_setup = _maxrss_bytes()
    saved = _saved_bytes(step, model)
    step()  # the second step also holds the momentum buffers the first one created
    from benchmarks._env import fingerprint

    return {**info, "first_loss": losses[0], **saved, "rss_setup_bytes": rss_setup,
            "rss_peak_bytes": _maxrss_bytes(), "env": fingerprint()}


def timing_worker(args: argparse.Namespace) -> dict:
    """All modes in one process, interleaved step by step (order rotated each cycle), so that other load on
    the machine hits every mode alike; per-cycle ratios to Eval mode are then robust to it."""
    import torch

    torch.set_num_threads(args.threads)
    modes = args.modes.split(",")
    steps = {}
    for mode in modes:
        _, steps[mode], _, _ = _setup(mode, args)
        for _ in range(args.warmup):
            steps[mode]()
    wall: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    for cycle in range(args.steps):
        for mode in modes[cycle % len(modes):] + modes[:cycle % len(modes)]:
            t0, c0 = time.perf_counter(), time.process_time()
            steps[mode]()
            wall[mode].append(time.perf_counter() - t0)
            cpu[mode].append(time.process_time() - c0)
    from benchmarks._env import fingerprint

    return {"step_s": wall, "step_cpu_s": cpu, "env": fingerprint()}


# --- the driver: subprocesses, table and JSON -------------------------------------------------------------------


def _spawn(args: argparse.Namespace, worker: str) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.tune_mode", "--worker", worker, "--model", args.model,
           "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--threads", str(args.threads), "--size", str(args.size), "--modes", args.modes]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"worker {worker!r} failed with exit code {r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _mib(n: float) -> float:
    return round(n / 2**20, 1)


def summarize(mem: list[dict], timing: dict, modes: list[str]) -> list[dict]:
    wall, cpu = timing["step_s"], timing["step_cpu_s"]
    rows = []
    for mode in modes:
        mine = [r for r in mem if r["mode"] == mode]
        row = {
            "mode": mode,
            "pairs": mine[0]["pairs"],
            "step_ms_median": round(1e3 * statistics.median(wall[mode]), 1),
            "step_ms_min": round(1e3 * min(wall[mode]), 1),
            "step_ms_max": round(1e3 * max(wall[mode]), 1),
            "steps_timed": len(wall[mode]),
            "step_cpu_s_median": round(statistics.median(cpu[mode]), 2),
            "saved_mib": _mib(mine[0]["saved_bytes"]),
            "saved_mib_params": _mib(mine[0]["saved_bytes_params"]),
            "saved_mib_other": _mib(mine[0]["saved_bytes_other"]),
            "rss_peak_mib": _mib(statistics.median(r["rss_peak_bytes"] for r in mine)),
            "rss_setup_mib": _mib(statistics.median(r["rss_setup_bytes"] for r in mine)),
            "rss_step_mib": _mib(statistics.median(r["rss_peak_bytes"] - r["rss_setup_bytes"] for r in mine)),
            "first_loss": mine[0]["first_loss"],
            "params": mine[0]["params"],
            "bn_modules": mine[0]["bn_modules"],
        }
        if "eval" in modes:
            # Same cycle, same background load: the ratio to the Eval step taken next to it.
            row["time_vs_eval"] = round(statistics.median(t / e for t, e in zip(wall[mode], wall["eval"])), 3)
            row["cpu_vs_eval"] = round(statistics.median(t / e for t, e in zip(cpu[mode], cpu["eval"])), 3)
        rows.append(row)
    base = next((r for r in rows if r["mode"] == "eval"), None)
    for r in rows:
        if base:
            r["saved_vs_eval"] = round(r["saved_mib"] / base["saved_mib"], 3)
            r["rss_step_vs_eval"] = round(r["rss_step_mib"] / base["rss_step_mib"], 3) if base["rss_step_mib"] else None
    return rows


def _notes(envs: list[dict], timing: dict, threads: int) -> list[str]:
    loads = [e["load_avg_1_5_15"][0] for e in envs if e.get("load_avg_1_5_15")]
    usable = envs[0]["cpu_usable"] or threads
    busy = max(loads, default=0.0)
    spread = max(max(t) / min(t) for t in timing["step_s"].values())
    notes = []
    # The load average counts this benchmark's own threads too.
    if busy > max(usable, threads) + 0.5 or spread > 1.5:
        notes.append(
            f"other processes shared the CPU (1-minute load average up to {busy:.1f} on {usable} usable CPUs, "
            f"{threads} threads here; slowest/fastest step of one mode up to {spread:.1f}x). Steps of all modes "
            "were interleaved in one process, so the per-cycle ratios (time_vs_eval) are the robust timing "
            "figures; absolute medians include other work, min ms is the least disturbed. Memory figures do not "
            "depend on load.")
    return notes


def render(rows: list[dict], title: str) -> None:
    cols = [("mode", "mode"), ("pairs", "pairs"), ("step_ms_median", "step ms"), ("step_ms_min", "min ms"),
            ("time_vs_eval", "x eval"), ("step_cpu_s_median", "CPU s"), ("cpu_vs_eval", "x eval"),
            ("saved_mib", "saved MiB"), ("saved_mib_other", "non-param"), ("saved_vs_eval", "x eval"),
            ("rss_peak_mib", "peak RSS MiB"), ("rss_step_mib", "step RSS MiB"), ("rss_step_vs_eval", "x eval"),
            ("first_loss", "loss@1")]
    legend = ("step ms / min ms: median / fastest wall time per step; x eval (time): median over cycles of the "
              "ratio to the Eval step of the same cycle; CPU s: process CPU time per step; saved: bytes autograd "
              "kept for backward in one step (non-param: without parameter storage); step RSS: peak RSS minus "
              "the peak before the first step")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print(" | ".join(h for _, h in cols))
        for r in rows:
            print(" | ".join(str(r.get(k, "-")) for k, _ in cols))
        print(legend)
        return
    console = Console() if sys.stdout.isatty() else Console(width=160)
    table = Table(title=title, caption=legend)
    for _, h in cols:
        table.add_column(h, justify="right")
    for r in rows:
        table.add_row(*[f"{r[k]:.5f}" if k == "first_loss" else str(r.get(k, "-")) for k, _ in cols])
    console.print(table)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="repvgg_a0", help=f"a zoo model name, or one of {', '.join(LOCAL_MODELS)}")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=0, help="input H=W (0: the model's own, 224 for the zoo)")
    p.add_argument("--steps", type=int, default=8, help="timed cycles (one step of every mode per cycle)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per mode before timing")
    p.add_argument("--repeats", type=int, default=1, help="fresh memory processes per mode (RSS: median)")
    p.add_argument("--threads", type=int,
                   default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--worker", choices=[*MODES, "timing"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker == "timing":
        print(json.dumps(timing_worker(args)))
        return
    if args.worker:
        args.mode = args.worker
        print(json.dumps(memory_worker(args)))
        return

    from benchmarks._env import fingerprint
    from deployconv.core.fsio import write_text_atomic

    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        p.error(f"--modes takes a comma-separated subset of {','.join(MODES)}")
    env_before = fingerprint()
    t0 = time.time()
    mem = []
    for rnd in range(args.repeats):
        for mode in modes:
            print(f"[memory {rnd + 1}/{args.repeats}] {mode} ...", file=sys.stderr, flush=True)
            mem.append(_spawn(args, mode))
    print(f"[timing] {args.steps} cycles of {', '.join(modes)} ...", file=sys.stderr, flush=True)
    timing = _spawn(args, "timing")
    rows = summarize(mem, timing, modes)
    losses = [r["first_loss"] for r in rows]
    shape = mem[0]["input_shape"]
    conditions = {
        "model": args.model, "batch": args.batch, "input_shape": shape, "dtype": "float32", "device": "cpu",
        "threads": args.threads, "bn_mode": "eval (frozen statistics) in every mode", "modes": modes,
        "optimizer": "SGD lr=1e-3 momentum=0.9", "loss": "CrossEntropy on random labels",
        "step": "zero_grad + forward + loss + backward + optimizer.step",
        "timing": f"one process, all modes interleaved step by step (order rotated), {args.warmup} warm-up "
                  f"step(s) per mode, then {args.steps} cycles",
        "saved_bytes": "tensors packed by autograd in the first step, de-duplicated by storage",
        "rss": f"ru_maxrss of a fresh process per mode ({args.repeats} per mode, median) over two steps; "
               "rss_step = that peak minus the peak before the first step",
    }
    envs = [r["env"] for r in mem] + [timing["env"]]
    result = {
        "benchmark": "tune_mode",
        "conditions": conditions,
        "env": timing["env"],
        "load_avg_before": env_before["load_avg_1_5_15"],
        "load_avg_after": fingerprint()["load_avg_1_5_15"],
        "wall_s": round(time.time() - t0, 1),
        "first_losses_agree": max(losses) - min(losses) <= 1e-4 * max(1.0, abs(losses[0])),
        "notes": _notes(envs, timing, args.threads),
        "summary": rows,
        "memory_runs": [{k: v for k, v in r.items() if k != "env"} | {"load_avg": r["env"]["load_avg_1_5_15"]}
                        for r in mem],
        "timing_run": {"step_s": timing["step_s"], "step_cpu_s": timing["step_cpu_s"],
                       "load_avg": timing["env"]["load_avg_1_5_15"]},
    }
    title = (f"{args.model}, input {'x'.join(map(str, shape))}, fp32, {args.threads} threads, "
             f"{timing['env']['cpu_model']}, torch {timing['env']['torch']}")
    render(rows, title)
    for note in result["notes"]:
        print(f"note: {note}")
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
