"""The pipeline's precision step: turn the validated fp32 graphs into the target's fp16 or int8 graphs.

Decisions are made on the ONNX Runtime twin, where they can be measured (the fp16 guard, int8 calibration and
sensitivity), then carried over to the artifact: the same graph when the target has no plugin nodes, otherwise by
the node alignment of `deployconv.export.align` (fp16: the nodes the guard kept in fp32; int8: the calibrated
ranges, renamed tensor by tensor, and the layers kept float). bf16 stays an fp32 ONNX (TensorRT 10's BF16 flag;
ORT CPU cannot check a bf16 graph), and the report says so.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from deployconv.core.errors import BadInputError
from deployconv.core.target import Target
from deployconv.export.align import align, tensor_map
from deployconv.export.precision.calibration import load_calibration
from deployconv.export.precision.fp16 import convert_fp16, ensure_node_names
from deployconv.export.precision.fp16_emulate import emulation_report
from deployconv.export.precision.fp16_guard import MEASURED, guard_fp16
from deployconv.export.precision.int8 import quantize_int8
from deployconv.export.precision.sensitivity import ort_runner, quantize_within_budget
from deployconv.models.registry import ModelInfo
from deployconv.pipeline.graph import Graphs
from deployconv.pipeline.options import ExportOptions

# A target's quant.activation -> the int8 module's activation profile.
ACTIVATION_PROFILE = {"int8": "int8-symmetric", "uint8": "uint8"}
BF16_NOTE = ("bf16: model.onnx stays fp32 and TensorRT 10 builds it with the BF16 flag; TensorRT 11 (strongly "
             "typed) would need bf16 tensors in the ONNX, which deployconv does not write yet; ONNX Runtime CPU "
             "cannot check bf16, so no bf16 parity stage ran here")


@dataclass
class PrecisionResult:
    stage: str  # parity-chain stage name, e.g. "onnx-fp16 (ort-cpu)"
    twin: onnx.ModelProto  # what ONNX Runtime runs (ort/model.onnx when the artifact has plugins)
    checked: onnx.ModelProto  # what the parity stage runs (fp16: the twin with fp16 rounding emulated)
    artifact: onnx.ModelProto  # what model.onnx holds
    report: dict  # report.json["precision"]
    manifest: dict  # manifest.json["precision_report"]: what was kept in float and why
    notes: list[str] = field(default_factory=list)  # printed loudly by the CLI (e.g. synthetic calibration)


def apply_precision(graphs: Graphs, tgt: Target, batches: Sequence[np.ndarray], opts: ExportOptions, info: ModelInfo,
                    progress: Callable[[str], None] | None = None) -> PrecisionResult | None:
    """None for fp32 and bf16 targets (the fp32 graph is the artifact); else the reduced-precision graphs.
    `info`: the model's preprocessing, for --calib images."""
    step = progress or (lambda _s: None)
    if tgt.precision in ("fp32", "bf16"):
        return None
    twin = ensure_node_names(_copy(graphs.twin))
    artifact = ensure_node_names(_copy(graphs.final)) if graphs.twinned else twin
    if tgt.precision == "fp16":
        return _fp16(twin, artifact, tgt, batches, opts, step)
    if tgt.precision == "int8":
        return _int8(twin, artifact, tgt, batches, opts, info, step)
    raise BadInputError(f"precision {tgt.precision!r} has no precision step", fix="use fp32, fp16, bf16 or int8")


