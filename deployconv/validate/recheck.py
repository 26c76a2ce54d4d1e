"""`deployconv validate DIR`: re-check an exported directory without PyTorch.

Hashes against manifest.json, then the ONNX graph on ONNX Runtime against reference.npz (inputs and the
train-form outputs recorded at export), within the target's budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deployconv.errors import BadInputError
from deployconv.export.manifest import read_manifest, verify_hashes
from deployconv.export.targets import get_target


def recheck_dir(directory: Path) -> dict[str, Any]:
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
    target = get_target(manifest["target"])
    runner = OrtRunner(directory / "model.onnx")
    runner.activate()
    name = next(iter(runner.input_metadata()))

    def onnx_stage(batch: np.ndarray) -> np.ndarray:
        return np.asarray(next(iter(runner.infer({name: batch}).values())), dtype=np.float64)

    expected = ref["expected"].astype(np.float64)
    inputs = ref["input"]
    stages = [("reference (train-fp32, recorded)", lambda _b: expected), ("onnx (ort-cpu)", onnx_stage)]
    parity, _ = run_chain(stages, [inputs], target.budget, {"reference.npz": {"samples": int(inputs.shape[0])}})
    runner.deactivate()
    return {"directory": str(directory), "hash_mismatches": mismatches, "parity": parity.to_dict()}
