"""`deployconv build-engine`: ONNX -> TensorRT engine (engine.plan) on the device, torch-free.

`--dry-run --trt 10.3` prints the build settings and the trtexec build and run lines for a TensorRT version without
building anything and without TensorRT installed (what a user checks before flashing a Jetson). In deployconv "plan"
names only the serialized engine file, so the flag that was `--plan-only` is now `--dry-run`; `--plan-only` is still
accepted (hidden from --help) so existing scripts keep working.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from deployconv.cli.options import ForceOpt, JsonOpt, out_option, plugins_option, target_option
from deployconv.core.artifacts.names import ENGINE, MANIFEST, MODEL_ONNX
from deployconv.core.console import err, out, print_json
from deployconv.core.errors import BadInputError
from deployconv.core.io_spec import IOSpec
from deployconv.core.target import get_target, target_of_manifest
from deployconv.engine.builder import build_engine, recipe_for
from deployconv.engine.spec import engine_spec_for
from deployconv.engine.trtexec import trtexec_command, trtexec_run_command
from deployconv.trust.engine_record import record_engine, verify_before_build
from deployconv.trust.manifest import read_manifest

SourceArg = Annotated[Path, typer.Argument(help="MODEL.onnx, or a directory written by `deployconv export`/`bundle`.")]
EngineTargetOpt = Annotated[str | None, target_option("Target name or .toml (default: the exported directory's target).")]
PluginsOpt = Annotated[list[Path] | None, plugins_option(
    "Plugin library (libdeployconv_plugins.so); default: located by `deployconv plugins info`.")]
EngineOutOpt = Annotated[Path | None, out_option("Directory for engine.plan (default: next to the ONNX).")]
DryRunOpt = Annotated[bool, typer.Option(
    "--dry-run", help="Print the build settings and the trtexec build and run lines; build nothing (no TensorRT "
                      "needed).")]
PlanOnlyOpt = Annotated[bool, typer.Option("--plan-only", hidden=True, help="Old name of --dry-run.")]
TrtVersionOpt = Annotated[str | None, typer.Option(
    "--trt", help="With --dry-run: the TensorRT version to print the lines for (default: the target's minimum).")]


def _resolve(source: Path, target: str | None) -> tuple[Path, Any, Path | None]:
    """(onnx path, target, exported dir or None)."""
    if source.is_dir():
        manifest = read_manifest(source)
        onnx_path = source / MODEL_ONNX
        tgt = target_of_manifest(manifest, str(source / MANIFEST)) if target is None else get_target(target)
        return onnx_path, tgt, source
    if source.name == MODEL_ONNX and (source.parent / MANIFEST).is_file():
        return _resolve(source.parent, target)  # an export's model.onnx: its folder's manifest (profiles, target)
    if not source.is_file() or source.suffix != ".onnx":
        raise BadInputError(f"{source}: not an ONNX file or exported directory",
                            fix="pass MODEL.onnx or the directory `deployconv export` wrote")
    if target is None:
        raise BadInputError("--target is required for a bare ONNX file", fix="e.g. --target jetson-orin-fp16")
    return source, get_target(target), None


def build_engine_cmd(
    source: SourceArg,
    target: EngineTargetOpt = None,
    plugins: PluginsOpt = None,
    out_dir: EngineOutOpt = None,
    dry_run: DryRunOpt = False,
    trt_version: TrtVersionOpt = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
    plan_only: PlanOnlyOpt = False,
) -> None:
    """Build a TensorRT engine (engine.plan) from an exported ONNX, with deployconv's plugins; torch-free."""
    _build(source, target, plugins, out_dir, dry_run or plan_only, trt_version, json_out, force)


def _with_profile(tgt: Any, exported: Path | None) -> Any:
    """An export with declared sizes (manifest io_spec) builds with their min/opt/max profile."""
    if exported is None:
        return tgt
    io = read_manifest(exported).io_spec
    if not io:
        return tgt
    return engine_spec_for(tgt, **IOSpec.from_dict(io).engine_shapes())


def _build(source: Path, target: str | None, plugins: list[Path] | None, out_dir: Path | None, dry_run: bool,
           trt_version: str | None, json_out: bool, force: bool) -> None:
    onnx_path, tgt, exported = _resolve(source, target)
    libs = [str(p) for p in plugins] if plugins else None
    if dry_run:
        version = trt_version or (tgt.tensorrt.min_version if tgt.tensorrt else "10.3")
        plan = recipe_for(onnx_path, _with_profile(tgt, exported), version, libs)
        engine = (out_dir or onnx_path.parent) / ENGINE
        line = trtexec_command(plan, onnx_path, plan.plugin_libraries, engine)
        run_line = trtexec_run_command(plan, plan.plugin_libraries, engine)
        if json_out:
            print_json({"plan": plan.to_dict(), "trtexec": line, "trtexec_run": run_line})
        else:
            out.print_json(json.dumps(plan.to_dict()))
            out.print(f"trtexec line for TensorRT {version}:\n{line}\nand to run the plan it builds:\n{run_line}",
                      highlight=False, soft_wrap=True)
        return
    folder = exported or (onnx_path.parent if (onnx_path.parent / MANIFEST).is_file() else None)
    if folder is not None:  # never build from (or bless) files the manifest does not vouch for
        verify_before_build(folder, onnx_path)
    dest = out_dir or onnx_path.parent
    entries = build_engine(onnx_path, _with_profile(tgt, exported), dest, plugins=libs, force=force)
    note = record_engine(folder, Path(dest), entries) if folder is not None else None
    if json_out:
        print_json({**entries, "manifest": note})
    else:
        out.print(f"[green]built[/] {Path(dest) / 'engine.plan'}")
        if note:
            out.print(note, highlight=False, soft_wrap=True)
        render_layer_report(entries["engine"].get("layers") or {})


def render_layer_report(layers: dict[str, Any]) -> None:
    """What the engine's own layer report says against the export's request (every difference), on stderr."""
    if not layers.get("file"):
        if layers.get("note"):
            err.print(f"[yellow]note:[/] {layers['note']}", highlight=False)
        return
    diffs = layers.get("differences", [])
    err.print(f"layer report: {layers['file']} ({layers['layers']} engine layers, {layers.get('on_dla', 0)} on DLA): "
              + ("precisions and placements as asked" if not diffs else f"{len(diffs)} difference(s) from the request"),
              highlight=False)
    for d in diffs:
        err.print(f"  [yellow]{d}[/]", highlight=False)

