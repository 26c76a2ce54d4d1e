"""int8 post-training quantization of an fp32 ONNX graph into explicit Q/DQ (QDQ format), the form
TensorRT 11 (strongly typed only) and TensorRT 10 build and ONNX Runtime runs.

ONNX Runtime's `quantize_static` does the calibration and the Q/DQ insertion; deployconv decides *where*
(qdq_rules: which nodes, which Add inputs) and then checks the result against the same rules. Weights are
always symmetric int8 per output channel (zero point 0); activations per tensor, either
- "int8-symmetric" (profile `tensorrt`, S8S8, zero point 0): what TensorRT accepts, for onnx-int8 and the
  TensorRT targets; or
- "uint8" (profile `ort-cpu`, U8S8, asymmetric): the fastest explicit Q/DQ form on ONNX Runtime CPU
  (measured on a Zen 4 with AVX-512 VNNI, ORT 1.31; benchmarks/results/int8_cpu.json), for ort-cpu-int8;
- "int8-asymmetric" (profile `ort-cpu-s8`): ort-cpu's graph with S8 activations, kept to measure S8S8
  against U8S8 on the same structure.
Calibration: "minmax" (range of what was seen), "entropy" (KL-divergence threshold, TensorRT's classic
choice), "percentile" (clip at the 99.999th percentile of |x| by default).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx

from deployconv.core.errors import BadInputError
from deployconv.export.precision.calibration import CalibrationData, ort_reader
from deployconv.export.precision.int8_graph import (
    DEQUANTIZE,
    QUANTIZE,
    WEIGHTED,
    GraphIndex,
    float_source,
    keep_outputs_float,
    name_nodes,
    prune_dead_qdq,
)
from deployconv.export.precision.qdq_rules import (
    QdqPlan,
    check_qdq_placement,
    match_exclusions,
    plan_qdq,
    profile_for,
)

METHODS = ("minmax", "entropy", "percentile")
ACTIVATIONS = ("int8-symmetric", "uint8", "int8-asymmetric")
# Which activation type each int8 target uses (data for targets.py / the pipeline).
TARGET_ACTIVATION = {"onnx-int8": "int8-symmetric", "ort-cpu-int8": "uint8"}
DEFAULT_PERCENTILE = 99.999
CALIB_BATCH = 8


@dataclass
class Int8Report:
    """What was quantized and how; JSON form is `to_dict()`."""

    profile: str
    activation: str
    weights: str
    method: str
    calibration: dict[str, Any]
    quantized_nodes: list[str]
    residual_adds: dict[str, int | None]
    folded_activations: list[str]
    excluded_nodes: list[str]
    float_weighted_nodes: list[str]
    weighted_total: int
    qdq_nodes: dict[str, int]
    placement_violations: list[str]
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def _quiet_ort() -> Iterator[None]:
    """quantize_static logs advice ("consider pre-processing") on the root logger at WARNING and prints the
    histogram calibrators' progress to stdout; keep both out of the user's terminal (and out of --json
    output) during the call only."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


@contextlib.contextmanager
def _histogram_errors(method: str) -> Iterator[None]:
    """ORT's histogram calibrators cannot bin a tensor whose values are (nearly) all equal (e.g. a layer
    with all-zero weights): say so, and what works instead."""
    try:
        yield
    except ValueError as e:
        if "bins" not in str(e):
            raise
        raise BadInputError(f"{method} calibration failed: a tensor is (nearly) constant on the calibration data",
                            why=f"ONNX Runtime's histogram calibrator: {e}",
                            fix="use the minmax method (or entropy), or calibrate on more varied data") from e


def _single_input(proto: onnx.ModelProto) -> str:
    inits = {t.name for t in proto.graph.initializer}
    names = [i.name for i in proto.graph.input if i.name not in inits]
    if len(names) != 1:
        raise BadInputError(f"int8 calibration needs a graph with one input, this one has {len(names)}: {names}")
    return names[0]


def resolve_exclusions(proto: onnx.ModelProto, exclude: Sequence[str]) -> list[str]:
    """Exact node names pass through; anything else is a pattern (qdq_rules.match_exclusions)."""
    names = {n.name for n in proto.graph.node}
    exact = [e for e in exclude if e in names]
    patterns = [e for e in exclude if e not in names]
    return list(dict.fromkeys([*exact, *match_exclusions(proto, patterns)]))


