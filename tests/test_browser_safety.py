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

from browser_kit import chromium, require_browser, streamlit_server
from test_markup_safety import ADMIN, EVIL, seed_hostile

pytestmark = pytest.mark.browser

PAGES = ["Review", "Guidelines", "Account", "Overview", "Explore", "Reviewers", "Adjudicate", "Export", "Rounds"]


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    from xinstruct.store import Store

    require_browser()
    folder = tmp_path_factory.mktemp("hostile")
    db = folder / "hostile.duckdb"
    store = Store(db)
    seed_hostile(store)
    store.close()
    del store
    with streamlit_server(db, folder, "app.py") as srv:
        yield {**srv, "folder": folder}


def test_no_request_leaves_for_an_outside_host_on_any_page(hostile_server):
    url = hostile_server["url"]
    requests: list[str] = []
    with chromium() as browser:
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
            page.locator('[data-testid="stSidebar"]').get_by_role("link", name=title, exact=True).click()
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
    outside = sorted({u for u in requests if urlsplit(u).hostname not in ("127.0.0.1", "localhost", None)
                      and urlsplit(u).scheme not in ("data", "blob")})
    assert not outside, f"requests left for outside hosts: {outside}"
    for title, found in seen.items():
        assert found["xss"] is None, (title, found)
        assert not found["images"] and not found["links"] and not found["scripts"] and not found["red"], (title, found)
    shown = [t for t, f in seen.items() if f["shown"]]
    assert {"Review", "Guidelines", "Adjudicate", "Account"} <= set(shown), f"hostile text shown (as text) on {shown}"
    assert len(requests) > 20  # the recorder saw the app's own traffic
