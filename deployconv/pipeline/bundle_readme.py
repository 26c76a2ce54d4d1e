"""The README.md of a device bundle: the exact commands to run on the device, for this model and target.

A Python module rather than a .md template file, so it ships with the package without package-data. The
decisions (which steps, which archs, which trtexec line) are made by bundle.py; this only writes them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deployconv.core.artifacts.names import ENGINE, MODEL_ONNX, PLUGIN_BUILD_DIR, PLUGIN_LIBRARY


@dataclass(frozen=True)
class ReadmeFacts:
    model: str
    target: str
    description: str
    runtime: str  # "tensorrt" | "onnxruntime"
    precision: str
    io: str  # "input: float32[1, 3, 224, 224] -> output: float32[1, 1000]"
    device: str  # "jetson-orin, JetPack 6.1/6.2, sm_87, DLA"
    tensorrt: str  # "10.3 or newer" / "" for ORT targets
    plugins: tuple[str, ...]  # plugin names the ONNX uses
    plugin_archs: tuple[int, ...]
    has_plugin_sources: bool
    has_python_sources: bool
    trtexec: str | None
    trtexec_note: str
    dla_summary: str | None
    device_notes: tuple[str, ...] = field(default=())
    has_ort_twin: bool = False  # ort/model.onnx: the plugin graph with ONNX-domain lowerings
    trtexec_run: str | None = None  # the trtexec line running the plan the trtexec line builds


_HEAD = """# deployconv device bundle: {model} -> {target}

{description}

| | |
|---|---|
| runtime | {runtime} |
| precision | {precision} |
| inputs / outputs | {io} |
| device | {device} |
{trt_row}
Every file's sha256 is in `manifest.json`; `deployconv check .` verifies them on the device.

| file | what |
|---|---|
| `model.onnx` | the deploy-form ONNX |
| `reference.npz` | inputs and the PyTorch (fp32 train form) outputs recorded at export, for on-device parity |
| `report.json` | the export's parity chain and graph report |
| `manifest.json` | what was exported, with which tools, and the sha256 of every file here |
{extra_files}"""

_INSTALL = """
## 1. Install deployconv (no PyTorch needed)

```sh
python3 -m pip install "./deployconv_src[ort]"
```

`[ort]` adds ONNX Runtime for `deployconv validate`. On JetPack, TensorRT comes with the system `python3`
(do not `pip install tensorrt` there)."""

_INSTALL_NO_SRC = """
## 1. Install deployconv (no PyTorch needed)

This bundle has no `deployconv_src/` (it was made from an installed deployconv, not a checkout): install the
same deployconv version on the device, with `[ort]` for `deployconv validate`."""

_PLUGINS = """
## {n}. Build the plugins for this GPU

The ONNX has deployconv plugin nodes ({plugins}); TensorRT loads them from a library built on the device,
against its TensorRT headers (JetPack: `/usr/include/aarch64-linux-gnu`, found with `-DTENSORRT_ROOT=/usr`).

```sh
cmake -S plugins -B {build_dir} -DDEPLOYCONV_CUDA_ARCHS="{archs}" -DTENSORRT_ROOT=/usr
cmake --build {build_dir} -j
```

This writes `{library}` (and `{build_dir}/deployconv_build.txt`, which `deployconv check` reads)."""

_NO_PLUGINS = """
## {n}. Plugins

The ONNX has no deployconv plugin nodes: nothing to build.{sources}"""

_CHECK = """
## {n}. Check this device against the target

```sh
deployconv check .
```

Verifies the hashes, {what}. Exit 0: all checks passed; 1: a check failed; 3: something is not installed.
Each failed check says what it found, what it expected and how to fix it.{alt}"""

_ENGINE = """
## {n}. Build the engine

```sh
deployconv build-engine model.onnx --target {target}{plugin_arg}
```

The same build with TensorRT's own tool ({trtexec_note}):

```sh
{trtexec}
```{run}"""

_ENGINE_NO_TRTEXEC = """
## {n}. Build the engine

