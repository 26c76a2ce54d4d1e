"""The trust fuzz harness, shared by tests/trust/test_fuzz.py (a short run in CI) and tools/fuzz_trust.py (the
long run): hypothesis strategies that mutate manifests, bundles, ONNX files, reference.npz, checkpoints, target
TOMLs and bundle archives; and `run_case`, which applies one mutation to a fresh copy of the session's fixture,
runs the deployconv command that reads it (in-process, through the real CLI) and returns what went wrong.

What every case must show: an exit code in {1, 2, 3} (0 only where the mutation may leave the input valid), no
traceback and no "internal error", the output folder absent or untouched, nothing written outside the case folder,
and no code from a file run (a pickle's __reduce__ would create a marker file)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from tests.trust.fixture import MODEL_SOURCE, TrustFixture

MARKER = "PWNED"  # a __reduce__ payload creates this file in the case folder if it ever runs

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)
bad_paths = st.sampled_from(["../x", "../../etc/passwd", "/etc/passwd", "a/../../b", "./model.onnx", "a//b",
                             "C:/x", "a\\..\\b", "", "plugins/../../x", "..", "manifest.json"])
extra_names = st.sampled_from(["evil.py", "plugins/trt/injected.cpp", ".hidden", "plugins/trt/.x.cpp", "ort/x.onnx",
                               "deployconv_src/deployconv/evil.py", "sub/dir/file.bin", "reference.npz.bak"])


@dataclass(frozen=True)
class Case:
    kind: str
    params: dict[str, Any]
    may_pass: bool = False  # the mutation can leave a valid input (exit 0 allowed)


def _manifest_case(draw: Any) -> Case:
    op = draw(st.sampled_from(["delete", "retype", "add", "traversal", "drop_file", "bad_hash", "bundle_key",
                               "garbage", "ort_model"]))
    p: dict[str, Any] = {"op": op, "where": draw(st.sampled_from(["bundle", "export"])),
                         "command": draw(st.sampled_from(["check", "validate", "build-engine"])),
                         "seed": draw(st.integers(0, 2**31 - 1))}
    if op == "retype":
        p["value"] = draw(json_values)
    if op == "add":
        p["key"] = draw(st.text(min_size=1, max_size=10))
        p["value"] = draw(json_values)
    if op in ("traversal", "ort_model"):
        p["path"] = draw(bad_paths | extra_names)
    if op == "garbage":
        p["data"] = draw(st.binary(max_size=64))
    return Case("manifest", p, may_pass=op == "retype")


def _bundle_case(draw: Any) -> Case:
    op = draw(st.sampled_from(["extra", "missing", "changed", "symlink", "symlink_dir", "fifo"]))
    p = {"op": op, "seed": draw(st.integers(0, 2**31 - 1)), "name": draw(extra_names),
         "data": draw(st.binary(min_size=1, max_size=32)), "fresh": draw(st.booleans()),
         "command": draw(st.sampled_from(["check", "validate", "build-engine"]))}
    return Case("bundle", p)


def _tar_case(draw: Any) -> Case:
    op = draw(st.sampled_from(["dotdot", "absolute", "symlink", "hardlink", "outside", "truncate", "flip", "dup"]))
    return Case("tar", {"op": op, "seed": draw(st.integers(0, 2**31 - 1)),
                        "name": draw(bad_paths | st.just("tiny/../../escape"))},
                may_pass=op == "flip")  # a flip in the gzip header's mtime/OS bytes or the tar's end padding is harmless


def _onnx_case(draw: Any) -> Case:
    op, rehash = draw(st.sampled_from(["flip", "truncate", "empty", "zeros"])), draw(st.booleans())
    # a re-hashed flip can land in a doc string or a weight's low bits: still a valid model within the budget
    return Case("onnx", {"op": op, "seed": draw(st.integers(0, 2**31 - 1)), "rehash": rehash,
                         "command": draw(st.sampled_from(["check", "validate"]))}, may_pass=op == "flip" and rehash)


def _npz_case(draw: Any) -> Case:
    op = draw(st.sampled_from(["object", "shape", "samples", "dtype", "missing", "truncate", "nan", "not_zip",
                               "scalar"]))
    return Case("npz", {"op": op, "seed": draw(st.integers(0, 2**31 - 1)), "rehash": draw(st.booleans()),
                        "command": draw(st.sampled_from(["check", "validate"]))})


def _checkpoint_case(draw: Any) -> Case:
    op = draw(st.sampled_from(["truncate", "wrong_keys", "reduce", "not_torch", "shape", "empty", "nan"]))
    return Case("checkpoint", {"op": op, "seed": draw(st.integers(0, 2**31 - 1))})


def _toml_case(draw: Any) -> Case:
    op = draw(st.sampled_from(["delete_line", "retype", "add_key", "garbage", "bad_section"]))
    return Case("toml", {"op": op, "seed": draw(st.integers(0, 2**31 - 1)),
                         "value": draw(st.sampled_from(['"x"', "1", "-5", "true", "[1, 2]", "{a = 1}", "1.5",
                                                        '"../../x.toml"'])),
                         "data": draw(st.binary(max_size=40))},
                may_pass=op in ("delete_line", "retype", "garbage"))  # a comment or a default can stay valid


@st.composite
def cases(draw: Any) -> Case:
    make = draw(st.sampled_from([_manifest_case, _manifest_case, _bundle_case, _bundle_case, _tar_case,
                                 _onnx_case, _npz_case, _checkpoint_case, _toml_case]))
    return make(draw)


# --- applying a case -----------------------------------------------------------------------------------------

def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rehash(folder: Path, rel: str) -> None:
    man = json.loads((folder / "manifest.json").read_text())
    man["files"][rel] = _sha(folder / rel)
    (folder / "manifest.json").write_text(json.dumps(man, indent=2))


def _listed(folder: Path) -> list[str]:
    return sorted(json.loads((folder / "manifest.json").read_text())["files"])


def _mutate_manifest(folder: Path, p: dict[str, Any]) -> None:
    rng = np.random.default_rng(p["seed"])
    path = folder / "manifest.json"
    man = json.loads(path.read_text())
    keys = sorted(man)
    op = p["op"]
    if op == "delete":  # model_source_sha256 is optional (exports made before it existed still load)
        required = [k for k in keys if k != "model_source_sha256"]
        del man[required[rng.integers(len(required))]]
    elif op == "retype":
        man[keys[rng.integers(len(keys))]] = p["value"]
    elif op == "add":
        man[p["key"] if p["key"] not in man else p["key"] + "_x"] = p["value"]
    elif op == "traversal":
        man["files"][p["path"]] = "0" * 64
    elif op == "drop_file":
        files = sorted(man["files"])
        del man["files"][files[rng.integers(len(files))]]
    elif op == "bad_hash":
        files = sorted(man["files"])
        man["files"][files[rng.integers(len(files))]] = "f" * 64
    elif op == "bundle_key":
        if "bundle" in man:
            sub = sorted(man["bundle"])
            del man["bundle"][sub[rng.integers(len(sub))]]
        else:
            man["bundle"] = {"format": "deployconv.bundle/1"}
    elif op == "ort_model":
        man["ort_model"] = p["path"]
        man["plugins"] = [{"name": "DeployconvSKA", "version": "1", "namespace": "deployconv"}]
    elif op == "garbage":
        path.write_bytes(p["data"])
        return
    path.write_text(json.dumps(man, indent=2))


def _mutate_bundle(folder: Path, p: dict[str, Any], outside: Path) -> None:
    rng = np.random.default_rng(p["seed"])
    listed = _listed(folder)
    victim = folder / listed[rng.integers(len(listed))]
    op = p["op"]
    if op == "extra":
        target = folder / p["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(p["data"])
    elif op == "missing":
        victim.unlink()
    elif op == "changed":
        data = bytearray(victim.read_bytes() or b"\0")
        data[int(rng.integers(len(data)))] ^= 0xFF
        victim.write_bytes(bytes(data))
    elif op == "symlink":
        outside.write_bytes(victim.read_bytes())  # same bytes: only the link itself is wrong
        victim.unlink()
        victim.symlink_to(outside)
    elif op == "symlink_dir":
        (folder / "linked").symlink_to(outside.parent, target_is_directory=True)
    elif op == "fifo":
        os.mkfifo(folder / "pipe")


def _mutate_onnx(folder: Path, p: dict[str, Any]) -> None:
    rng = np.random.default_rng(p["seed"])
    path = folder / "model.onnx"
    data = bytearray(path.read_bytes())
    if p["op"] == "flip":
        for _ in range(int(rng.integers(1, 8))):
            data[int(rng.integers(len(data)))] ^= int(rng.integers(1, 256))
    elif p["op"] == "truncate":
        data = data[:int(rng.integers(len(data)))]
    elif p["op"] == "empty":
        data = bytearray()
    else:
        data = bytearray(len(data))
    path.write_bytes(bytes(data))
    if p["rehash"]:
        _rehash(folder, "model.onnx")


class _Reduce:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _mutate_npz(folder: Path, p: dict[str, Any]) -> None:
    rng = np.random.default_rng(p["seed"])
    path = folder / "reference.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    op = p["op"]
    if op == "object":
        arrays["expected"] = np.array([_Reduce(folder / MARKER), 1], dtype=object)
        _save_object_npz(path, arrays)
    elif op == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[:int(rng.integers(len(data)))])
    elif op == "not_zip":
        path.write_bytes(rng.bytes(int(rng.integers(1, 200))))
    else:
        if op == "shape":
            arrays["input"] = arrays["input"][..., :int(rng.integers(1, arrays["input"].shape[-1]))]
        elif op == "samples":
            arrays["expected"] = arrays["expected"][:0] if rng.integers(2) else np.concatenate(
                [arrays["expected"], arrays["expected"]])
        elif op == "dtype":
            arrays["input"] = arrays["input"].astype(np.int32)
        elif op == "missing":
            del arrays[sorted(arrays)[rng.integers(len(arrays))]]
            arrays.pop("input", None) if rng.integers(2) else arrays.pop("expected", None)
        elif op == "nan":
            arrays["input"] = arrays["input"].copy()
            arrays["input"].flat[0] = np.nan
        elif op == "scalar":
            arrays["input"] = np.float32(1.0)
        np.savez(path, **arrays)
    if p["rehash"]:
        _rehash(folder, "reference.npz")


def _save_object_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An npz whose `expected` is a pickled object array (np.save with allow_pickle)."""
    with zipfile.ZipFile(path, "w") as z:
        for k, a in arrays.items():
            buf = io.BytesIO()
            np.save(buf, a, allow_pickle=True)
            z.writestr(f"{k}.npy", buf.getvalue())


