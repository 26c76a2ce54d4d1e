"""`deployconv validate DIR`: re-check an exported directory without PyTorch.

Hashes against manifest.json, then the ONNX graph on ONNX Runtime against reference.npz (inputs and the
train-form outputs recorded at export), within the target's budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deployconv.errors import BadInputError
from deployconv.export.manifest import read_manifest, verify_hashes
from deployconv.export.targets import FP32_BUDGET, target_of_manifest


def _torch_chain(manifest: dict[str, Any]) -> tuple[list | None, str]:
    """The PyTorch stages rebuilt from the manifest, or None with the reason they cannot be."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None, "torch not installed: checked ONNX against the recorded reference only"
    if not manifest.get("reproducible"):
        return None, "exported from an in-memory module: checked ONNX against the recorded reference only"
    weights = manifest.get("weights")
    if weights:
        from deployconv.export.manifest import sha256_file

        if not Path(weights).is_file():
            return None, f"weights {weights} not found here: checked ONNX against the recorded reference only"
        if sha256_file(Path(weights)) != manifest.get("weights_sha256"):
            raise BadInputError(f"weights {weights} differ from the ones exported (sha256)",
                                fix="pass the directory exported from these weights, or re-export")
    from deployconv.export.pipeline import create_seeded, torch_stages
    from deployconv.reparam import reparameterize

    train = create_seeded(manifest["model"], weights, tuple(manifest.get("allow_missing", ())),
                          int(manifest.get("init_seed", 0)))
    return torch_stages(train, reparameterize(train)), "full chain re-run from the model source"


def recheck_dir(directory: Path, *, torch_free: bool = False) -> dict[str, Any]:
    from deployconv.runtime.ort import OrtRunner
    from deployconv.validate.parity import run_chain

    directory = Path(directory)
    if not directory.is_dir():
        raise BadInputError(f"{directory} is not a directory", fix="pass the folder written by `deployconv export`")
    manifest = read_manifest(directory)
    mismatches = verify_hashes(directory, manifest)
    ref_path = directory / "reference.npz"
    if not ref_path.is_file():
        raise BadInputError(f"{directory} has no reference.npz", fix="re-export with this deployconv version")
    ref = np.load(ref_path)
    target = target_of_manifest(manifest, str(directory / "manifest.json"))
    runner = OrtRunner(directory / manifest.get("ort_model", "model.onnx"))
    runner.activate()
    name = next(iter(runner.input_metadata()))

    meta = runner.input_metadata()[name]
    static = meta.shape[0] if meta.shape and isinstance(meta.shape[0], int) else None
    dtype = meta.dtype or np.float32

    def onnx_stage(batch: np.ndarray) -> np.ndarray:
        step = static or len(batch)  # static-batch exports (DLA) take the reference in chunks of their batch
        outs = [next(iter(runner.infer({name: batch[i:i + step].astype(dtype)}).values()))
                for i in range(0, len(batch), step)]
        return np.concatenate([np.asarray(o, dtype=np.float64) for o in outs], axis=0)

    expected = ref["expected"].astype(np.float64)
    inputs = ref["input"]
    chain, mode = (None, "--torch-free: checked ONNX against the recorded reference only") if torch_free \
        else _torch_chain(manifest)
    recorded = ("reference (train-fp32, recorded)", lambda _b: expected)
    if chain:  # fp64 -> fp32 train -> recorded reference (must equal a fresh fp32 run) -> deploy -> ONNX
        fp64, fp32, deploy = chain
        stages = [fp64, fp32, recorded, deploy, ("onnx (ort-cpu)", onnx_stage)]
    else:
        stages = [recorded, ("onnx (ort-cpu)", onnx_stage)]
    budget = FP32_BUDGET if target.precision != "fp32" else target.budget
    parity, _ = run_chain(stages, [inputs], budget, {"reference.npz": {"samples": int(inputs.shape[0])}},
                          stage_budgets={"onnx (ort-cpu)": target.budget})
    runner.deactivate()
    return {"directory": str(directory), "mode": mode, "hash_mismatches": mismatches, "parity": parity.to_dict()}
