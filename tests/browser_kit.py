"""What every real-browser test shares: a Streamlit server on a free port over a given database, and Debian's
chromium driven by Playwright (never a browser downloaded by a test tool)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def require_browser() -> None:
    """Skip (with the fix) when Debian's chromium or Playwright is missing; scripts/test.sh installs both."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM} (apt-get install chromium; never `playwright install`)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(db: Path, folder: Path, script: str = "app.py"):
    """Serve `script` (app.py, or serve.py for the session cookie) on `db`; yields {url, proc, env}; stops it after."""
    port = free_port()
    env = dict(os.environ, XINSTRUCT_DB=str(db), PYTHONUNBUFFERED="1")
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not start:\n{(folder / 'server.log').read_text()[-3000:]}")
                time.sleep(0.3)
        yield {"url": f"http://127.0.0.1:{port}/", "proc": proc, "env": env}
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


@contextmanager
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()