def _make_checkpoint(fx: TrustFixture, dest: Path, p: dict[str, Any]) -> Path:
    import torch

    rng = np.random.default_rng(p["seed"])
    state = torch.load(fx.checkpoint, weights_only=True)
    op = p["op"]
    if op == "truncate":
        data = fx.checkpoint.read_bytes()
        dest.write_bytes(data[:int(rng.integers(len(data)))])
    elif op == "wrong_keys":
        torch.save({f"x.{k}": v for k, v in state.items()}, dest)
    elif op == "reduce":
        dest.write_bytes(pickle.dumps({"state_dict": _Reduce(dest.parent / MARKER)}))
    elif op == "not_torch":
        dest.write_bytes(rng.bytes(int(rng.integers(0, 300))))
    elif op == "shape":
        k = sorted(state)[rng.integers(len(state))]
        state[k] = torch.zeros(3, 1, 2)
        torch.save(state, dest)
    elif op == "empty":
        torch.save({}, dest)
    else:  # nan in one BatchNorm buffer
        k = next(k for k in sorted(state) if k.endswith("running_var"))
        state[k] = state[k].clone()
        state[k][0] = float("nan")
        torch.save(state, dest)
    return dest


def _make_toml(fx: TrustFixture, dest: Path, p: dict[str, Any]) -> Path:
    rng = np.random.default_rng(p["seed"])
    lines = fx.target_toml.read_text().splitlines()
    op = p["op"]
    assigns = [i for i, line in enumerate(lines) if "=" in line and not line.lstrip().startswith("#")]
    if op == "delete_line":
        del lines[int(rng.integers(len(lines)))]
    elif op == "retype":
        i = assigns[int(rng.integers(len(assigns)))]
        lines[i] = lines[i].split("=")[0] + "= " + p["value"]
    elif op == "add_key":
        lines.insert(int(rng.integers(len(lines) + 1)), f"unknown_key_{p['seed'] % 7} = {p['value']}")
    elif op == "bad_section":
        lines.append(f"[{['shapes', 'budget', 'tensorrt', 'device', 'nonsense'][p['seed'] % 5]}]")
        lines.append(f"x = {p['value']}")
    text = "\n".join(lines) + "\n"
    dest.write_bytes(text.encode() + (p.get("data", b"") if op == "garbage" else b""))
    return dest


