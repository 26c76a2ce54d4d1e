"""`deployconv models`, `targets` and `doctor`: what deployconv knows (zoo, targets) and what this machine has."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from deployconv.cli.options import JsonOpt
from deployconv.core.console import out, print_json, table
from deployconv.core.env import diagnose
from deployconv.core.target import builtin_targets
from deployconv.core.version import __version__


def models_cmd(
    pattern: Annotated[str | None, typer.Argument(help="fnmatch filter, e.g. 'lsnet*'.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List zoo models: family, parameters in train and deploy form, input size."""
    from deployconv.reparam.summary import zoo_rows  # builds every model: torch

    rows = zoo_rows(pattern)
    if json_out:
        print_json(rows)
        return
    out.print(table(None, ["name", "family", "params (train)", "params (deploy)", "input", "fixed HxW"],
                    [[r["name"], r["family"], f"{r['params_train']:,}", f"{r['params_deploy']:,}",
                      "x".join(map(str, r["input_size"])), "yes" if r["fixed_hw"] else "no"] for r in rows],
                    justify_right=["params (train)", "params (deploy)"]))


def doctor_cmd(json_out: JsonOpt = False) -> None:
    """Which of torch, ONNX tooling, TensorRT, CUDA, nvcc and a GPU this machine has, with versions."""
    comps = diagnose()
    if json_out:
        print_json(comps)
        return
    out.print(table(f"deployconv {__version__} environment", ["component", "found", "version", "detail"],
                    [[c.name, "yes" if c.found else "no", c.version or "-", c.detail] for c in comps]))


def targets_cmd(json_out: JsonOpt = False) -> None:
    """List the built-in targets: runtime, precision, lowering, shapes, TensorRT range, device."""
    targets = builtin_targets()
    if json_out:
        print_json({k: t.to_dict() for k, t in targets.items()})
        return
    out.print(table("deployconv targets (user targets: --target path/to/file.toml)",
                    ["name", "runtime", "precision", "lowering", "batch", "TensorRT", "description"],
                    [[t.name, t.runtime, t.precision, t.lowering,
                      "dynamic" if t.dynamic_batch else f"static {t.batch or 1}", _trt_range(t), t.description]
                     for t in targets.values()]))


def _trt_range(t: Any) -> str:
    if t.tensorrt is None:
        return "-"
    hi = t.tensorrt.max_version or ""
    dla = f", DLA {t.tensorrt.dla_core}" if t.uses_dla else ""
    return f"{t.tensorrt.min_version}..{hi}{dla}"
