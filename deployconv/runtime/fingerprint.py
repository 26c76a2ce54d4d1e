"""The environment fingerprint that goes beside every latency number (whether two are comparable is
deployconv.validate.fingerprint's decision).

Torch-free and cheap (a few small file reads). Three parts, all flat fields so the JSON stays greppable:
- host: CPU model, logical cores, CPUs in the affinity mask, CPU governor and frequency where readable, OS,
  load average at the start of the run; for a GPU run the device name the runner reports and the NVIDIA
  driver version where /proc/driver/nvidia/version is readable;
- software: python, numpy, onnxruntime (and the runtime that ran: name, version, providers, threads);
- workload: graph sha256 (of the .onnx file's bytes, as in the manifest), external data sha256 (weights
  saved beside the graph, if any), engine sha256 (TensorRT, later), batch, input shapes/dtypes.

Load average and the current clock are noise indicators, not identity: recorded, never compared.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import os
import platform
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from deployconv.core.env import available_cpus

SCHEMA = "deployconv.fingerprint/1"


@dataclass(frozen=True)
class Fingerprint:
    # host
    cpu_model: str
    cpu_logical_cores: int
    cpu_affinity: int
    machine: str
    system: str
    os: str
    cpu_governor: str | None = None
    cpu_freq_mhz: float | None = None
    cpu_max_freq_mhz: float | None = None
    load_avg: tuple[float, float, float] | None = None
    device: str | None = None  # accelerator the runner used (e.g. the GPU name); None for CPU runs
    driver: str | None = None  # NVIDIA driver version of a GPU run, where readable
    # software
    python: str = ""
    numpy: str | None = None
    onnxruntime: str | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    providers: tuple[str, ...] = ()
    threads: int | None = None
    # workload
    graph_sha256: str | None = None
    external_data_sha256: str | None = None
    engine_sha256: str | None = None
    batch: int | None = None
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"shape": [...], "dtype": "float32"}
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["load_avg"] = None if self.load_avg is None else list(self.load_avg)
        d["providers"] = list(self.providers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fingerprint:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if kw.get("load_avg") is not None:
            kw["load_avg"] = tuple(kw["load_avg"])
        kw["providers"] = tuple(kw.get("providers") or ())
        return cls(**kw)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        # x86 "model name"; arm64 kernels vary ("Hardware", "Processor", "model name")
        if key.strip() in ("model name", "Hardware", "Processor", "cpu model") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def _cpu_freq() -> tuple[str | None, float | None, float | None]:
    """(governor, current MHz, max MHz) of cpu0 where readable; /proc/cpuinfo's "cpu MHz" as a fallback."""
    base = "/sys/devices/system/cpu/cpu0/cpufreq"
    governor = _read(f"{base}/scaling_governor")

    def khz(name: str) -> float | None:
        v = _read(f"{base}/{name}")
        try:
            return None if v is None else round(int(v) / 1000.0, 1)
        except ValueError:
            return None

    cur, mx = khz("scaling_cur_freq"), khz("cpuinfo_max_freq")
    if cur is None:
        for line in (_read("/proc/cpuinfo") or "").splitlines():
            if line.startswith("cpu MHz"):
                with contextlib.suppress(ValueError):
                    cur = round(float(line.split(":", 1)[1]), 1)
                break
    return governor, cur, mx


def nvidia_driver() -> str | None:
    """The NVIDIA kernel driver version from /proc/driver/nvidia/version (no CUDA binding needed)."""
    text = _read("/proc/driver/nvidia/version") or ""
    for word in text.split():
        parts = word.split(".")
        if len(parts) >= 2 and all(p.isdigit() for p in parts):
            return word
    return None


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def collect(*, runtime: str | None = None, runtime_version: str | None = None, providers: tuple[str, ...] = (),
            threads: int | None = None, graph_sha256: str | None = None,
            external_data_sha256: str | None = None, engine_sha256: str | None = None, batch: int | None = None,
            inputs: dict[str, dict[str, Any]] | None = None, device: str | None = None) -> Fingerprint:
    """Fingerprint this machine now (call it at the start of a run: the load average is read here).
    `device` is the accelerator a runner used; the driver version is read only then."""
    governor, cur, mx = _cpu_freq()
    try:
        load = tuple(round(x, 2) for x in os.getloadavg())
    except (AttributeError, OSError):
        load = None
    ort = _version("onnxruntime") or _version("onnxruntime-gpu")
    return Fingerprint(
        cpu_model=cpu_model(), cpu_logical_cores=os.cpu_count() or 1, cpu_affinity=available_cpus(),
        machine=platform.machine(), system=platform.system(), os=platform.platform(),
        cpu_governor=governor, cpu_freq_mhz=cur, cpu_max_freq_mhz=mx, load_avg=load,  # type: ignore[arg-type]
        device=device, driver=nvidia_driver() if device else None,
        python=platform.python_version(), numpy=_version("numpy"), onnxruntime=ort, runtime=runtime,
        runtime_version=runtime_version, providers=tuple(providers), threads=threads, graph_sha256=graph_sha256,
        external_data_sha256=external_data_sha256, engine_sha256=engine_sha256, batch=batch, inputs=dict(inputs or {}))
