"""The command line as a whole: every registered command runs under the one error handler of its group, the cli
modules import downward only, `--help` loads no torch, one `--runtime` vocabulary, and `build-engine --dry-run`
(with `--plan-only` kept as a hidden alias)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pytest
import typer
from typer.core import TyperArgument
from typer.testing import CliRunner

from deployconv.cli.app import app
from deployconv.cli.device import CHECK_RUNTIMES
from deployconv.cli.options import CALIB_METHODS, IO_DTYPES, RUNTIMES, parse_runtime
from deployconv.cli.validate import VALIDATE_RUNTIMES
from deployconv.core.errors import BadInputError, DeployconvError
from deployconv.core.target import TARGET_DIR, get_target
from tests import import_graph as g
from tests.runtime import save, tiny_classifier

REPO = Path(__file__).resolve().parents[2]
COMMAND = typer.main.get_command(app)


def leaf_commands(group=COMMAND, prefix=()) -> dict[tuple[str, ...], object]:
    """Every runnable command, sub-groups (`plugins`, `debug`) walked: {("plugins", "info"): command, ...}."""
    found = {}
    for name, cmd in group.commands.items():
        if getattr(cmd, "commands", None) is not None:
            found.update(leaf_commands(cmd, (*prefix, name)))
        else:
            found[(*prefix, name)] = cmd
    return found


def required_args(cmd) -> list[str]:
    """Placeholder values for a command's required parameters (all are names or paths), so that parsing succeeds
    and the callback runs."""
    args: list[str] = []
    for p in cmd.params:
        if p.required:
            args += ["placeholder"] if isinstance(p, TyperArgument) else [p.opts[0], "placeholder"]
    return args


def invoke(args: list[str]):
    """The built command (COMMAND, whose callbacks a test may replace), run as typer's CliRunner runs an app."""
    with mock.patch("typer.testing._get_command", lambda command: command):
        return CliRunner().invoke(COMMAND, [str(a) for a in args], prog_name="deployconv")


LEAVES = leaf_commands()


def test_the_walk_finds_every_command():
    names = {" ".join(k) for k in LEAVES}
    assert {"export", "validate", "bench", "check", "bundle", "build-engine", "gate", "matrix", "report", "eval",
            "debug precision", "plugins build", "plugins info", "keygen", "unpack", "models", "reparam", "doctor",
            "targets"} <= names


RAISED = [
    (BadInputError("bad thing", why="because", fix="do this"), 2, "error: bad thing"),
    (OSError(errno.ENOENT, "No such file or directory", "/nowhere"), 2, "no such file or directory"),
    (OSError(errno.ENOSPC, "No space left on device", "/full"), 3, "no space left on the device"),
    (KeyboardInterrupt(), 130, "interrupted:"),
    (RuntimeError("a bug"), 2, "internal error: RuntimeError: a bug"),
]


@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_every_command_runs_under_the_group_error_handler(path, monkeypatch):
    """Each command's body replaced by one that raises: the group turns each exception into its exit code and a
    message, never a traceback; with --debug the exception itself comes through."""
    cmd = LEAVES[path]
    for exc, code, words in RAISED:
        def boom(*_a, _exc=exc, **_k):
            raise _exc

        monkeypatch.setattr(cmd, "callback", boom)
        res = invoke([*path, *required_args(cmd)])
        assert res.exit_code == code, (path, exc, res.output)
        assert words in res.output and "Traceback" not in res.output, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit)
    monkeypatch.setattr(cmd, "callback", lambda *_a, **_k: (_ for _ in ()).throw(RuntimeError("debug me")))
    res = invoke(["--debug", *path, *required_args(cmd)])
    assert isinstance(res.exception, RuntimeError) and str(res.exception) == "debug me"


