"""The review app in a real browser: `streamlit run app.py` on a temp store, Debian chromium driven by Playwright.

* The decision in view: at 1366x768 and on a 390x844 phone the instruction, the start of a long response and the
  Accept/Edit/Reject buttons lie inside the viewport without scrolling (the response scrolls in its own box); the source
  panel names the source, links the URL safely and shows the original text where it differs from the response.
* The keyboard flow as admin: A; X then 1; E, type, Ctrl+Enter; Urdu right-to-left; a <script> shows as text.
* Keys pressed while the page is busy (as a second reviewer, on items of their own languages): a burst is queued and
  applied in order to the item it was pressed on; a key pressed on an item that is gone is refused with a visible
  notice and lands on no other item. The decisions are read back from the database.
* The keyboard cue (a third reviewer): with the listener's module held back (a slow first load made sure), the page
  says "Keyboard shortcuts are starting…" and the badges look switched off; once the listener holds the page's data,
  "Keyboard shortcuts on", and A goes through it. The login page loads the listener: A A pressed as soon as the first
  item shows, before the listener has the Review page's data (held back), accepts that item and refuses the
  second A.

Screenshots go to the test's tmp folder and are copied to $TMPDIR/xinstruct-review-{desktop,phone}.png.
`bench/browser_soak.sh` runs this file repeatedly beside a CPU hog.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from browser_kit import chromium, require_browser, streamlit_server
from conftest import add_candidates
from xinstruct import auth, render
from xinstruct.store import Store

pytestmark = pytest.mark.browser

PASSWORD = "browser-pass-1"
UR_SENTENCE = ("وزیرخزانہ اسد عمر نے جنوبی اور وسطی ایشیا کے لیے امریکی ڈپٹی اسسٹنٹ سیکریٹری ایلس ویلز سے ملاقات میں واضح کر "
               "دیا ہے کہ پاکستان نے دہشت گردی کے خلاف بڑی قربانیاں دی ہیں۔ ")
UR = UR_SENTENCE * 14  # a long response: it must scroll inside its own box, the buttons stay in view
UR_ORIGINAL = "ہوم | خبریں | رابطہ\n" + UR  # the web text before cleaning: the source panel shows it
UR_URL = "https://example.org/ur/news?id=7&lang=ur"
SCRIPT_DOC = "<script>alert(1)</script> Habari za leo: mvua kubwa imenyesha Dar es Salaam na mitaa mingi imejaa maji."
BN = "দিল্লী দর্বার তৈরীর পূর্বে, গেটওয়ে অব ইন্ডিয়া ১৯১১ সালে কিং জর্জ ফাইভ এবং কুনি মেরি মুম্বাই আগমনের স্মৃতি রক্ষার্থে নির্মাণ করা হয়েছিল।"
TA = "ஆனால், இந்த வரிசையில் சென்னை அருகே அமைக்கப்பட உள்ள கிரீன் பீல்டு விமான நிலையத்துக்கு பாதிப்பு ஏற்படும் வகையில்"
TH = "ในปี พ.ศ. 2427 พระบาทสมเด็จพระจุลจอมเกล้าเจ้าอยู่หัว ทรงพระกรุณาโปรดเกล้าฯ ให้พระเจ้าน้องยาเธอ กรมหมื่นพิชิตปรีชากร"
EDITED = "Why was the Gateway of India built, and when?"
RITA_ITEMS = [  # the second reviewer's queue (fi, tr, vi, id), in queue order; scored last in the admin's queue
    {"lang": "fi", "text": "Kaupungin valtuusto päätti eilen rakentaa uuden kirjaston keskustaan ensi vuonna.",
     "instruction": "What did the city council decide yesterday?", "score": 0.95},
    {"lang": "tr", "text": "Belediye meclisi dün şehir merkezine yeni bir kütüphane yapılmasına karar verdi.",
     "instruction": "What did the municipal council decide?", "score": 0.96},
    {"lang": "vi", "text": "Hội đồng thành phố hôm qua đã quyết định xây một thư viện mới ở trung tâm.",
     "instruction": "What will be built in the city centre?", "score": 0.97},
    {"lang": "id", "text": "Dewan kota kemarin memutuskan untuk membangun perpustakaan baru di pusat kota.",
     "instruction": "What did the city council decide to build?", "score": 0.98},
]
HANA_ITEMS = [  # the third reviewer's queue (hi), in queue order; last in the admin's queue
    {"lang": "hi", "text": "नगर परिषद ने कल शहर के बीच में एक नया पुस्तकालय बनाने का फ़ैसला किया।",
     "instruction": "What did the city council decide to build?", "score": 0.99},
    {"lang": "hi", "text": "पुस्तकालय अगले साल खुलेगा और उसमें बच्चों के लिए एक अलग कमरा होगा।",
     "instruction": "When will the library open?", "score": 0.995},
    {"lang": "hi", "text": "पुस्तकालय में हिंदी और अंग्रेज़ी की दस हज़ार किताबें होंगी।",
     "instruction": "How many books will the library have?", "score": 0.996},
    {"lang": "hi", "text": "शहर के लोग पुस्तकालय के लिए किताबें दान कर सकते हैं।",
     "instruction": "How can residents help the library?", "score": 0.997},
]
# Holds back the key listener's JS module (Streamlit imports a component's inline JS from a blob: URL) until the test
# calls window.__xiReleaseKeys(): the page then looks as on a slow first load, the item shown and the listener not yet
# mounted.
HOLD_LISTENER = """
window.__xiHoldKeys = new Promise((resolve) => { window.__xiReleaseKeys = resolve; });
const createObjectURL = URL.createObjectURL.bind(URL);
URL.createObjectURL = (blob) => (blob instanceof Blob && blob.type === "text/javascript")
  ? createObjectURL(new Blob(["await window.__xiHoldKeys;\\n", blob], {type: blob.type}))
  : createObjectURL(blob);
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    folder = tmp_path_factory.mktemp("browser")
    db = folder / "review.duckdb"
    store = Store(db)
    ids = add_candidates(store, [
        {"lang": "ur", "text": UR_ORIGINAL, "response": UR, "score": 0.5, "label": "good",
         "instruction": "What did Pakistan's finance minister tell the US envoy?"},
        {"lang": "sw", "text": SCRIPT_DOC, "instruction": "What is today's weather news?", "score": 0.45, "label": "flawed"},
        {"lang": "bn", "text": BN, "instruction": "Why was the Gateway of India built?", "score": 0.6},
        {"lang": "ta", "text": TA, "instruction": "What protest was announced near Chennai?", "score": 0.7},
        {"lang": "th", "text": TH, "instruction": "Who was sent to govern Chiang Mai in 1884?", "score": 0.9},
    ])
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # the server verifies it, then rehashes once
    saved = auth._hasher
    auth._hasher = fast
    rita_ids = add_candidates(store, RITA_ITEMS)
    hana_ids = add_candidates(store, HANA_ITEMS)
    store.write(lambda tx: tx.execute("UPDATE documents SET url = ? "
                                      "WHERE id = (SELECT doc_id FROM candidates WHERE id = ?)", [UR_URL, ids[0]]))
    store.write(lambda tx: tx.execute("UPDATE documents SET url = 'javascript:alert(1)' "
                                      "WHERE id = (SELECT doc_id FROM candidates WHERE id = ?)", [ids[1]]))
    try:
        auth.add_user(store, "boss", PASSWORD, "admin", [])
        auth.add_user(store, "rita", PASSWORD, "reviewer", ["fi", "tr", "vi", "id"])
        auth.add_user(store, "hana", PASSWORD, "reviewer", ["hi"])
    finally:
        auth._hasher = saved
    del store  # the file is closed after every session; the server process opens it alone
    with streamlit_server(db, folder, "app.py") as srv:
        yield {**srv, "db": db, "ids": ids, "rita": rita_ids, "hana": hana_ids, "folder": folder}


