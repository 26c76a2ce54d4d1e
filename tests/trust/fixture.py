"""One small export and bundle per session, made once and copied per case: the tiny fixture model exported for
the onnx target, bundled from a minimal checkout (a CMakeLists.txt, one plugin source, a two-file deployconv
package), so a copy is a dozen small files and `check` runs in a fraction of a second."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

FIXTURE_MODEL = Path(__file__).parents[1] / "fixtures" / "tiny_model.py"
MODEL_SOURCE = f"{FIXTURE_MODEL}:build"


@dataclass(frozen=True)
class TrustFixture:
    root: Path
    export: Path  # deployconv export of the tiny model (onnx target)
    bundle: Path  # deployconv bundle of it (minimal checkout)
    tarball: Path  # bundle.tar.gz
    checkpoint: Path  # a valid state_dict of the tiny model (torch.save)
    target_toml: Path  # a valid user target file


def minimal_checkout(dest: Path) -> Path:
    (dest / "plugins_cpp" / "trt").mkdir(parents=True)
    (dest / "plugins_cpp" / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.18)\n"
                                                         "file(GLOB SRC trt/*.cpp)\n")
    (dest / "plugins_cpp" / "trt" / "plugin.cpp").write_text("// a plugin source\n")
    (dest / "deployconv").mkdir()
    (dest / "deployconv" / "__init__.py").write_text('__version__ = "0.1.0"\n')
    (dest / "pyproject.toml").write_text('[project]\nname = "deployconv"\nversion = "0.1.0"\n')
    return dest


def build_fixture(root: Path) -> TrustFixture:
    import torch

    from deployconv.core.target import TARGET_DIR
    from deployconv.pipeline.bundle import make_bundle, tarball_for
    from deployconv.pipeline.export import ExportOptions, export

    root = Path(root)
    exp = root / "export"
    result = export(MODEL_SOURCE, "onnx", exp, options=ExportOptions(bench=False, batch=1, parity_batches=1))
    assert result.passed
    bundle = make_bundle(exp, root / "bundles" / "tiny", root=minimal_checkout(root / "checkout")).out
    from tests.fixtures.tiny_model import build

    ckpt = root / "tiny.pt"
    torch.save(build().state_dict(), ckpt)
    toml = root / "target.toml"
    shutil.copyfile(TARGET_DIR / "onnx.toml", toml)
    return TrustFixture(root, exp, bundle, tarball_for(bundle), ckpt, toml)