def _bad_inputs(tmp: Path) -> dict[str, list[str]]:
    """A real bad input for every command that takes one (no monkeypatching): exit 2, a message, no traceback.
    (`keygen` is given an existing key file, which the test writes.)"""
    return {
        "reparam": ["reparam", "--model", "no_such_model", "--out", tmp / "r.pt"],
        "export": ["export", "--model", "no_such_model", "--io-dtype", "fp8", "--out", tmp / "e"],
        "validate": ["validate", tmp / "missing"],
        "bench": ["bench", tmp / "missing.onnx"],
        "bundle": ["bundle", "--model", "no_such_model", "--target", "no-such-target", "--out", tmp / "b"],
        "check": ["check", tmp / "missing"],
        "build-engine": ["build-engine", tmp / "missing.onnx", "--target", "trt-fp16"],
        "report": ["report", tmp / "missing"],
        "gate": ["gate"],
        "matrix": ["matrix", "--models", "no_such_model", "--targets", "onnx", "--out", tmp / "m",
                   "--executor", "nowhere"],
        "eval": ["eval", "no_such_model", "--data", tmp / "missing", "--out", tmp / "ev"],
        "debug precision": ["debug", "precision", "no_such_model", "--data", tmp / "missing", "--target", "onnx",
                            "--out", tmp / "dp"],
        "keygen": ["keygen", tmp / "key"],
        "unpack": ["unpack", tmp / "missing.tar.gz"],
        "plugins build": ["plugins", "build", "--archs", "ampere", "--out", tmp / "pb"],
        "plugins info": ["plugins", "info", tmp / "missing.so"],
    }


NO_INPUT = {"models", "doctor", "targets"}  # nothing a user passes can be bad (beyond the parser's own checks)


def test_every_command_with_an_input_has_a_bad_input_case(tmp_path):
    assert set(_bad_inputs(tmp_path)) | NO_INPUT == {" ".join(k) for k in LEAVES}


@pytest.mark.parametrize("name", sorted(_bad_inputs(Path("/tmp"))))
def test_a_bad_input_is_exit_2_with_a_message(name, tmp_path):
    (tmp_path / "key").write_text("exists")
    res = invoke(_bad_inputs(tmp_path)[name])
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and "Traceback" not in res.output and "internal error" not in res.output, res.output
    assert not (tmp_path / "r.pt").exists() and not (tmp_path / "e").exists()


def test_cli_modules_import_downward_only():
    """app.py registers the command modules; they import only the shared modules (options, errors, render),
    never app.py nor each other."""
    shared = {"deployconv.cli.options", "deployconv.cli.errors", "deployconv.cli.render"}
    bad = [e for e in g.edges() if e.src.startswith("deployconv.cli.") and e.dst.startswith("deployconv.cli.")
           and e.src != "deployconv.cli.app" and e.dst not in shared]
    assert bad == []
    assert not [e for e in g.edges() if e.dst == "deployconv.cli.app" and e.src != "deployconv.__main__"]


def test_help_of_every_command_loads_no_heavy_package():
    """`deployconv --help` and each command's --help, in a fresh interpreter: no torch, onnx, onnxruntime, ..."""
    commands = [[]] + [list(k) for k in sorted(LEAVES)]
    code = textwrap.dedent(f'''
        import sys
        from typer.testing import CliRunner
        from deployconv.cli.app import app
        for cmd in {commands!r}:
            res = CliRunner().invoke(app, [*cmd, "--help"])
            assert res.exit_code == 0, (cmd, res.output)
        heavy = {sorted(g.HEAVY)!r}
        print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
    ''')
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --- one --runtime vocabulary ---------------------------------------------------------------------------------

def test_every_runtime_option_speaks_the_one_vocabulary():
    seen = {}
    for path, cmd in LEAVES.items():
        for p in cmd.params:
            if p.name == "runtime":
                assert "--runtime" in p.opts
                allowed = p.metavar.split("|")
                assert set(allowed) <= set(RUNTIMES), (path, allowed)
                seen[" ".join(path)] = allowed
    assert seen == {"validate": list(VALIDATE_RUNTIMES), "check": list(CHECK_RUNTIMES),
                    "bench": ["ort-cpu", "ort-cuda", "trt"]}


@pytest.mark.parametrize("args, words", [
    (["bench", "m.onnx", "--runtime", "auto"], "`deployconv bench` does not run on --runtime auto"),
    (["validate", "d", "--runtime", "ort-cuda"], "`deployconv validate` does not run on --runtime ort-cuda"),
    (["check", "d", "--runtime", "tvm"], "unknown runtime 'tvm'"),
])
def test_runtime_outside_a_commands_set_is_exit_2_naming_what_it_accepts(args, words, tmp_path):
    res = invoke(args)
    assert res.exit_code == 2 and words in res.output and "Traceback" not in res.output, res.output
    assert "fix:" in res.output


