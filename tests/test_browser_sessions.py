"""Sessions in a real browser: `streamlit run serve.py` (what `xinstruct app` runs) on a temp store, Debian chromium
driven by Playwright.

* before login nothing of the app shows, not even page names (watched from the first byte of the page, not only at the
  end);
* a reload and a new tab keep the reviewer logged in, on the item they hold; the cookie is HttpOnly;
* demoting a curator, resetting a password or disabling a user with the `xinstruct users` CLI takes effect at that
  user's very next click, and nothing that click asked for is recorded;
* logging out, then reloading, shows the login page.

Each test waits for a state (an element, a cookie), never for a fixed time. Each user has its own browser context (its
own cookies) and its own items, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from browser_kit import chromium, require_browser, streamlit_server
from conftest import add_candidates
from xinstruct import auth, keyboard
from xinstruct.store import Store

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "browser-pass-1"
NEW_PASSWORD = "browser-pass-2"
WAIT = 60_000  # ms: generous for a loaded 2-core machine; every wait ends as soon as the state is there
PAGE_NAMES = ["guidelines", "account", "overview", "explore", "reviewers", "adjudicate", "export", "rounds"]
USERS = {  # name: (role, langs); each reviewer has languages of its own, so its items are its own
    "amina": ("reviewer", ["sw"]),
    "baraka": ("reviewer", ["fi"]),
    "dana": ("reviewer", ["tr"]),
    "eli": ("reviewer", ["vi"]),
    "cora": ("curator", []),
}
TEXTS = {
    "sw": "Habari za leo: mvua kubwa imenyesha Dar es Salaam na mitaa mingi imejaa maji asubuhi ya leo.",
    "fi": "Helsingin kaupunginvaltuusto päätti eilen illalla uuden raitiotien rakentamisesta Kalasatamaan.",
    "tr": "İstanbul'da dün akşam başlayan kar yağışı nedeniyle bazı okullarda eğitime bir gün ara verildi.",
    "vi": "Hà Nội sẽ mở thêm ba tuyến xe buýt điện từ tháng sau để giảm ùn tắc giao thông ở trung tâm.",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    folder = tmp_path_factory.mktemp("browser-sessions")
    db = folder / "sessions.duckdb"
    store = Store(db)
    rows = [{"lang": lang, "text": f"{text} ({i})", "instruction": f"What happened ({lang} {i})?", "score": 0.5 + i / 100}
            for lang, text in TEXTS.items() for i in range(3)]
    add_candidates(store, rows)
    for name, (role, langs) in USERS.items():
        auth.add_user(store, name, PASSWORD, role, langs)
    store.close()
    with streamlit_server(db, folder, "serve.py") as srv:
        yield {**srv, "db": db, "folder": folder}


@pytest.fixture(scope="module")
def browser(server):
    with chromium() as b:
        yield b


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield ctx
    finally:
        ctx.close()


def users_cli(server, *args: str) -> str:
    """Run `xinstruct users ...` as an operator would, in another process, on the server's database."""
    out = subprocess.run([sys.executable, "-c", "from xinstruct.cli import main; main()", "users", *args,
                          "--db", str(server["db"])], cwd=ROOT, env=server["env"], capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr + out.stdout
    return out.stdout


def login_form(page):
    return page.get_by_role("textbox", name="Password")


def log_in(page, url: str, name: str, password: str = PASSWORD) -> None:
    from playwright.sync_api import expect

    page.goto(url)
    page.get_by_role("textbox", name="Name").fill(name)
    login_form(page).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text(f"Logged in as {name}")).to_be_visible(timeout=WAIT)


def session_cookie(context) -> dict | None:
    return next((c for c in context.cookies() if c["name"] == "xi_session"), None)


def wait_for_cookie(context, present: bool = True) -> dict | None:
    """Poll the browser's cookie jar until the session cookie is there (or gone); the state, not a guessed delay."""
    deadline = time.monotonic() + WAIT / 1000
    while (session_cookie(context) is not None) != present:
        assert time.monotonic() < deadline, f"session cookie {'never set' if present else 'never cleared'}"
        time.sleep(0.05)
    return session_cookie(context)


def decisions(server, reviewer: str) -> list[tuple]:
    store = Store(server["db"])
    try:
        with store.session() as tx:
            return tx.all("SELECT action FROM decisions WHERE reviewer = ?", [reviewer])
    finally:
        store.close()


def test_before_login_no_page_names(server, context):
    from playwright.sync_api import expect

    page = context.new_page()
    # Record every text and navigation element the page ever shows, from the first byte on, not only the last frame.
    page.add_init_script("""
        window.__seen = new Set();
        new MutationObserver(() => {
            if (document.querySelector('[data-testid="stSidebarNav"], [data-testid="stSidebar"]')) window.__seen.add('sidebar');
            window.__seen.add((document.body && document.body.innerText || '').toLowerCase());
        }).observe(document, {childList: true, subtree: true, characterData: true});
    """)
    frames: list[bytes] = []  # and every message the server sends, where page names would travel unseen
    page.on("websocket", lambda ws: ws.on("framereceived", lambda data: frames.append(
        data if isinstance(data, bytes) else data.encode())))
    for path in ["", "explore", "adjudicate"]:  # a page's own address shows the login page too
        frames.clear()
        page.goto(server["url"] + path)
        expect(login_form(page)).to_be_visible(timeout=WAIT)
        seen = page.evaluate("[...window.__seen]")
        assert "sidebar" not in seen, path
        text = "\n".join(seen) + page.locator("body").inner_text().lower()
        assert not [n for n in PAGE_NAMES if n in text], (path, [n for n in PAGE_NAMES if n in text])
        assert page.locator(".xi-field").count() == 0
        others = [n for n in PAGE_NAMES if n != path]  # (the address asked for comes back as the intended page)
        # the login page loads the Review key listener (keyboard.preload): its code is no page name ("export default")
        script = keyboard._script().encode()
        sent = [f.replace(script, b"").lower() for f in frames]
        assert frames and not [n for n in others if any(n.encode() in f for f in sent)], path
    # the same watch sees the page names once logged in, so the check above can see them when they are there
    log_in(page, server["url"], "cora")
    expect(page.get_by_role("link", name="Explore")).to_be_visible(timeout=WAIT)
    assert "explore" in "\n".join(page.evaluate("[...window.__seen]"))
    assert any(b"explore" in f.lower() for f in frames)