```sh
deployconv build-engine model.onnx --target {target}{plugin_arg}
```

No trtexec line: {trtexec_note}"""

_VALIDATE = """
## {n}. Validate

```sh
deployconv validate .
```

Hashes, then the model against `reference.npz` within the target's parity budget."""

_BENCH = """
## {n}. Benchmark

```sh
deployconv bench {artifact}
```

Latency statistics with the conditions (device, runtime and version, precision, shapes) that make them mean
something."""


def render_readme(f: ReadmeFacts) -> str:
    trt = f.runtime == "tensorrt"
    extra = []
    if f.has_ort_twin:
        extra.append("| `ort/model.onnx` | the same model with ONNX-domain ops instead of plugin nodes: what ONNX "
                     "Runtime runs for `deployconv check`/`validate` without the engine |")
    if f.has_plugin_sources:
        extra.append("| `plugins/` | deployconv's CUDA kernels and TensorRT plugins (CMake), built on the device"
                     + ("" if f.plugins else " (this model uses none)") + " |")
    if f.has_python_sources:
        extra.append("| `deployconv_src/` | the deployconv package, installed on the device without PyTorch |")
    if f.dla_summary is not None:
        extra.append("| `dla.json` | which layers DLA runs and why the others fall back to the GPU |")
    parts = [_HEAD.format(model=f.model, target=f.target, description=f.description or f.target, runtime=f.runtime,
                          precision=f.precision, io=f.io, device=f.device,
                          trt_row=f"| TensorRT | {f.tensorrt} |\n" if trt else "",
                          extra_files="\n".join(extra) + ("\n" if extra else ""))]
    if f.dla_summary is not None:
        parts.append(f"\nDLA: {f.dla_summary} (details in `dla.json`; plugins never run on DLA).")
    for note in f.device_notes:
        parts.append(f"\nNote: {note}")
    parts.append(_INSTALL if f.has_python_sources else _INSTALL_NO_SRC)
    n = 2
    if trt:
        if f.plugins:
            parts.append(_PLUGINS.format(n=n, plugins=", ".join(f.plugins), build_dir=PLUGIN_BUILD_DIR,
                                         archs=";".join(str(a) for a in f.plugin_archs), library=PLUGIN_LIBRARY))
        else:
            parts.append(_NO_PLUGINS.format(n=n, sources=" (`plugins/` is included for models that need it.)"
                                            if f.has_plugin_sources else ""))
        n += 1
    what = ("the TensorRT version, the GPU architecture"
            + (", the JetPack release" if f.device.startswith("jetson") else "")
            + (", the DLA cores" if f.dla_summary is not None else "")
            + (" and the plugin library" if f.plugins else "")) if trt else \
        "ONNX Runtime, and the model's outputs against `reference.npz`"
    alt = ("\n`deployconv check . --runtime ort-cpu` checks with ONNX Runtime instead of TensorRT (the model against "
           "`reference.npz`;\nnot for models with plugin nodes).") if trt else ""
    parts.append(_CHECK.format(n=n, what=what, alt=alt))
    n += 1
    if trt:
        plugin_arg = f" --plugins {PLUGIN_LIBRARY}" if f.plugins else ""
        tpl = _ENGINE if f.trtexec else _ENGINE_NO_TRTEXEC
        run = ("\n\nand to run the plan it builds (plugin libraries are loaded with `--dynamicPlugins`, which calls "
               "their `getCreators`; a plan that carries them does not load them again):\n\n```sh\n"
               f"{f.trtexec_run}\n```") if f.trtexec_run else ""
        parts.append(tpl.format(n=n, target=f.target, plugin_arg=plugin_arg, trtexec=f.trtexec,
                                trtexec_note=f.trtexec_note, run=run))
        n += 1
    parts.append(_VALIDATE.format(n=n))
    n += 1
    parts.append(_BENCH.format(n=n, artifact=ENGINE if trt else MODEL_ONNX))
    return "\n".join(parts).rstrip() + "\n"
