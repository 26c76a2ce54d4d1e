"""The pipeline's precision step: turn the validated fp32 graphs into the target's fp16 or int8 graphs.

Decisions are made on the ONNX Runtime twin, where they can be measured (the fp16 guard, int8 calibration and
sensitivity), then carried over to the artifact: the same graph when the target has no plugin nodes, otherwise by
the node alignment of `deployconv.export.align`. bf16 stays an fp32 ONNX (TensorRT 10's BF16 flag; ORT CPU cannot
check a bf16 graph), and the report says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from deployconv.export.targets import Target


@dataclass
class PrecisionResult:
    stage: str  # parity-chain stage name, e.g. "onnx-fp16 (ort-cpu)"
    twin: onnx.ModelProto  # what ONNX Runtime runs (validated)
    artifact: onnx.ModelProto  # what model.onnx holds
    report: dict  # report.json["precision"]
    manifest: dict  # manifest.json["precision_report"]: what was kept in float and why


def apply_precision(graphs: Any, tgt: Target, batches: Sequence[np.ndarray], opts: Any,
                    progress: Callable[[str], None] | None = None) -> PrecisionResult | None:
    if tgt.precision == "fp32":
        return None
    if tgt.precision == "bf16":
        return None
    raise NotImplementedError(tgt.precision)
