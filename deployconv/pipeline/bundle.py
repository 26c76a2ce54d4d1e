"""Device bundle: one self-contained folder, and a byte-for-byte reproducible .tar.gz of it, with everything a
device needs to build, check, validate and benchmark an exported model without PyTorch or this checkout.

    OUT/model.onnx, reference.npz, report.json   from the export
    OUT/plugins/                                  plugins_cpp/ (CUDA kernels, TensorRT plugins, CMake)
    OUT/deployconv_src/                           the deployconv package (pip-installable, torch-free)
    OUT/dla.json                                  DLA targets: where each layer runs (deployconv.engine.dla)
    OUT/README.md                                 the exact on-device commands for the target
    OUT/manifest.json                             the export's manifest + a "bundle" entry, sha256 of every file
    OUT.tar.gz                                    sorted entries, fixed mtime/uid/gid/modes, gzip without name/time

The export itself is the pipeline's job (`deployconv.pipeline.export.export`); `make_bundle` packs its result.
Writes are atomic and an existing OUT or OUT.tar.gz is kept unless `force`.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tarfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from deployconv.core.artifacts import version
from deployconv.core.artifacts.manifest import BundleInfo, Manifest
from deployconv.core.artifacts.names import (
    DLA_FILE,
    ENGINE,
    EXPORT_REQUIRED,
    MANIFEST,
    MODEL_ONNX,
    PLUGIN_LIBRARY,
    PLUGINS_DIR,
    PYTHON_DIR,
)
from deployconv.core.errors import BadInputError, DeployconvError
from deployconv.core.fsio import atomic_dir, atomic_path, refuse_overwrite, sha256_file
from deployconv.core.io_spec import IOSpec
from deployconv.core.target import get_target
from deployconv.engine import (
    engine_spec_for,
    facts_from_model,
    make_recipe,
    trtexec_command,
    trtexec_run_command,
)
from deployconv.engine.dla import dla_capability
from deployconv.pipeline.bundle_readme import ReadmeFacts, render_readme
from deployconv.trust.closed import require_closed
from deployconv.trust.manifest import read_manifest, write_manifest
from deployconv.trust.pin import manifest_sha256, pin_path, write_pin
from deployconv.trust.signing import load_private_key, sign_manifest

BUNDLE_FORMAT = str(version.BUNDLE)
EXPORT_FILES = EXPORT_REQUIRED
# 2000-01-01T00:00:00Z: any fixed time makes the tar reproducible; this one is not the epoch, which some tools
# treat as "no time".
FIXED_MTIME = 946684800
# What a source copy leaves out: build outputs, caches, editor and VCS droppings.
SKIP_DIRS = frozenset({"__pycache__", "build", "dist", ".git", ".pytest_cache", ".ruff_cache"})
SKIP_SUFFIXES = (".pyc", ".pyo", ".o", ".obj", ".so", ".a", ".egg-info")
TRT_VERSION_FALLBACK = "10.3"  # the trtexec line's TensorRT when a target names none


@dataclass
class BundleResult:
    out: Path
    tarball: Path
    files: int
    tar_sha256: str
    dla: dict[str, Any] | None
    trtexec: str | None
    notes: list[str] = field(default_factory=list)
    trtexec_run: str | None = None  # trtexec running the plan `trtexec` builds
    manifest_sha256: str = ""  # the pin: `deployconv check --expect` on the device
    pin_file: Path | None = None  # OUT.manifest.sha256
    signer: str | None = None  # sha256 of the Ed25519 public key that signed manifest.json, when --sign

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"], d["tarball"] = str(self.out), str(self.tarball)
        d["pin_file"] = None if self.pin_file is None else str(self.pin_file)
        return d


def repo_root() -> Path:
    """The checkout deployconv runs from: plugins_cpp/ and pyproject.toml live next to the package."""
    return Path(__file__).resolve().parents[2]  # deployconv/pipeline/bundle.py -> the checkout


def tarball_for(out_dir: Path) -> Path:
    return Path(out_dir).with_name(Path(out_dir).name + ".tar.gz")


def _skipped(path: Path) -> bool:
    return path.name.startswith(".") or path.name in SKIP_DIRS or path.name.endswith(SKIP_SUFFIXES)


def copy_sources(src: Path, dst: Path) -> int:
    """Copy the regular files of `src` (recursively, sources only) to `dst`; the number of files copied."""
    count = 0
    for p in sorted(src.iterdir()):
        if _skipped(p) or p.is_symlink():
            continue
        if p.is_dir():
            count += copy_sources(p, dst / p.name)
        elif p.is_file():
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dst / p.name)
            count += 1
    return count


def write_deterministic_tar(src: Path, dest: Path, arcname: str) -> None:
    """`src` as `arcname/...` in a gzipped tar whose bytes depend only on the file names and contents: entries
    sorted, mtime fixed, uid/gid 0 without names, modes 0755 (dirs) / 0644 (files), no name/time in the gzip
    header."""
    src = Path(src)
    paths = sorted(src.rglob("*"), key=lambda p: p.relative_to(src).as_posix())

    def info(name: str, *, is_dir: bool, size: int = 0) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
        ti.mode = 0o755 if is_dir else 0o644
        ti.size = size
        ti.mtime = FIXED_MTIME
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti

    with open(dest, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info(arcname, is_dir=True))
        for p in paths:
            name = f"{arcname}/{p.relative_to(src).as_posix()}"
            if p.is_symlink():
                raise BadInputError(f"{p} is a symbolic link", fix="bundles hold regular files only")
            if p.is_dir():
                tar.addfile(info(name, is_dir=True))
            else:
                with open(p, "rb") as f:
                    tar.addfile(info(name, is_dir=False, size=p.stat().st_size), f)


def trtexec_line(proto: Any, target: Any) -> tuple[str | None, str]:
    """The trtexec command building the same engine as `deployconv build-engine` (its build recipe), for
    the oldest TensorRT the target accepts, with device-side paths; or None and why there is none."""
    build, _run, note = trtexec_lines(proto, target)
    return build, note


def trtexec_lines(proto: Any, target: Any, io_spec: dict[str, Any] | None = None) -> tuple[str | None, str | None, str]:
    """(build line, run line, note): `trtexec_line` and the trtexec line running the plan it builds (plugins
    loaded again unless the plan carries them). `io_spec` (the manifest's): its optimization profiles."""
    if target.runtime != "tensorrt":
        return None, None, "the target runs on ONNX Runtime"
    version = target.tensorrt.min_version if target.tensorrt else TRT_VERSION_FALLBACK
    try:
        spec = engine_spec_for(target, **(IOSpec.from_dict(io_spec).engine_shapes() if io_spec else {}))
        facts = facts_from_model(proto, MODEL_ONNX)
        libs = (PLUGIN_LIBRARY,) if facts.plugin_nodes else ()
        recipe = make_recipe(spec, version, facts, libs)
    except DeployconvError as e:
        return None, None, f"TensorRT {version} cannot build this target: {e.what}"
    return (trtexec_command(recipe, MODEL_ONNX, libs, ENGINE),
            trtexec_run_command(recipe, libs, ENGINE), f"TensorRT {version}")


def _check_export(export_dir: Path) -> Manifest:
    """The export's manifest, after the closed check: a bundle carries exactly what the export verified, and
    every path it copies (ort_model included) is a listed, hash-checked file inside the export."""
    if not export_dir.is_dir():
        raise BadInputError(f"{export_dir} is not a directory", fix="pass the folder written by `deployconv export`")
    manifest = read_manifest(export_dir)
    if manifest.is_bundle:
        raise BadInputError(f"{export_dir} is a bundle, not an export", fix="bundle the folder `deployconv export` "
                                                                            "wrote")
    require_closed(export_dir, manifest, error=BadInputError,
                   fix="re-export it, or restore the original files (a bundle must carry exactly what the export "
                       "verified)")
    return manifest


def _io_text(manifest: Manifest) -> str:
    def one(v: dict[str, Any]) -> str:
        return f"{v['name']}: {v['dtype']}[{', '.join(str(d) for d in v['shape'])}]"

    io = manifest.io
    return ", ".join(one(v) for v in io.get("inputs", [])) + " -> " + ", ".join(one(v) for v in io.get("outputs", []))


def _device_text(target: Any) -> str:
    dev = target.device
    if dev is None:
        return "any NVIDIA GPU" if target.runtime == "tensorrt" else "any machine with ONNX Runtime"
    parts = [dev.family]
    if dev.jetpack:
        parts.append("JetPack " + "/".join(dev.jetpack))
    if dev.sm:
        parts.append(", ".join(f"sm_{s}" for s in dev.sm))
    if target.uses_dla:
        parts.append(f"DLA core {target.tensorrt.dla_core}")
    return ", ".join(parts)


def _tensorrt_text(target: Any) -> str:
    trt = target.tensorrt
    if trt is None:
        return ""
    if trt.max_version:
        return f"{trt.min_version} to {trt.max_version}.x"
    return f"{trt.min_version} or newer"


def make_bundle(export_dir: Path, out_dir: Path, *, force: bool = False, root: Path | None = None,
                sign_key: Path | None = None) -> BundleResult:
    """Pack the export in `export_dir` into the bundle folder `out_dir` and `out_dir`.tar.gz (see the module
    docstring). `root` is the checkout holding plugins_cpp/, pyproject.toml and deployconv/ (default: the one
    this deployconv runs from). `sign_key`: an Ed25519 private key (deployconv keygen) that signs manifest.json
    (manifest.json.sig, inside the bundle). The manifest's sha256 (the pin) goes to OUT.manifest.sha256."""
    import onnx

    export_dir, out_dir = Path(export_dir), Path(out_dir)
    tarball = tarball_for(out_dir)
    refuse_overwrite(out_dir, force)
    refuse_overwrite(tarball, force)
    refuse_overwrite(pin_path(out_dir), force)
    if sign_key is not None:
        load_private_key(sign_key)
    if out_dir.resolve() == export_dir.resolve() or export_dir.resolve() in out_dir.resolve().parents:
        raise BadInputError(f"the bundle {out_dir} would be inside the export {export_dir}",
                            fix="choose an --out outside the exported directory")
    manifest = _check_export(export_dir)
    target = get_target(manifest.target)
    root = Path(root) if root is not None else repo_root()
    plugin_src, package_src, pyproject = root / "plugins_cpp", root / "deployconv", root / "pyproject.toml"
    plugins = manifest.plugin_names
    has_plugin_src = (plugin_src / "CMakeLists.txt").is_file()
    if plugins and not has_plugin_src:
        raise BadInputError(f"the model uses deployconv plugins ({', '.join(plugins)}) but {plugin_src} has no "
                            "CMakeLists.txt", why="the device builds the plugin library from those sources",
                            fix="run `deployconv bundle` from a deployconv checkout (git clone), not a wheel install")
    has_python_src = pyproject.is_file() and (package_src / "__init__.py").is_file()
    notes: list[str] = []
    if not has_python_src:
        notes.append(f"no deployconv sources at {root} (pyproject.toml + deployconv/): install deployconv on the "
                     "device yourself")

    proto = onnx.load(str(export_dir / MODEL_ONNX))
    dla = dla_capability(proto, target) if target.uses_dla else None
    trtexec, trtexec_run, trtexec_note = trtexec_lines(proto, target, manifest.io_spec)
    if target.runtime == "tensorrt" and trtexec is None:
        notes.append(f"no trtexec line: {trtexec_note}")
    with atomic_dir(out_dir, force) as tmp:
        for name in EXPORT_FILES:
            shutil.copyfile(export_dir / name, tmp / name)
        twin = manifest.ort_model
        if manifest.has_ort_twin:  # the plugin graph's ONNX Runtime twin: on-device parity without the engine
            (tmp / twin).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(export_dir / twin, tmp / twin)
        n_plugin = copy_sources(plugin_src, tmp / PLUGINS_DIR) if has_plugin_src else 0
        n_python = 0
        if has_python_src:
            n_python = copy_sources(package_src, tmp / PYTHON_DIR / "deployconv")
            for extra in ("pyproject.toml", "README.md", "LICENSE"):
                if (root / extra).is_file():
                    shutil.copyfile(root / extra, tmp / PYTHON_DIR / extra)
                    n_python += 1
        if dla is not None:
            (tmp / DLA_FILE).write_text(json.dumps(dla.to_dict(), indent=2) + "\n")
        (tmp / "README.md").write_text(render_readme(ReadmeFacts(
            model=manifest.model, target=target.name, description=target.description, runtime=target.runtime,
            precision=target.precision, io=_io_text(manifest), device=_device_text(target),
            tensorrt=_tensorrt_text(target), plugins=tuple(plugins),
            plugin_archs=tuple(target.tensorrt.plugin_archs) if target.tensorrt else (),
            has_plugin_sources=bool(n_plugin), has_python_sources=bool(n_python), trtexec=trtexec,
            trtexec_note=trtexec_note, trtexec_run=trtexec_run, dla_summary=dla.summary() if dla else None,
            device_notes=target.device.notes if target.device else (), has_ort_twin=manifest.has_ort_twin)))
        write_manifest(tmp, replace(manifest, files={}, bundle=BundleInfo(
            format=BUNDLE_FORMAT,
            export_manifest_sha256=sha256_file(export_dir / MANIFEST),
            plugin_sources=n_plugin,
            python_sources=n_python,
            plugin_library=PLUGIN_LIBRARY if plugins else None,
            plugin_archs=tuple(target.tensorrt.plugin_archs) if target.tensorrt else (),
            dla=dla.counts if dla else None,
            trtexec=trtexec,
            trtexec_run=trtexec_run,
        )))
        files = len(read_manifest(tmp).files) + 1
        signer = sign_manifest(tmp, sign_key) if sign_key is not None else None
        digest = manifest_sha256(tmp)
        with atomic_path(tarball) as tmp_tar:
            write_deterministic_tar(tmp, tmp_tar, out_dir.name)
    _, pin = write_pin(out_dir)
    return BundleResult(out=out_dir, tarball=tarball, files=files, tar_sha256=sha256_file(tarball),
                        dla=dla.to_dict() if dla else None, trtexec=trtexec, notes=notes, trtexec_run=trtexec_run,
                        manifest_sha256=digest, pin_file=pin, signer=signer)