@pytest.fixture(scope="module")
def browser(server):
    with chromium() as b:
        yield b


def _login(page, url, name="boss"):
    page.goto(url)
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector(".xi-response", timeout=60_000)


def _shot(page, path: Path, name: str) -> Path:
    time.sleep(0.8)  # let fonts and the layout settle
    page.screenshot(path=str(path), full_page=True)
    shutil.copy(path, Path(tempfile.gettempdir()) / f"xinstruct-review-{name}.png")
    return path


def _inside(box, width, height, top=0.0) -> bool:
    return (box is not None and box["x"] >= -1 and box["x"] + box["width"] <= width + 1
            and box["y"] >= top - 1 and box["y"] + box["height"] <= height + 1)


@pytest.mark.parametrize("size", [(1366, 768), (390, 844)], ids=["laptop", "phone"])
def test_decision_in_view(server, browser, size):
    width, height = size
    phone = width < 640
    page = browser.new_page(viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone,
                            device_scale_factor=2 if phone else 1)
    _login(page, server["url"])
    page.wait_for_selector(".xi-response >> text=وزیرخزانہ")
    time.sleep(0.8)  # fonts and layout settle
    header = page.locator('[data-testid="stHeader"]').bounding_box()
    top = header["y"] + header["height"] if header else 0.0
    assert page.evaluate("() => document.scrollingElement.scrollTop") == 0
    boxes = {"instruction": page.locator(".xi-instruction").bounding_box()}
    for name in ("Accept", "Edit", "Reject"):
        boxes[name] = page.get_by_role("button", name=name).bounding_box()
    for name, box in boxes.items():
        assert _inside(box, width, height, top), (name, box, size, top)
    response = page.locator(".xi-response")
    box = response.bounding_box()
    assert box["y"] >= top - 1 and box["y"] + 60 <= height, (box, size)  # at least its first lines are in view
    # the long response scrolls inside its own box (the page does not grow past the buttons)
    assert response.evaluate("e => e.scrollHeight > e.clientHeight + 20 && getComputedStyle(e).overflowY === 'auto'")
    # the source panel: its name, a safe link, and the original text (it differs from the cleaned response)
    panel = page.locator(".xi-source-panel")
    expect_text = panel.inner_text()
    assert "test" in expect_text  # documents.source of the fixture
    link = panel.locator(".xi-url a")
    assert link.get_attribute("href") == UR_URL
    assert link.get_attribute("rel") == "noopener noreferrer" and link.get_attribute("target") == "_blank"
    assert "ہوم | خبریں" in panel.locator(".xi-source").inner_text()
    # the suggestion is neutral: labelled as a suggestion, no verdict colour
    suggestion = page.locator(".xi-suggest")
    assert suggestion.inner_text().startswith("Suggestion")
    assert "unproven for ur: 0 of 30 reviews so far" in suggestion.inner_text()  # no measured agreement yet
    colour = suggestion.evaluate("e => getComputedStyle(e.querySelector('.xi-suggest-title') || e).color")
    assert colour not in ("rgb(27, 127, 59)", "rgb(180, 35, 24)"), colour
    page.close()


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