def _copy(proto: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    return out


def _fp16(twin: onnx.ModelProto, artifact: onnx.ModelProto, tgt: Target, batches: Sequence[np.ndarray], opts: Any,
          step: Callable[[str], None]) -> PrecisionResult:
    io = opts.io_dtype or tgt.io_dtype
    step("fp16: convert and guard")
    mixed_twin, rep = guard_fp16(twin, batches, tgt.budget, io_dtype=io)
    measured = [k["name"] for k in rep.kept_fp32 if k["reason"].startswith(MEASURED)]
    carried: dict[str, Any] = {"same_graph": artifact is twin}
    mixed_artifact = mixed_twin
    if artifact is not twin:
        pairs = align(twin, artifact).pairs
        keep = frozenset(pairs[n] for n in measured if n in pairs)
        mixed_artifact, conv = convert_fp16(artifact, io_dtype=io, keep_fp32_nodes=keep)
        carried.update(kept_fp32_by_measurement=sorted(keep),
                       not_carried=[n for n in measured if n not in pairs],
                       artifact_fp16_nodes=conv.fp16_nodes, artifact_nodes=conv.nodes,
                       artifact_kept_fp32=[{"name": k.name, "op_type": k.op_type, "reason": k.reason}
                                           for k in conv.kept_fp32])
    checked, emulation = emulation_report(mixed_twin)
    report = {"precision": "fp16", **rep.to_dict(), "carried_to_artifact": carried, "emulation": emulation.to_dict(),
              "summary": f"{rep.fp16_nodes}/{rep.nodes} nodes in fp16, {len(rep.kept_fp32)} float nodes kept in "
                         f"fp32 ({len(measured)} by measurement), {rep.casts_inserted} casts, io {io}"}
    manifest = {"precision": "fp16", "io_dtype": io, "measured_on": rep.measured_on, "budget": rep.budget,
                "fp16_nodes": rep.fp16_nodes, "nodes": rep.nodes, "kept_fp32": rep.kept_fp32,
                "casts_inserted": rep.casts_inserted, "clamped_values": rep.clamped_values,
                "underflowed_values": rep.underflowed_values, "carried_to_artifact": carried}
    return PrecisionResult("onnx-fp16 (ort-cpu, fp16 rounding emulated)", mixed_twin, checked,
                           mixed_artifact, report, manifest)


def _int8(twin: onnx.ModelProto, artifact: onnx.ModelProto, tgt: Target, batches: Sequence[np.ndarray], opts: Any,
          info: Any, step: Callable[[str], None]) -> PrecisionResult:
    assert tgt.quant is not None  # targets.py refuses int8 without [quant]
    activation = ACTIVATION_PROFILE[tgt.quant.activation]
    method = opts.calib_method or tgt.quant.method
    step("int8: calibration data")
    calib = load_calibration(opts.calib, info, opts.calib_samples or tgt.quant.samples, seed=opts.seed)
    eval_data = batches[-1] if opts.images else None  # make_inputs appends the user's images last
    notes = [f"WARNING: {calib.warning}"] if calib.warning else []
    if calib.skipped:
        notes.append(f"{len(calib.skipped)} calibration image(s) could not be decoded and were skipped")
    with tempfile.TemporaryDirectory(prefix="deployconv-int8-") as tmp:
        cache = Path(tmp) / "ranges.json"
        qtwin, rep, sens = quantize_within_budget(
            twin, calib, tgt.budget, eval_data=eval_data, method=method, activation=activation,
            runner=ort_runner(opts.threads), progress=step, ranges_cache=cache,
            exclude_nodes=tuple(tgt.quant.keep_float))
        qart, art_rep, carried = qtwin, rep, {"same_graph": True}
        if artifact is not twin:
            step("int8: carry the ranges and exclusions to the plugin graph")
            al = align(twin, artifact)
            mapped = Path(tmp) / "ranges_artifact.json"
            renamed = _rename_ranges(cache, mapped, tensor_map(twin, artifact, al))
            exclude = [al.pairs[n] for n in rep.excluded_nodes if n in al.pairs]
            qart, art_rep = quantize_int8(artifact, calib, method=method, activation=activation,
                                          exclude_nodes=exclude, ranges_cache=mapped)
            carried = {"same_graph": False, "ranges_renamed": renamed, "excluded": exclude,
                       "not_carried": [n for n in rep.excluded_nodes if n not in al.pairs],
                       "artifact_quantized": len(art_rep.quantized_nodes), "artifact_qdq_nodes": art_rep.qdq_nodes,
                       "artifact_placement_violations": art_rep.placement_violations}
    kept = [{k: c[k] for k in ("node", "op_type", "weight", "role", "error_alone", "reason")} for c in sens.chosen]
    sens_dict = sens.to_dict()
    sens_dict["ranked"] = sens_dict["ranked"][:20]  # the top of the ranking; the rest adds bulk, not insight
    report = {"precision": "int8", "activation": activation, "method": rep.method, "weights": rep.weights,
              "calibration": rep.calibration, "int8": rep.to_dict(), "sensitivity": sens_dict,
              "carried_to_artifact": carried,
              "summary": f"{len(rep.quantized_nodes)}/{rep.weighted_total} weighted layers int8 ({rep.weights}, "
                         f"{activation} activations per tensor, {rep.method} calibration on "
                         f"{rep.calibration['samples']} {rep.calibration['source']} samples), {len(kept)} kept "
                         f"float by sensitivity; vs fp32: cosine {sens.final['cosine']:.5f}, max abs/scale "
                         f"{sens.final['max_abs_rel_scale']:.3g}"}
    manifest = {"precision": "int8", "activation": activation, "weights": rep.weights, "method": rep.method,
                "calibration": rep.calibration, "budget": sens.budget, "accuracy_vs_fp32": sens.final,
                "evaluation": sens.evaluation, "quantized": len(rep.quantized_nodes),
                "weighted_total": rep.weighted_total, "kept_float": kept, "excluded_nodes": rep.excluded_nodes,
                "qdq_nodes": art_rep.qdq_nodes, "placement_violations": art_rep.placement_violations,
                "carried_to_artifact": carried}
    return PrecisionResult("onnx-int8 (ort-cpu)", qtwin, qtwin, qart, report, manifest, notes)


def _rename_ranges(src: Path, dst: Path, names: dict[str, str]) -> int:
    """Write ONNX Runtime's calibration cache `src` with tensor names mapped twin -> artifact; entries of
    tensors the artifact lacks (inside a custom op's ONNX-domain lowering) are dropped. Returns the count kept."""
    data = json.loads(src.read_text())
    data["data"] = {names[k]: v for k, v in data["data"].items() if k in names}
    dst.write_text(json.dumps(data))
    return len(data["data"])
