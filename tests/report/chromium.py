"""A real headless browser for the report tests: Debian's `chromium` (apt-get install chromium), run once per
call with a throw-away profile. None of this is needed to build the page; it only checks how a browser
renders it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S = 180


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, NAMES) if p), None)


def _run(browser: str, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="deployconv-chromium-") as profile:
        cmd = [browser, "--headless", "--disable-gpu", "--no-first-run", "--disable-extensions",
               "--hide-scrollbars", f"--user-data-dir={profile}", *args, page.resolve().as_uri()]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")  # chromium refuses to start as root with its sandbox
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def dump_dom(browser: str, page: Path) -> str:
    """The DOM after the browser loaded and laid out the page, serialised back to HTML."""
    proc = _run(browser, page, "--dump-dom")
    if proc.returncode != 0 or "<html" not in proc.stdout:
        raise RuntimeError(f"chromium --dump-dom failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout


def screenshot(browser: str, page: Path, png: Path, width: int = 1400, height: int = 6000) -> Path:
    proc = _run(browser, page, f"--window-size={width},{height}", f"--screenshot={png}")
    if not png.is_file():
        raise RuntimeError(f"chromium --screenshot wrote nothing ({proc.returncode}): {proc.stderr[-2000:]}")
    return png