def test_old_spelling_ort_is_an_alias_of_ort_cpu(monkeypatch, tmp_path):
    """Bundles on devices carry READMEs that say `deployconv check . --runtime ort`: it keeps working."""
    assert parse_runtime("ort", CHECK_RUNTIMES, "check") == "ort-cpu"
    seen = []

    def recheck_dir(directory, **kw):
        seen.append(kw["runtime"])
        raise BadInputError("stop here")

    monkeypatch.setattr("deployconv.cli.validate.recheck_dir", recheck_dir)
    for spelling in ("ort", "ort-cpu", "trt", "auto"):
        res = invoke(["validate", tmp_path, "--runtime", spelling])
        assert res.exit_code == 2 and "stop here" in res.output
        assert ("old spelling" in res.output) == (spelling == "ort")
    assert seen == ["ort-cpu", "ort-cpu", "trt", "auto"]  # deployconv.validate takes the same names


def test_target_field_options_accept_what_a_target_file_accepts(tmp_path):
    """--io-dtype and --calib-method take exactly the values deployconv.core.target accepts in a target file."""
    src = (TARGET_DIR / "onnx-int8.toml").read_text()

    def loads(io_dtype: str, method: str) -> bool:
        f = tmp_path / f"t-{io_dtype}-{method}.toml"
        f.write_text(src.replace('method = "minmax"', f'method = "{method}"')
                     .replace('lowering = "standard"', f'lowering = "standard"\nio_dtype = "{io_dtype}"'))
        try:
            get_target(f)
            return True
        except DeployconvError:
            return False

    assert all(loads(d, m) for d in IO_DTYPES for m in CALIB_METHODS)
    assert not loads("fp8", "minmax") and not loads("fp32", "mse")
    for option, bad in (("--io-dtype", "fp8"), ("--calib-method", "mse")):
        res = invoke(["export", "--model", "m", option, bad])
        assert res.exit_code == 2 and f"{option} {bad!r}" in res.output


# --- build-engine --dry-run ------------------------------------------------------------------------------------

def test_dry_run_prints_the_lines_and_plan_only_still_works(tmp_path):
    model = save(tiny_classifier(), tmp_path / "model.onnx")
    base = ["build-engine", model, "--target", "trt-fp16", "--trt", "10.3", "--json"]
    dry, old = invoke([*base, "--dry-run"]), invoke([*base, "--plan-only"])
    assert dry.exit_code == 0 and old.exit_code == 0, dry.output + old.output
    assert json.loads(dry.stdout) == json.loads(old.stdout)
    assert json.loads(dry.stdout)["trtexec"].startswith("trtexec --onnx=")
    assert not list(tmp_path.glob("*.plan"))  # nothing built
    help_text = invoke(["build-engine", "--help"]).output
    assert "--dry-run" in help_text and "--plan-only" not in help_text


def test_every_flag_is_declared_once():
    """A flag (`--out`, `--target`, ...) is spelled in one typer.Option call in deployconv/cli/: shared flags come
    from deployconv/cli/options.py, so `-o` cannot mean --out in one command and something else in another.
    Hidden old names (`build-engine --plan-only`, `matrix --jobs`) are aliases, not vocabulary."""
    import ast
    from collections import Counter

    seen: Counter[str] = Counter()
    where: dict[str, list[str]] = {}
    for path in sorted((REPO / "deployconv" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Option"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "typer"
                    and not any(k.arg == "hidden" for k in node.keywords)):
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        seen[arg.value] += 1
                        where.setdefault(arg.value, []).append(f"{path.name}:{node.lineno}")
    assert "--out" in seen and "-o" in seen  # the scan sees the factories
    assert {flag: where[flag] for flag, n in seen.items() if n > 1} == {}


def test_matrix_steps_and_its_old_name_jobs(tmp_path):
    """`matrix --jobs` (now --steps; `plugins build --jobs` is parallel compile jobs) still works."""
    for flag in ("--steps", "--jobs"):
        res = invoke(["matrix", "--models", "repvgg_a0", "--targets", "onnx", "--out", tmp_path / "m", flag,
                      "nope"])
        assert res.exit_code == 2 and "unknown step(s): nope" in res.output, res.output
    res = invoke(["matrix", "--models", "m", "--targets", "onnx", "--out", tmp_path / "m", "--steps", "bench",
                  "--jobs", "bench"])
    assert res.exit_code == 2 and "--steps and --jobs both given" in res.output
    help_text = invoke(["matrix", "--help"]).output
    assert "--steps" in help_text and "--jobs" not in help_text