def _rita_decisions(server) -> list[tuple]:
    """Rita's decisions so far, read by the server's own store (the app holds the file only during a request)."""
    store = Store(server["db"])
    with store.session() as tx:
        return [tuple(r) for r in tx.all("SELECT candidate_id, action, reason FROM decisions WHERE reviewer = 'rita' "
                                         "ORDER BY id")]


def test_keys_pressed_while_busy(server, browser):
    """Keys pressed faster than the page reruns: queued and applied to their item, or refused visibly; never lost."""
    from playwright.sync_api import expect

    fi, tr, vi, id_ = server["rita"]
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    _login(page, server["url"], "rita")
    refused = page.locator("#xi-keys-refused")

    # 1. A, A: the first accepts the Finnish item; the second was pressed on that item too (the next one was not on
    #    screen yet), so it must not accept the Turkish item: it is refused with a visible notice.
    expect(page.locator(".xi-response")).to_contain_text("Kaupungin", timeout=30_000)
    # as a reviewer does: wait until the page says the shortcuts are on (on a busy machine the key listener mounts
    # seconds after the item is shown; a key pressed before goes to Streamlit's own button shortcut, not the queue)
    expect(page.locator(".xi-keys-cue")).to_have_text(render.KEYS_ON, use_inner_text=True, timeout=30_000)
    page.locator(".xi-instruction").click()
    # The two keydowns in one browser task: two page.keyboard.press calls are two round trips through the Playwright
    # driver, and beside the CPU hog (soak 03:24, run 2 of 20) the Turkish item was drawn between them, so the second
    # A was rightly applied to the item on screen when it arrived. Here both are surely pressed on the Finnish item.
    page.evaluate("""() => {
        const target = document.activeElement || document.body;
        for (const type of ["keydown", "keyup", "keydown", "keyup"]) {
            target.dispatchEvent(new KeyboardEvent(type, {key: "a", code: "KeyA", bubbles: true, cancelable: true}));
        }
    }""")
    expect(page.get_by_text("Accepted.")).to_be_visible(timeout=30_000)
    expect(page.locator(".xi-response")).to_contain_text("Belediye", timeout=30_000)
    expect(refused).to_be_visible(timeout=30_000)
    expect(refused).to_contain_text("A was not applied")

    # 2. X, 1 in one burst on the Turkish item: the 1 waits until the reasons are there, then rejects.
    page.keyboard.press("x")
    page.keyboard.press("1")
    expect(page.get_by_text("Rejected.")).to_be_visible(timeout=30_000)

    # 3. X, Esc, S in one burst on the Vietnamese item: reject mode, back, skip; each applied once, in order.
    expect(page.locator(".xi-response")).to_contain_text("Hội đồng", timeout=30_000)
    page.keyboard.press("x")
    page.keyboard.press("Escape")
    page.keyboard.press("s")
    expect(page.get_by_text("Skipped.")).to_be_visible(timeout=30_000)
    expect(page.locator(".xi-response")).to_contain_text("Dewan kota", timeout=30_000)
    page.close()

    assert _rita_decisions(server) == [(fi, "accept", None), (tr, "reject", "wrong_language"), (vi, "skip", None)]


