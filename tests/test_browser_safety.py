"""Hostile stored text in a real browser: `streamlit run app.py` on a store whose every text column carries Markdown
images and links to an outside host, `:red[...]`, `<script>` and `<img onerror>` (tests/test_markup_safety.py's
seed), Debian chromium through Playwright. An admin (whose own name is hostile too) opens every page; the test records
every request the page makes and asserts that none leaves for another host than the app's, that no script from the data
ran, and that no image or link from the data is in the page (the curators' own http(s) links in the guidelines aside).
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest

from test_browser import CHROMIUM, LAUNCH_ARGS, ROOT, _free_port  # noqa: F401  (same server set-up as test_browser)
from test_markup_safety import ADMIN, EVIL, seed_hostile

pytestmark = pytest.mark.browser

PAGES = ["Review", "Guidelines", "Account", "Overview", "Explore", "Reviewers", "Adjudicate", "Export", "Rounds"]


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    import os
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from xinstruct.store import Store

    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM} (apt-get install chromium; never `playwright install`)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    folder = tmp_path_factory.mktemp("hostile")
    db = folder / "hostile.duckdb"
    store = Store(db)
    seed_hostile(store)
    store.close()
    del store
    port = _free_port()
    env = dict(os.environ, XINSTRUCT_DB=str(db), PYTHONUNBUFFERED="1")
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
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
        yield {"url": f"http://127.0.0.1:{port}/", "folder": folder}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def test_no_request_leaves_for_an_outside_host_on_any_page(hostile_server):
    from playwright.sync_api import sync_playwright

    url = hostile_server["url"]
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)
            page.get_by_role("textbox", name="Name").fill(ADMIN)
            page.get_by_role("textbox", name="Password").fill("hostile-pass-1")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_selector(".xi-response", timeout=90_000)
            page.get_by_text("Guidelines", exact=True).first.click()  # the Review page's guidelines expander
            seen = {}
            for title in PAGES:
                page.locator('[data-testid="stSidebarNavLink"]', has_text=title).first.click()
                page.wait_for_selector(f'h1:has-text("{title}")' if title != "Review" else ".xi-response",
                                       timeout=90_000)
                time.sleep(1.5)  # let images, fonts and charts load (what would leak, leaks now)
                seen[title] = page.evaluate("""(evil) => ({
                    xss: window.__xss === undefined ? null : window.__xss,
                    images: [...document.querySelectorAll('img')].map(i => i.src).filter(s => s.includes(evil)),
                    links: [...document.querySelectorAll('a[href]')].filter(a => a.href.includes(evil)
                             && !a.closest('.xi-markdown'))
                             .map(a => a.href + ' IN ' + a.parentElement.parentElement.outerHTML.slice(0, 600)),
                    scripts: [...document.querySelectorAll('script')]
                             .filter(s => s.textContent.includes('__xss')).length,
                    red: [...document.querySelectorAll('span')].filter(s => s.textContent === 'URGENT'
                             && getComputedStyle(s).color !== getComputedStyle(s.parentElement).color).length,
                    shown: document.body.innerText.includes(evil),
                })""", EVIL)
        finally:
            browser.close()
    outside = sorted({u for u in requests if urlsplit(u).hostname not in ("127.0.0.1", "localhost", None)
                      and urlsplit(u).scheme not in ("data", "blob")})
    assert not outside, f"requests left for outside hosts: {outside}"
    for title, found in seen.items():
        assert found["xss"] is None, (title, found)
        assert not found["images"] and not found["links"] and not found["scripts"] and not found["red"], (title, found)
    shown = [t for t, f in seen.items() if f["shown"]]
    assert {"Review", "Guidelines", "Adjudicate", "Account"} <= set(shown), f"hostile text shown (as text) on {shown}"
    assert len(requests) > 20  # the recorder saw the app's own traffic
