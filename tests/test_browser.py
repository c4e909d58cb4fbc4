"""The review app in a real browser: `streamlit run app.py` on a temp store, Debian chromium driven by Playwright.

Logs in, reviews three items with the keyboard (A; X then 1; E, type, Ctrl+Enter), checks that the Urdu field is laid
out right-to-left and that a document containing <script> shows the literal text, logs out, stops the server and reads
the decisions back from the database. First the phone layout (390 px wide): a screenshot and no horizontal overflow.
Screenshots go to the test's tmp folder and are copied to $TMPDIR/xinstruct-review-{desktop,phone}.png.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from conftest import add_candidates
from xinstruct import auth
from xinstruct.store import Store

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "browser-pass-1"
UR = ("وزیرخزانہ اسد عمر نے جنوبی اور وسطی ایشیا کے لیے امریکی ڈپٹی اسسٹنٹ سیکریٹری ایلس ویلز سے ملاقات میں واضح کر دیا "
      "ہے کہ پاکستان نے دہشت گردی کے خلاف بڑی قربانیاں دی ہیں")
SCRIPT_DOC = "<script>alert(1)</script> Habari za leo: mvua kubwa imenyesha Dar es Salaam na mitaa mingi imejaa maji."
BN = "দিল্লী দর্বার তৈরীর পূর্বে, গেটওয়ে অব ইন্ডিয়া ১৯১১ সালে কিং জর্জ ফাইভ এবং কুনি মেরি মুম্বাই আগমনের স্মৃতি রক্ষার্থে নির্মাণ করা হয়েছিল।"
TA = "ஆனால், இந்த வரிசையில் சென்னை அருகே அமைக்கப்பட உள்ள கிரீன் பீல்டு விமான நிலையத்துக்கு பாதிப்பு ஏற்படும் வகையில்"
TH = "ในปี พ.ศ. 2427 พระบาทสมเด็จพระจุลจอมเกล้าเจ้าอยู่หัว ทรงพระกรุณาโปรดเกล้าฯ ให้พระเจ้าน้องยาเธอ กรมหมื่นพิชิตปรีชากร"
EDITED = "Why was the Gateway of India built, and when?"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM} (apt-get install chromium; never `playwright install`)")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    folder = tmp_path_factory.mktemp("browser")
    db = folder / "review.duckdb"
    store = Store(db)
    ids = add_candidates(store, [
        {"lang": "ur", "text": UR, "instruction": "What did Pakistan's finance minister tell the US envoy?", "score": 0.5,
         "label": "good"},
        {"lang": "sw", "text": SCRIPT_DOC, "instruction": "What is today's weather news?", "score": 0.45, "label": "flawed"},
        {"lang": "bn", "text": BN, "instruction": "Why was the Gateway of India built?", "score": 0.6},
        {"lang": "ta", "text": TA, "instruction": "What protest was announced near Chennai?", "score": 0.7},
        {"lang": "th", "text": TH, "instruction": "Who was sent to govern Chiang Mai in 1884?", "score": 0.9},
    ])
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # the server verifies it, then rehashes once
    saved = auth._hasher
    auth._hasher = fast
    try:
        auth.add_user(store, "boss", PASSWORD, "admin", [])
    finally:
        auth._hasher = saved
    del store  # the file is closed after every session; the server process opens it alone
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
        yield {"url": f"http://127.0.0.1:{port}/", "proc": proc, "db": db, "ids": ids, "folder": folder}
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


def _login(page, url):
    page.goto(url)
    page.get_by_role("textbox", name="Name").fill("boss")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector(".xi-response", timeout=60_000)


def _shot(page, path: Path, name: str) -> Path:
    time.sleep(0.8)  # let fonts and the layout settle
    page.screenshot(path=str(path), full_page=True)
    shutil.copy(path, Path(tempfile.gettempdir()) / f"xinstruct-review-{name}.png")
    return path


def test_phone_layout(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                            device_scale_factor=2)
    _login(page, server["url"])
    assert page.locator('.xi-response[lang="ur"]').evaluate("e => getComputedStyle(e).direction") == "rtl"
    _shot(page, tmp_path / "phone.png", "phone")
    widths = page.evaluate("""() => {
        const main = document.querySelector('[data-testid="stMain"]') || document.body;
        return {doc: document.documentElement.scrollWidth, win: window.innerWidth,
                main: main.scrollWidth, mainClient: main.clientWidth};
    }""")
    assert widths["doc"] <= widths["win"], widths
    assert widths["main"] <= widths["mainClient"] + 1, widths
    page.close()


def test_review_with_keyboard(server, browser):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _login(page, server["url"])

    # 1. the Urdu item: right-to-left, Nastaliq/Naskh font first in its stack; accept with A
    urdu = page.locator('.xi-response[lang="ur"]')
    expect(urdu).to_contain_text("وزیرخزانہ")
    assert urdu.evaluate("e => getComputedStyle(e).direction") == "rtl"
    assert page.locator(".xi-instruction").evaluate("e => getComputedStyle(e).direction") == "ltr"
    _shot(page, server["folder"] / "desktop.png", "desktop")
    page.locator(".xi-instruction").click()  # focus on the page, not on a field
    page.keyboard.press("a")
    expect(page.get_by_text("Accepted.")).to_be_visible(timeout=30_000)

    # 2. the document with <script>: shown as text, never run; reject with X then 1 (wrong language)
    response = page.locator(".xi-response")
    expect(response).to_contain_text("<script>alert(1)</script>", timeout=30_000)
    assert page.locator(".xi-response script").count() == 0
    page.keyboard.press("x")
    expect(page.get_by_role("button", name="Wrong language")).to_be_visible(timeout=30_000)
    page.keyboard.press("1")
    expect(page.get_by_text("Rejected.")).to_be_visible(timeout=30_000)

    # 3. the Bengali item: E, rewrite the instruction, Ctrl+Enter saves
    expect(page.locator(".xi-response")).to_contain_text("গেটওয়ে", timeout=30_000)
    page.keyboard.press("e")
    box = page.get_by_label("Instruction (English)")
    expect(box).to_be_visible(timeout=30_000)
    box.fill("")
    box.press_sequentially(EDITED, delay=15)  # typed key by key: a, e, s, u inside a field must not trigger shortcuts
    expect(box).to_have_value(EDITED)
    box.press("Control+Enter")
    expect(page.get_by_text("Saved your edit")).to_be_visible(timeout=30_000)
    expect(page.locator(".xi-response")).to_contain_text("சென்னை", timeout=30_000)  # next: the Tamil item

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("textbox", name="Name")).to_be_visible(timeout=30_000)
    assert dialogs == []  # no alert() ever ran
    page.close()

    # stop the server, then read what was recorded
    server["proc"].terminate()
    server["proc"].wait(30)
    store = Store(server["db"])
    with store.session() as tx:
        rows = tx.dicts("SELECT candidate_id, reviewer, action, reason, after FROM decisions ORDER BY id")
    ur_id, sw_id, bn_id = server["ids"][:3]
    assert [(r["candidate_id"], r["reviewer"], r["action"], r["reason"]) for r in rows] == [
        (ur_id, "boss", "accept", None), (sw_id, "boss", "reject", "wrong_language"), (bn_id, "boss", "edit", None)]
    assert json.loads(rows[2]["after"])["instruction"] == EDITED