def test_keys_cue_until_listener_mounted(server, browser):
    """Until the key listener has mounted, the page says that shortcuts are starting; once it holds the page's data,
    that they are on, and a key goes through it. The listener's module is held back to make the slow first load sure."""
    from playwright.sync_api import expect

    first, second = server["hana"][:2]
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.add_init_script(HOLD_LISTENER)
    _login(page, server["url"], "hana")
    cue = page.locator(".xi-keys-cue")
    expect(page.locator(".xi-response")).to_contain_text("नगर परिषद", timeout=30_000)
    expect(cue).to_have_text(render.KEYS_STARTING, use_inner_text=True, timeout=30_000)
    time.sleep(1)  # the page is idle: the listener stays unmounted while its module is held
    assert page.evaluate("() => window.__xiReviewKeys === undefined")
    expect(cue).to_have_text(render.KEYS_STARTING, use_inner_text=True)
    badge = page.get_by_role("button", name="Accept").locator("kbd")
    switched_off = "e => getComputedStyle(e).textDecorationLine === 'line-through'"
    assert badge.evaluate(switched_off)  # the A badge looks switched off

    page.evaluate("() => window.__xiReleaseKeys()")
    expect(cue).to_have_text(render.KEYS_ON, use_inner_text=True, timeout=30_000)
    assert page.evaluate("() => !!(window.__xiReviewKeys && window.__xiReviewKeys.view)")  # "on" means mounted
    assert not badge.evaluate(switched_off)
    page.locator(".xi-instruction").click()
    page.keyboard.press("a")
    expect(page.get_by_text("Accepted.")).to_be_visible(timeout=30_000)
    expect(page.locator(".xi-response")).to_contain_text("पुस्तकालय अगले", timeout=30_000)
    expect(cue).to_have_text(render.KEYS_ON, use_inner_text=True)  # the next item: the listener is still there
    page.close()

    store = Store(server["db"])
    with store.session() as tx:
        rows = [tuple(r) for r in tx.all("SELECT candidate_id, action FROM decisions WHERE reviewer = 'hana'")]
    assert rows == [(first, "accept")]
    assert second != first


