"""Keypress to next item in the real browser: press A on the Review page, time until the next instruction is drawn.

    .venv/bin/python bench/browser.py                       # 30 accepts on this tree and 30 on `main`, interleaved
    .venv/bin/python bench/browser.py --accepts 40 --baseline-ref none

Two Streamlit servers run side by side on copies of one store (1,000 candidates, 100 in Swahili for the bench
reviewer): this tree's app and, as the baseline, the app of `--baseline-ref` (default: the merge base with main, i.e.
the code before this branch), unpacked with `git archive`. Debian chromium (Playwright) logs in to both and presses A
on each in turn, so both see the same machine load. The time is measured in the page: from the keydown event (a
listener installed before the app's own) to the animation frame after the `.xi-instruction` text changed (the next
item drawn). After each accept the bench waits until the page is idle and 300 ms more, as a reviewer reads before the
next key. The first `--warmup` accepts on each server are not counted. A third row times only the store calls on the
path (record_decision, then next_item) in this process on a third copy, interleaved the same way: the part of the
latency that is the database under the same load. Prints a markdown table with machine, date and the load average
before and after.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import cpu_name  # noqa: E402
from xinstruct import auth, review  # noqa: E402
from xinstruct.auth import User  # noqa: E402
from xinstruct.store import Store  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "bench-pass-1"
TIMING_JS = """
window.__xiBench = {down: [], drawn: []};
window.addEventListener("keydown", () => window.__xiBench.down.push(performance.now()), true);
"""
OBSERVE_JS = """() => {
    let last = (document.querySelector(".xi-instruction") || {}).textContent;
    new MutationObserver(() => {
        const now = (document.querySelector(".xi-instruction") || {}).textContent;
        if (now && now !== last) {
            last = now;
            requestAnimationFrame(() => window.__xiBench.drawn.push([performance.now(), now]));
        }
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def _bench_review():
    spec = importlib.util.spec_from_file_location("bench_review", ROOT / "bench" / "review.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_store(path: Path) -> None:
    from argon2 import PasswordHasher

    store = Store(path)
    _bench_review().build(store, rows=1000, history=0)
    saved = auth._hasher
    auth._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # the server rehashes it once
    try:
        auth.add_user(store, "bench", PASSWORD, "reviewer", ["sw"])
    finally:
        auth._hasher = saved
    store.close()  # copied next: every write must be in the file itself (an open store keeps recent ones in its WAL)
    if Path(f"{path}.wal").exists():
        raise SystemExit(f"{path} is still open; cannot copy it")


def unpack(ref: str, into: Path) -> Path:
    data = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, db: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, XINSTRUCT_DB=str(db), PYTHONPATH=str(root), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=root, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            return proc, f"http://127.0.0.1:{port}/"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"streamlit did not start in {root}:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.set_default_timeout(120_000)  # the first load of a page takes over Playwright's 30 s on a machine at load 30
    page.add_init_script(TIMING_JS)
    page.goto(url)
    page.get_by_role("textbox", name="Name").fill("bench")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector(".xi-instruction", timeout=120_000)
    page.evaluate(OBSERVE_JS)
    return page


def wait_idle(page) -> None:
    page.wait_for_function("""() => {
        const app = document.querySelector('[data-testid="stApp"]');
        return app && app.getAttribute("data-test-script-state") === "notRunning";
    }""", timeout=120_000)


def accept_once(page) -> float:
    """Press A; return ms from keydown to the next item drawn."""
    wait_idle(page)
    time.sleep(0.3)
    page.locator(".xi-instruction").first.click()  # focus on the page, outside any field
    n_down = page.evaluate("() => window.__xiBench.down.length")
    n_drawn = page.evaluate("() => window.__xiBench.drawn.length")
    page.keyboard.press("a")
    page.wait_for_function(f"() => window.__xiBench.drawn.length > {n_drawn}", timeout=120_000)
    down = page.evaluate(f"() => window.__xiBench.down[{n_down}]")
    drawn = page.evaluate(f"() => window.__xiBench.drawn[{n_drawn}][0]")
    return drawn - down


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accepts", type=int, default=30, help="timed accepts per server (at least 20 for a p95)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--baseline-ref", default="merge-base",
                    help="git ref of the baseline app ('merge-base': merge base of HEAD and main; 'none': no baseline)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="xi-bench-browser-"))
    procs = []
    try:
        build_store(tmp / "store.duckdb")
        trees = {"this tree": ROOT}
        if args.baseline_ref != "none":
            ref = args.baseline_ref
            if ref == "merge-base":
                ref = subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=ROOT, check=True, capture_output=True,
                                     text=True).stdout.strip()
            label = subprocess.run(["git", "log", "-1", "--format=%h", ref], cwd=ROOT, check=True, capture_output=True,
                                   text=True).stdout.strip()
            trees[f"baseline {label}"] = unpack(ref, tmp / "baseline")
        load_before = os.getloadavg()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM,
                                         args=["--headless", "--no-sandbox", "--disable-gpu",
                                               "--disable-background-networking"])
            pages = {}
            for n, (name, root) in enumerate(trees.items()):
                db = tmp / f"store-{n}.duckdb"
                shutil.copy(tmp / "store.duckdb", db)
                proc, url = start_server(root, db, tmp / f"server-{n}.log")
                procs.append(proc)
                pages[name] = open_page(browser, url)
            times: dict[str, list[float]] = {name: [] for name in trees}
            direct = "store calls only (record_decision + next_item, in process)"
            times[direct] = []
            shutil.copy(tmp / "store.duckdb", tmp / "store-direct.duckdb")
            store, bench_user = Store(tmp / "store-direct.duckdb"), User("bench", "reviewer", ("sw",))
            item = review.next_item(store, bench_user)
            for i in range(args.warmup + args.accepts):
                for name, page in pages.items():  # interleaved: both code paths under the same load
                    ms = accept_once(page)
                    if i >= args.warmup:
                        times[name].append(ms)
                time.sleep(0.3)
                t = time.perf_counter()
                review.record_decision(store, item["id"], bench_user, "accept", request_id=f"bench-{i}")
                item = review.next_item(store, bench_user)
                if i >= args.warmup:
                    times[direct].append((time.perf_counter() - t) * 1000)
            browser.close()
        load_after = os.getloadavg()
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    fmt = lambda load: ", ".join(f"{x:.1f}" for x in load)  # noqa: E731
    print(f"### Keypress to next item (Review page, real browser)\n")
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {cpu_name()} · {os.cpu_count()} cores · "
          f"load average before {fmt(load_before)}, after {fmt(load_after)} · Debian chromium (headless) · "
          f"1,366x768 · {args.accepts} accepts per code path, interleaved\n")
    print("| code path | accepts | p50 ms | p95 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    for name, values in times.items():
        p50, p95 = statistics.median(values), pct(values, 95)
        print(f"| {name} | {len(values)} | {p50:.0f} | {p95:.0f} | {max(values):.0f} |")
    p95 = pct(times["this tree"], 95)
    print(f"\nTarget p95 <= 250 ms (this tree): {'met' if p95 <= 250 else 'NOT met'} ({p95:.0f} ms).")


if __name__ == "__main__":
    main()