def _make_tar(fx: TrustFixture, dest: Path, p: dict[str, Any]) -> Path:
    rng = np.random.default_rng(p["seed"])
    op = p["op"]
    if op in ("truncate", "flip"):
        data = bytearray(fx.tarball.read_bytes())
        if op == "truncate":
            data = data[:int(rng.integers(len(data)))]
        else:
            for _ in range(4):
                data[int(rng.integers(len(data)))] ^= 0x5A
        dest.write_bytes(bytes(data))
        return dest
    with tarfile.open(fx.tarball, "r:gz") as src, tarfile.open(dest, "w:gz") as out:
        for m in src:
            out.addfile(m, src.extractfile(m) if m.isreg() else None)
        evil = tarfile.TarInfo({"dotdot": "tiny/../../escape.txt", "absolute": "/tmp/deployconv-fuzz-abs.txt",
                                "outside": "other/file.txt", "dup": "tiny/model.onnx"}.get(op, "tiny/evil"))
        if op in ("symlink", "hardlink"):
            evil.type = tarfile.SYMTYPE if op == "symlink" else tarfile.LNKTYPE
            evil.linkname = "../../../etc/passwd" if op == "symlink" else "tiny/model.onnx"
            out.addfile(evil)
        else:
            payload = b"escaped\n"
            evil.size = len(payload)
            out.addfile(evil, io.BytesIO(payload))
    return dest