def _float_where_not_planned(proto: onnx.ModelProto, plan: QdqPlan, everywhere: bool) -> onnx.ModelProto:
    """Once ONNX Runtime quantizes a tensor, every reader of it reads the DQ output, float ops and excluded
    nodes too, and it quantizes both inputs of an Add. Put reads back to float: those of excluded nodes
    (an exclusion means float), and with `everywhere` (tensorrt profile, R3/R4) every read of an activation
    DQ the plan does not call for (the main input of a residual Add, a Transpose or a normalisation that
    shares its input with a conv). Then drop the Q/DQ nobody reads."""
    allowed = {(name, i) for name in plan.weighted for i in (0, 1)}
    allowed |= {(name, skip) for name, skip in plan.residual_adds.items() if skip is not None}
    allowed |= {(name, i) for name, skip in plan.residual_adds.items() if skip is None for i in (0, 1)}
    excluded = set(plan.excluded)
    idx = GraphIndex.of(proto)
    for node in proto.graph.node:
        if not everywhere and node.name not in excluded:
            continue
        for i, name in enumerate(node.input):
            src = float_source(name, idx)
            if src != name and (node.name, i) not in allowed:
                node.input[i] = src
    return prune_dead_qdq(proto)


def ort_quantize_options(activation: str, percentile: float = DEFAULT_PERCENTILE) -> dict[str, Any]:
    """The extra_options for onnxruntime.quantization.quantize_static that carry out a profile."""
    prof = profile_for(activation)
    return {
        "ActivationSymmetric": prof.symmetric_activations,
        "WeightSymmetric": True,
        "QuantizeBias": prof.quantize_bias,
        "OpTypesToExcludeOutputQuantization": sorted(prof.no_output_q),
        "CalibTensorRangeSymmetric": prof.symmetric_activations,
        "CalibPercentile": percentile,
        "CalibStridedMinMax": 1,  # collect batch by batch: bounded memory for the histogram methods
    }


def quantize_int8(fp32_proto: onnx.ModelProto, calib: CalibrationData, *, method: str = "minmax",
                  activation: str = "int8-symmetric", exclude_nodes: Sequence[str] = (), per_channel: bool = True,
                  ranges_cache: Path | None = None, percentile: float = DEFAULT_PERCENTILE,
                  batch_size: int = CALIB_BATCH) -> tuple[onnx.ModelProto, Int8Report]:
    """Quantize `fp32_proto` to explicit Q/DQ int8. `exclude_nodes` (node names or fnmatch patterns on node
    or weight names) stay float. `ranges_cache`: a JSON file of calibrated tensor ranges; when it exists the
    calibration run is skipped (it must come from the same graph, method and activation type)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in METHODS:
        raise BadInputError(f"unknown calibration method {method!r}", fix=f"use one of {', '.join(METHODS)}")
    prof = profile_for(activation)
    if len(calib) == 0:
        raise BadInputError("no calibration samples")
    t0 = time.perf_counter()
    named = name_nodes(fp32_proto)
    input_name = _single_input(named)
    excluded = resolve_exclusions(named, exclude_nodes)
    plan = plan_qdq(named, prof, excluded)
    if not plan.weighted:
        raise BadInputError("nothing left to quantize in int8",
                            why="no Conv/ConvTranspose/MatMul/Gemm is left after the exclusions",
                            fix="exclude fewer nodes")
    calib_method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                    "percentile": CalibrationMethod.Percentile}[method]
    extra = ort_quantize_options(activation, percentile)
    op_types = sorted({n.op_type for n in named.graph.node if n.name in set(plan.nodes_to_quantize)})
    with tempfile.TemporaryDirectory(prefix="deployconv-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(named, src)  # a path, not the proto: quantize_static rewrites a given proto's weights in place
        with _quiet_ort(), _histogram_errors(method):
            quantize_static(
                str(src), str(dst), ort_reader(calib, input_name, batch_size), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=op_types, per_channel=per_channel, reduce_range=False,
                activation_type=QuantType.QUInt8 if activation == "uint8" else QuantType.QInt8,
                weight_type=QuantType.QInt8, nodes_to_quantize=plan.nodes_to_quantize, nodes_to_exclude=excluded,
                calibrate_method=calib_method, extra_options=extra,
                calibration_cache_path=str(ranges_cache) if ranges_cache else None)
        q = onnx.load(str(dst))
    q = _float_where_not_planned(q, plan, everywhere=prof.residual_skip_only)
    q = keep_outputs_float(q)
    del q.metadata_props[:]
    q.metadata_props.extend(named.metadata_props)
    violations = check_qdq_placement(q, prof, per_channel=per_channel)
    counts = Counter(n.op_type for n in q.graph.node if n.op_type in (QUANTIZE, DEQUANTIZE))
    report = Int8Report(
        profile=prof.name, activation=activation,
        weights="int8 symmetric " + ("per output channel" if per_channel else "per tensor"),
        method=method if method != "percentile" else f"percentile ({percentile})",
        calibration=calib.describe(), quantized_nodes=plan.weighted, residual_adds=plan.residual_adds,
        folded_activations=plan.removable, excluded_nodes=excluded, float_weighted_nodes=plan.float_weighted,
        weighted_total=sum(n.op_type in WEIGHTED for n in named.graph.node),
        qdq_nodes={QUANTIZE: counts[QUANTIZE], DEQUANTIZE: counts[DEQUANTIZE]},
        placement_violations=violations, seconds=round(time.perf_counter() - t0, 2),
        warnings=[w for w in (calib.warning,) if w])
    return q, report
