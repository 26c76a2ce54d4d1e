"""The report is on the torch-free edge: on a device with numpy but no PyTorch it renders, and without
matplotlib too (tables only, the page and the command say the plots were left out). Proven in a subprocess
where importing the blocked packages raises ImportError."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.report.conftest import RECORDED

REPO = Path(__file__).resolve().parents[2]

BLOCKER = textwrap.dedent('''
    import sys

    BLOCKED = {blocked!r}

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, _Block())
''')

SCRIPT = textwrap.dedent('''
    import sys
    from pathlib import Path
    from deployconv.cli.report import report_cmd  # the command module imports cleanly too
    from deployconv.report import write_report

    written = write_report(Path(sys.argv[1]), Path(sys.argv[2]))
    print("NOTES", written.notes)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "matplotlib"))
    print("LOADED", leaked)
''')


def run_blocked(tmp_path: Path, blocked: tuple[str, ...], out: Path) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=set(blocked)))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    return subprocess.run([sys.executable, "-c", SCRIPT, str(RECORDED), str(out)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def test_blocker_works(tmp_path):
    site = tmp_path / "s"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked={"matplotlib"}))
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", "import matplotlib"], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "blocked by the test" in proc.stderr


def test_renders_without_torch_and_without_matplotlib(tmp_path):
    out = tmp_path / "r.html"
    proc = run_blocked(tmp_path, ("torch", "matplotlib"), out)
    assert proc.returncode == 0, proc.stderr
    assert "plots omitted: matplotlib is not installed" in proc.stdout and "LOADED []" in proc.stdout
    html = out.read_text()
    assert "plots omitted: matplotlib is not installed" in html and "<img" not in html
    assert "report.json#/latency/runs/onnxruntime cpu/stats/p99_ms" in html


def test_renders_without_torch_with_plots(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the `report` extra) is not installed here")
    out = tmp_path / "r.html"
    proc = run_blocked(tmp_path, ("torch",), out)
    assert proc.returncode == 0, proc.stderr
    assert "NOTES []" in proc.stdout and "'torch'" not in proc.stdout
    assert out.read_text().count('<img src="data:image/svg+xml;base64,') == 5
