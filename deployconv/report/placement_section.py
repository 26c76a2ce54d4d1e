"""Where each layer runs on a DLA target (DLA or GPU fallback), from the manifest's `dla` section
(deployconv.engine.dla.DlaReport.to_dict(): settings, `layers` of {"name", "op", "device", "reason",
"approximate"}, `graph_problems`, `not_layers`, `notes`, `counts`), or a bare list of layer entries. TensorRT
falls back to the GPU silently; this table is where a user sees it."""

from __future__ import annotations

from collections import Counter
from typing import Any

from deployconv.core.artifacts import Manifest
from deployconv.report import numbers
from deployconv.report.markup import (
    is_number,
    kv_table,
    notes,
    num_td,
    para,
    pointer,
    section,
    table,
    td,
)
from deployconv.report.source import MANIFEST

LIST_KEYS = ("layers", "graph_problems", "not_layers", "notes", "counts")


def dla_section(manifest: Manifest) -> tuple[Any, tuple[str, ...]] | None:
    """The manifest's DLA section and its JSON path (`dla`, written by deployconv.engine.dla)."""
    return None if manifest.dla is None else (manifest.dla, ("dla",))


def layers_of(dla: Any) -> tuple[list[dict[str, Any]], tuple[str | int, ...]]:
    """The per-layer entries and their path below the section."""
    if isinstance(dla, list):
        return [e for e in dla if isinstance(e, dict)], ()
    if isinstance(dla, dict) and isinstance(dla.get("layers"), list):
        return [e for e in dla["layers"] if isinstance(e, dict)], ("layers",)
    return [], ()


def device_counts(layers: list[dict[str, Any]]) -> dict[str, int]:
    """Layers per device, DLA first, then GPU, then anything else the builder reported. Pure."""
    counts = Counter(str(e.get("device", "unknown")).upper() for e in layers)
    order = ["DLA", "GPU", *sorted(k for k in counts if k not in ("DLA", "GPU"))]
    return {k: counts[k] for k in order if k in counts or k in ("DLA", "GPU")}


def no_dla_text(target: dict[str, Any]) -> str:
    trt = target.get("tensorrt") or {}
    dev = target.get("device") or {}
    name = target.get("name")
    if trt.get("dla_core") is not None:
        return (f"target {name} asks for DLA core {trt['dla_core']}, but {MANIFEST} records no layer placement "
                "(exported by a deployconv without DLA reporting)")
    if dev.get("has_dla"):
        return f"target {name} runs on the GPU only (its device has a DLA, but the target does not use it)"
    return f"target {name} has no DLA: every layer runs on {target.get('runtime') or 'its runtime'}"


def _counts_table(layers: list[dict[str, Any]], recorded: Any, base: tuple[str, ...]) -> tuple[str, list[str]]:
    """Layers per device counted from the list; the section's own `counts` (if any) beside it, checked."""
    counted = device_counts(layers)
    rec = recorded if isinstance(recorded, dict) else {}
    rows, mismatches = [], []
    for dev, n in counted.items():
        row = [td(dev), num_td(n, None, numbers.integer)]
        if rec:
            r = rec.get(dev)
            row.append(num_td(r, pointer(MANIFEST, *base, "counts", dev), numbers.integer) if is_number(r)
                       else td("-", class_="num na"))
            if is_number(r) and r != n:
                mismatches.append(f"the section's counts say {r} layers on {dev}, its layer list has {n}")
        rows.append(row)
    headers = ["device", "layers (counted)", *(["layers (recorded)"] if rec else [])]
    return table(headers, rows, class_="counts"), mismatches


def placement_section(manifest: Manifest, target: dict[str, Any]) -> str:
    found = dla_section(manifest)
    if found is None:
        return section("placement", "DLA / GPU layer placement", para(no_dla_text(target)))
    dla, base = found
    layers, sub = layers_of(dla)
    d = dla if isinstance(dla, dict) else {}
    settings = [(k, td(v)) for k, v in d.items() if k not in LIST_KEYS and not isinstance(v, (dict, list))]
    body = kv_table(settings) if settings else ""
    problems = [str(p) for p in d.get("graph_problems") or []]
    if problems:
        body += '<h3 class="fail">the whole graph cannot run on the DLA</h3>' + notes(problems)
    counts, mismatches = _counts_table(layers, d.get("counts"), base)
    body += counts
    approximate = any(e.get("approximate") for e in layers)
    rows = []
    for e in layers:
        device = str(e.get("device", "unknown"))
        cls = "dla" if device.upper() == "DLA" else "gpu" if device.upper() == "GPU" else None
        row = [td(e.get("name"), class_="name"), td(e.get("op")), td(device, class_=cls),
               td(e.get("reason") or ("" if cls == "dla" else "not recorded"))]
        if approximate:
            row.append(td("approximate" if e.get("approximate") else ""))
        rows.append(row)
    headers = ["layer", "op", "device", "reason", *(["rule"] if approximate else [])]
    body += table(headers, rows, class_="placement",
                  caption=f"{len(layers)} layers, from {pointer(MANIFEST, *base, *sub)}")
    if not layers:
        body += para("the DLA section lists no layers")
    skipped = d.get("not_layers")
    if isinstance(skipped, dict) and skipped:
        body += para("nodes that make no TensorRT layer (not placed): "
                     + ", ".join(f"{op} {n}" for op, n in skipped.items()))
    extra = [str(n) for n in d.get("notes") or []] + mismatches
    if approximate:
        extra.append("'approximate' rows guess what TensorRT's importer or optimizer does; the built engine's "
                      "layer information on the device is the ground truth")
    return section("placement", "DLA / GPU layer placement", body + notes(extra))