# --- running a case ------------------------------------------------------------------------------------------

def _tree(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (links and special files by kind, files by sha256)."""
    out: dict[str, str] = {}
    if not folder.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(folder).as_posix()
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            elif p.is_file():
                out[rel] = _sha(p)
            else:
                out[rel] = "special"
    return out


_COMMAND: list[Any] = []


def _invoke(args: list[str]) -> tuple[int, str, BaseException | None]:
    """The real deployconv command line, in-process. typer builds its click command once here (that build costs
    ~0.3 s, more than most cases), then click's runner invokes it per case."""
    from click.testing import CliRunner

    if not _COMMAND:
        import typer

        from deployconv.cli.app import app

        _COMMAND.append(typer.main.get_command(app))
    res = CliRunner().invoke(_COMMAND[0], args, catch_exceptions=True, prog_name="deployconv")
    exc = res.exception if res.exception is not None and not isinstance(res.exception, SystemExit) else None
    return res.exit_code, res.output, exc


def run_case(fx: TrustFixture, case: Case, work: Path) -> str | None:
    """Apply `case` in the empty folder `work`, run the command, and return what went wrong (None: all held)."""
    p = case.params
    work.mkdir(parents=True)
    outside = work / "outside.bin"
    out_dir: Path | None = None
    folder: Path | None = None
    if case.kind in ("manifest", "bundle", "onnx", "npz"):
        src = fx.export if (case.kind == "manifest" and p["where"] == "export") else fx.bundle
        folder = work / "dir"
        shutil.copytree(src, folder, symlinks=True)
        if case.kind == "manifest":
            _mutate_manifest(folder, p)
        elif case.kind == "bundle":
            _mutate_bundle(folder, p, outside)
        elif case.kind == "onnx":
            _mutate_onnx(folder, p)
        else:
            _mutate_npz(folder, p)
        command = p.get("command", "check")
        if command == "check":
            args = ["check", str(folder), "--runtime", "ort-cpu", "--json"] + (["--fresh"] if p.get("fresh") else [])
        elif command == "validate":
            args = ["validate", str(folder), "--torch-free", "--runtime", "ort-cpu", "--json"]
        else:
            args = ["build-engine", str(folder), "--json"]
    elif case.kind == "tar":
        archive = _make_tar(fx, work / "in.tar.gz", p)
        out_dir = work / "unpacked"
        args = ["unpack", str(archive), "--into", str(out_dir)]
    elif case.kind == "checkpoint":
        ckpt = _make_checkpoint(fx, work / "ckpt.pt", p)
        out_dir = work / "out"
        args = ["reparam", "--model", MODEL_SOURCE, "--weights", str(ckpt), "--out", str(out_dir / "deploy.pt"),
                "--json"]
    else:
        toml = _make_toml(fx, work / "target.toml", p)
        args = ["build-engine", str(fx.export / "model.onnx"), "--target", str(toml), "--plan-only", "--json"]
    before = _tree(folder) if folder is not None else {}
    code, output, exc = _invoke(args)
    problems = []
    allowed = {1, 2, 3} | ({0} if case.may_pass else set())
    if code not in allowed:
        problems.append(f"exit code {code} not in {sorted(allowed)}")
    if exc is not None:
        problems.append(f"uncaught {type(exc).__name__}: {exc}")
    if "Traceback" in output or "internal error" in output:
        problems.append("traceback or internal error in the output")
    if (work / MARKER).exists() or (folder is not None and (folder / MARKER).exists()):
        problems.append("a pickle's __reduce__ ran")
    if folder is not None and _tree(folder) != before:
        problems.append("the input folder was changed")
    if out_dir is not None and code != 0 and out_dir.exists() and any(out_dir.rglob("*")):
        problems.append(f"{out_dir.name}/ holds output after a failure")
    extra = {e.name for e in work.iterdir()} - {"dir", "outside.bin", "in.tar.gz", "unpacked", "ckpt.pt", "out",
                                                "target.toml", MARKER}
    if extra or Path("/tmp/deployconv-fuzz-abs.txt").exists() or (work.parent / "escape.txt").exists():
        problems.append(f"written outside the case folder: {sorted(extra)}")
    if problems:
        return f"{case.kind} {p}: {'; '.join(problems)}\n--- output ---\n{output[-3000:]}"
    return None
