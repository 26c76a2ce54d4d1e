"""The precision choice per TensorRT major: builder flags or a strongly typed network. Pure.

TensorRT 11 removed weakly typed networks: no FP16/INT8/BF16 builder flags, no calibrators; the network is
always strongly typed, so the ONNX itself must carry the target's precision (fp16/bf16 tensors, Q/DQ for
int8). TensorRT 10 has both ways: builder flags let TensorRT pick lower precision per layer; STRONGLY_TYPED
honours the ONNX types exactly. deployconv never calibrates: int8 comes only from explicit Q/DQ nodes.

TensorRT 8.5/8.6 (JetPack 5.1/6.0, no plugins there): precision builder flags only, no bf16.
DLA (fp16 / int8 only): on TensorRT 10 it is built with precision flags, as NVIDIA documents it
(`--useDLACore=N --fp16 --allowGPUFallback`); on TensorRT 11 DLA networks are strongly typed too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from deployconv.core.errors import BadInputError, MissingEnvironmentError
from deployconv.engine.onnx_facts import OnnxFacts

DLA_PRECISIONS = ("fp16", "int8")
_FLAG = {"fp16": "FP16", "bf16": "BF16", "int8": "INT8"}
_ONNX_FORM = {"fp16": "float16 tensors", "bf16": "bfloat16 tensors", "int8": "explicit Q/DQ (QuantizeLinear/DequantizeLinear) nodes"}


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # the target's precision
    trt_major: int
    strongly_typed: bool
    builder_flags: tuple[str, ...]  # TensorRT BuilderFlag member names: "FP16", "INT8", "BF16"
    onnx_carries: tuple[str, ...]  # reduced precisions already in the ONNX: "fp16", "bf16", "int8"
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _export_fix(precision: str) -> str:
    return (f"export with the onnx-{precision} precision first (e.g. `deployconv export MODEL --target onnx-{precision}`; "
            + ("it keeps normalisations, softmax and reductions in fp32" if precision in ("fp16", "bf16")
               else "it inserts Q/DQ nodes with calibrated scales")
            + "), then build the engine from that model.onnx")


def _needs_carried(precision: str, trt_major: int, facts: OnnxFacts, reason: str) -> BadInputError:
    where = facts.path or "the ONNX model"
    carried = ", ".join(sorted(facts.carried_precisions)) or "none (plain fp32)"
    if precision == "int8":
        return BadInputError(
            f"an int8 engine needs explicit Q/DQ nodes in the ONNX; {where} has none",
            why="deployconv builds int8 only from explicitly quantized graphs: no calibrator "
                + ("(TensorRT 11 removed implicit quantization)" if trt_major >= 11 else "(implicit quantization "
                   "is deprecated in TensorRT 10 and removed in 11)"),
            fix=_export_fix("int8"))
    article = "a" if precision == "bf16" else "an"  # "an fp16", "a bf16"
    return BadInputError(
        f"{article} {precision} engine on TensorRT {trt_major} needs {article} {precision} ONNX; {where} carries "
        f"{carried}",
        why=f"{reason}: precision comes from the ONNX tensor types ({_ONNX_FORM[precision]}), so a plain fp32 "
            f"ONNX would build an fp32 engine",
        fix=_export_fix(precision))


def choose_precision(precision: str, trt_major: int, facts: OnnxFacts, *, strongly_typed: str = "auto",
                   dla: bool = False) -> PrecisionChoice:
    """How to get `precision` out of TensorRT `trt_major` for the graph described by `facts`.

    Raises BadInputError for combinations that cannot give the asked precision (with what to export instead).
    """
    carried = facts.carried_precisions
    carries = tuple(sorted(carried))
    notes: list[str] = []
    if dla and precision not in DLA_PRECISIONS:
        raise BadInputError(f"DLA runs fp16 and int8 only; the target asks {precision}",
                            fix="use an fp16 or int8 target for DLA, or build for the GPU (no dla_core)")
    if precision == "int8" and "int8" not in carried:
        raise _needs_carried("int8", trt_major, facts, "")
    extra = sorted(carried - {precision})
    if extra:
        notes.append(f"the ONNX also carries {', '.join(extra)} ({'; '.join(_ONNX_FORM[p] for p in extra)}): "
                     f"those parts run in that precision, not {precision}")

    if trt_major >= 11:
        if strongly_typed == "never":
            raise BadInputError(f"strongly_typed='never' is impossible on TensorRT {trt_major}",
                                why="TensorRT 11 removed weakly typed networks and the precision builder flags",
                                fix="use strongly_typed='auto' (TensorRT 11 is always strongly typed)")
        if precision != "fp32" and precision not in carried:
            raise _needs_carried(precision, trt_major, facts, "TensorRT 11 networks are always strongly typed")
        if dla:
            notes.append("DLA on TensorRT 11 is strongly typed: the ONNX tensor types decide what runs on DLA")
            if precision == "int8" and "fp16" not in carried:
                notes.append("the layers the Q/DQ nodes leave in float are fp32 in this ONNX: DLA has no fp32, so on "
                             "TensorRT 11 they run on the GPU (GPU fallback); an fp16 float part would keep them on DLA")
        return PrecisionChoice(precision, trt_major, True, (), carries, tuple(notes))

    if trt_major < 10:  # 8.5 / 8.6 (JetPack 5.1 / 6.0): weakly typed only, no BF16
        if "bf16" in carried or precision == "bf16":
            raise MissingEnvironmentError(f"bf16 needs TensorRT 10 or newer; this is TensorRT {trt_major}",
                                          fix="use an fp16 target on this device")
        if strongly_typed == "always":
            raise BadInputError(f"strongly_typed='always' on TensorRT {trt_major}",
                                why="deployconv builds strongly typed networks on TensorRT 10+ only",
                                fix="use strongly_typed='auto'")
        flags = ({_FLAG[precision]} if precision != "fp32" else set()) | {_FLAG[p] for p in carried}
        if dla and "INT8" in flags:
            flags.add("FP16")
        notes.append(f"TensorRT {trt_major}: weakly typed (precision builder flags)")
        return PrecisionChoice(precision, trt_major, False, _ordered(flags), carries, tuple(notes))

    # TensorRT 10
    if dla:
        if strongly_typed == "always":
            raise BadInputError("strongly_typed='always' with DLA on TensorRT 10",
                                why="DLA on TensorRT 10 is built with the FP16/INT8 builder flags",
                                fix="use strongly_typed='auto' for DLA targets")
        flags = {_FLAG[precision]} | {_FLAG[p] for p in carried}
        if "INT8" in flags:
            flags.add("FP16")  # DLA has no fp32: the layers Q/DQ leaves unquantized run in fp16
        return PrecisionChoice(precision, trt_major, False, _ordered(flags), carries, tuple(notes))
    if strongly_typed == "always" and precision != "fp32" and precision not in carried:
        raise _needs_carried(precision, trt_major, facts, "strongly_typed='always'")
    strong = strongly_typed == "always" or (
        strongly_typed == "auto" and bool(carried) and (precision == "fp32" or precision in carried))
    if strong:
        if strongly_typed == "auto":
            notes.append(f"the ONNX carries {', '.join(carries)}: built strongly typed so its types are honoured")
        return PrecisionChoice(precision, trt_major, True, (), carries, tuple(notes))
    flags = ({_FLAG[precision]} if precision != "fp32" else set()) | {_FLAG[p] for p in carried}
    if flags:
        notes.append("weakly typed: TensorRT may run layers in any enabled precision ("
                     + ", ".join(_ordered(flags)) + ", fp32) by speed; TensorRT 11 will need the ONNX to carry it")
    return PrecisionChoice(precision, trt_major, False, _ordered(flags), carries, tuple(notes))


def _ordered(flags: set[str]) -> tuple[str, ...]:
    return tuple(f for f in ("FP16", "BF16", "INT8") if f in flags)