def test_reload_and_a_new_tab_keep_the_reviewer_and_their_item(server, context):
    from playwright.sync_api import expect

    page = context.new_page()
    log_in(page, server["url"], "amina")
    instruction = page.locator(".xi-instruction")
    expect(instruction).to_contain_text("What happened (sw", timeout=WAIT)
    held = instruction.inner_text()
    cookie = wait_for_cookie(context)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").find("xi_session") == -1  # page scripts cannot read the token

    page.reload()
    expect(page.get_by_text("Logged in as amina")).to_be_visible(timeout=WAIT)
    expect(page.locator(".xi-instruction")).to_have_text(held, timeout=WAIT)
    assert login_form(page).count() == 0

    other = context.new_page()  # a tab opened later (or a phone's discarded tab reopened)
    other.goto(server["url"])
    expect(other.get_by_text("Logged in as amina")).to_be_visible(timeout=WAIT)
    expect(other.locator(".xi-instruction")).to_have_text(held, timeout=WAIT)


def test_demotion_takes_effect_at_the_next_click(server, context):
    from playwright.sync_api import expect

    page = context.new_page()
    log_in(page, server["url"], "cora")
    wait_for_cookie(context)
    page.get_by_role("link", name="Explore").click()
    accept = page.get_by_role("button", name="Accept above score…")
    expect(accept).to_be_visible(timeout=WAIT)

    users_cli(server, "add", "cora", "--role", "reviewer", "--langs", "sw", "--password", PASSWORD, "--replace")
    accept.click()
    expect(page.get_by_text("Your password or role changed. Log in again.")).to_be_visible(timeout=WAIT)
    expect(login_form(page)).to_be_visible(timeout=WAIT)
    assert page.get_by_role("button", name="Confirm").count() == 0
    page.reload()  # the cookie's session has ended too
    expect(login_form(page)).to_be_visible(timeout=WAIT)
    log_in(page, server["url"], "cora")  # logging in again gives the new, lower rights
    expect(page.get_by_text("Logged in as cora (reviewer)")).to_be_visible(timeout=WAIT)
    assert page.get_by_role("link", name="Explore").count() == 0
    assert decisions(server, "cora") == []


def test_password_reset_takes_effect_at_the_next_click(server, context):
    from playwright.sync_api import expect

    page = context.new_page()
    log_in(page, server["url"], "baraka")
    expect(page.locator(".xi-instruction")).to_contain_text("What happened (fi", timeout=WAIT)
    wait_for_cookie(context)

    users_cli(server, "add", "baraka", "--role", "reviewer", "--langs", "fi", "--password", NEW_PASSWORD, "--replace")
    page.get_by_role("button", name="Accept").click()
    expect(page.get_by_text("Your password or role changed. Log in again.")).to_be_visible(timeout=WAIT)
    assert decisions(server, "baraka") == []  # the click after the reset recorded nothing
    page.get_by_role("textbox", name="Name").fill("baraka")
    login_form(page).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Wrong name or password.")).to_be_visible(timeout=WAIT)
    log_in(page, server["url"], "baraka", NEW_PASSWORD)


def test_disabling_takes_effect_at_the_next_click(server, context):
    from playwright.sync_api import expect

    page = context.new_page()
    log_in(page, server["url"], "dana")
    expect(page.locator(".xi-instruction")).to_contain_text("What happened (tr", timeout=WAIT)
    wait_for_cookie(context)

    users_cli(server, "disable", "dana")
    page.get_by_role("button", name="Skip").click()
    expect(page.get_by_text("Your account was disabled. Ask an admin.")).to_be_visible(timeout=WAIT)
    assert decisions(server, "dana") == []
    page.get_by_role("textbox", name="Name").fill("dana")
    login_form(page).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("the account 'dana' is disabled; ask an admin")).to_be_visible(timeout=WAIT)
    users_cli(server, "enable", "dana")
    log_in(page, server["url"], "dana")


def test_logout_then_reload_shows_the_login_page(server, context):
    from playwright.sync_api import expect

    page = context.new_page()
    log_in(page, server["url"], "eli")
    token = wait_for_cookie(context)["value"]
    page.get_by_role("button", name="Log out").click()
    expect(login_form(page)).to_be_visible(timeout=WAIT)
    wait_for_cookie(context, present=False)
    page.reload()
    expect(login_form(page)).to_be_visible(timeout=WAIT)
    assert page.get_by_text("Logged in as").count() == 0
    # the token is dead on the server, not only gone from this browser: a copy of the cookie gets the login page
    copy = context.browser.new_context()
    try:
        copy.add_cookies([{"name": "xi_session", "value": token, "url": server["url"]}])
        again = copy.new_page()
        again.goto(server["url"])
        expect(login_form(again)).to_be_visible(timeout=WAIT)
        assert again.get_by_text("Logged in as").count() == 0
    finally:
        copy.close()
