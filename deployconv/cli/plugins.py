"""`deployconv plugins build|info`: build libdeployconv_plugins.so and say what a built one contains. Torch-free.

`plugins_app` is a sub-group with the same error handler as the root (deployconv.cli.errors.command_group)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deployconv.cli.errors import command_group
from deployconv.cli.options import ForceOpt, JsonOpt, out_option
from deployconv.core.console import err, out, print_json, table
from deployconv.core.fsio import refuse_overwrite
from deployconv.plugins.library import (
    DEFAULT_OUT,
    BuildResult,
    PluginLibrary,
    build_plugins,
    parse_archs_option,
    plugin_library,
)

plugins_app = command_group(name="plugins", help="Build and inspect the TensorRT plugin library (plugins_cpp/).")

ArchsOpt = Annotated[str | None, typer.Option(
    "--archs", help="CUDA archs, comma separated (87 = Orin, 90 = H100); default: deployconv's list, filtered to "
                    "what this nvcc supports.")]
BuildOutOpt = Annotated[Path | None, out_option("Output directory (default: build/plugins in the source checkout).")]
TensorrtRootOpt = Annotated[Path | None, typer.Option(
    "--tensorrt-root", help="TensorRT install with include/NvInfer.h (default: $TENSORRT_ROOT, then system paths).")]
JobsOpt = Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Parallel compile jobs (default: all CPUs).")]
LibArg = Annotated[Path | None, typer.Argument(
    help="The library or its directory (default: $DEPLOYCONV_PLUGINS, then build/plugins).", show_default=False)]


@plugins_app.command("build")
def build_cmd(
    archs: ArchsOpt = None,
    out_dir: BuildOutOpt = None,
    tensorrt_root: TensorrtRootOpt = None,
    jobs: JobsOpt = None,
    json_out: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Compile the CUDA kernels and, where TensorRT 10+ headers are found, libdeployconv_plugins.so."""
    _build(archs, out_dir, tensorrt_root, jobs, json_out, force)


@plugins_app.command("info")
def info_cmd(lib: LibArg = None, json_out: JsonOpt = False) -> None:
    """Where the plugin library is, its sha256, CUDA archs, TensorRT entry points and whether this GPU runs it."""
    _info(lib, json_out)


def _build(archs: str | None, out_dir: Path | None, tensorrt_root: Path | None, jobs: int | None, json_out: bool,
           force: bool) -> None:
    wanted = parse_archs_option(archs) if archs is not None else None
    refuse_overwrite(out_dir or DEFAULT_OUT, force)  # say so before announcing minutes of compiling
    err.print("building the plugins with CMake (minutes per CUDA arch)...", highlight=False)
    result = build_plugins(wanted, out_dir, force, tensorrt_root=str(tensorrt_root) if tensorrt_root else None,
                           jobs=jobs)
    if json_out:
        print_json(result)
        return
    out.print(build_table(result))
    if result.tensorrt_missing:
        err.print(f"[yellow]TensorRT plugins not built:[/] {result.tensorrt_missing}", highlight=False)


def _info(lib: Path | None, json_out: bool) -> None:
    found = plugin_library(lib)
    if json_out:
        print_json(found)
        return
    out.print(info_table(found))


def build_table(result: BuildResult):
    rows = [
        ["built", result.built],
        ["output", result.out_dir],
        ["CUDA archs", ", ".join(f"sm_{a}" for a in result.archs) + f" (PTX for sm_{max(result.archs)})"],
        ["CUDA", result.cuda_version],
        ["TensorRT headers", result.tensorrt_version or f"none: {result.tensorrt_missing}"],
        ["build time", f"{result.seconds:g} s"],
    ]
    rows += [[name, f"sha256 {digest[:16]}…"] for name, digest in result.files.items()]
    if result.library:
        rows.append(["use", f"trtexec --dynamicPlugins={result.library}  |  deployconv plugins info"])
    return table("plugin build", ["", "value"], rows)


def info_table(lib: PluginLibrary):
    def archs(values: tuple[str, ...] | None, prefix: str) -> str:
        return "unknown" if values is None else (", ".join(prefix + a for a in values) or "none")

    built = lib.build_info or {}
    rows = [
        ["path", f"{lib.path} (via {lib.found_via})"],
        ["sha256", lib.sha256],
        ["size", f"{lib.size_bytes:,} bytes"],
        ["entry points", ", ".join(lib.entry_points)],
        ["cubins", archs(lib.sass_archs, "sm_")],
        ["PTX", archs(lib.ptx_archs, "compute_")],
        ["archs read", lib.archs_note],
        ["this GPU", "not checked (no GPU found)" if lib.gpu is None
         else f"compute capability {lib.gpu['compute_capability']}: {lib.gpu['runs']}"],
    ]
    if built:
        rows.append(["built with", f"TensorRT {built.get('tensorrt_version')} headers, CUDA {built.get('cuda_version')}"])
        rows += [["plugin", f"{p['name']} v{p['version']} (namespace {p['namespace']})"] for p in built.get("plugins", [])]
    rows.append(["load", f"trtexec --dynamicPlugins={lib.path}; Python: "
                         "trt.get_plugin_registry().load_library(path)"])
    return table("plugin library", ["", "value"], rows)