def test_keys_right_after_login_are_queued(server, browser):
    """The login page loads the key listener, so keys pressed as soon as the first item shows, before the Review page's
    listener data has arrived, are queued for that item: A A accepts it and refuses the second A (pressed on it too),
    instead of Streamlit's own shortcut taking them. The data is held back until the keys are pressed."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(server["url"])
    page.get_by_role("textbox", name="Name").fill("hana")
    page.wait_for_function("() => !!window.__xiReviewKeys", timeout=30_000)  # loaded on the login page
    page.evaluate("""() => {  // hold the Review page's data back from the listener until the test releases it
        const c = window.__xiReviewKeys, update = c.update, held = [];
        c.update = (data, trigger) => { held.push([data, trigger]); };
        window.__xiReleaseData = () => { c.update = update; for (const [data, trigger] of held) update(data, trigger); };
    }""")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    item = page.locator("[data-xi-item]")
    expect(item).to_have_count(1, timeout=60_000)
    shown = item.get_attribute("data-xi-item")
    assert page.evaluate("() => document.documentElement.dataset.xiKeys === undefined")  # its data not there yet
    page.locator(".xi-instruction").click()
    page.keyboard.press("a")
    page.keyboard.press("a")
    expect(page.locator("#xi-keys-queued")).to_contain_text("A A queued", timeout=30_000)  # heard, waiting
    expect(page.locator(".xi-keys-cue")).to_have_text(render.KEYS_STARTING, use_inner_text=True)
    page.evaluate("() => window.__xiReleaseData()")
    expect(page.get_by_text("Accepted.")).to_be_visible(timeout=30_000)
    refused = page.locator("#xi-keys-refused")
    expect(refused).to_be_visible(timeout=30_000)
    expect(refused).to_contain_text("A was not applied")
    expect(page.locator(".xi-keys-cue")).to_have_text(render.KEYS_ON, use_inner_text=True, timeout=30_000)
    nxt = page.locator("[data-xi-item]")
    expect(nxt).not_to_have_attribute("data-xi-item", shown, timeout=30_000)
    following = nxt.get_attribute("data-xi-item")
    page.close()

    store = Store(server["db"])
    with store.session() as tx:
        rows = [tuple(r) for r in tx.all("SELECT candidate_id, action FROM decisions WHERE reviewer = 'hana'")]
    assert rows[-1] == (shown, "accept")
    assert (following, "accept") not in rows  # the second A landed on no other item


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
    # the source panel is drawn after the pair: wait for this item's panel before counting its links (the previous
    # item's panel, with its http link, can still be on screen while the run goes on)
    expect(page.locator(".xi-source-panel")).to_contain_text("javascript:alert(1)", timeout=30_000)
    assert page.locator(".xi-source-panel a").count() == 0  # a javascript: URL is shown as text, never as a link
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
    rows = [r for r in rows if r["reviewer"] == "boss"]  # (the second reviewer's are checked by their own test)
    assert [(r["candidate_id"], r["reviewer"], r["action"], r["reason"]) for r in rows] == [
        (ur_id, "boss", "accept", None), (sw_id, "boss", "reject", "wrong_language"), (bn_id, "boss", "edit", None)]
    assert json.loads(rows[2]["after"])["instruction"] == EDITED


