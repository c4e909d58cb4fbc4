// xinstruct Review page shortcuts (see xinstruct/keyboard.py for the protocol and the key map).
//
// One keydown listener for the whole tab, installed once. A key is sent to the server as {id, key, item} (item: the
// candidate shown when the key was pressed). Only one key is in flight at a time: the others wait in a queue until the
// server has confirmed the previous one (data.ack) and the page has finished its run. A queued key is applied only if
// the same item is still shown and the key means something in the page's new mode; otherwise it is refused with a
// visible notice. A key the server never confirms is sent again under the same id (the server ignores ids it has seen),
// and after a few tries the reviewer is told. Nothing is dropped in silence and nothing is applied twice.
//
// Readiness: until this module has loaded, a key cannot reach the queue (Streamlit imports the module after the page's
// first elements are drawn; on a slow first load the buttons are on screen seconds before). A key pressed then goes to
// Streamlit's own button shortcut (an A on an idle page accepts the item shown), which has no queue and no tie to the
// item shown, so a burst can land on an item the reviewer has not seen. Two answers:
// * Capture: the login page mounts this listener too (data {mode: "off"}: it only installs the controller), so after
//   login the controller already exists when the first item is drawn. A key pressed while an item is on screen
//   ([data-xi-item]) but before the Review page's data has arrived is queued for that item like any key pressed while
//   busy; if the item leaves the page before the data arrives, the key is refused visibly.
// * Cue, for a first load without the login page (a reload with the session cookie): the page shows "Keyboard
//   shortcuts are starting…" (render.keys_cue_html) and this listener marks the document (<html data-xi-keys="ready">)
//   once it holds the page's data; review.css then says "Keyboard shortcuts on" and shows the shortcut badges as live.
//   Leaving the Review page (detach) removes the mark.
const VERSION = 5; // 5: readiness mark, keys queued before the page's data
const KEYS = new Set(["a", "e", "x", "s", "u", "1", "2", "3", "4", "5", "6", "escape"]);
const RESEND_MS = 1500; // no confirmation this long after the page went idle: send the same id again
const MAX_TRIES = 4;
const DETACH_MS = 2000; // after a cleanup, the component's element gone from the page this long: the page is gone
const SHOW_QUEUE_MS = 400; // show "queued" only when a key waits longer than this

const label = (k) => (k === "escape" ? "Esc" : k.toUpperCase());

function keyName(ev) {
  const k = (ev.key || "").toLowerCase();
  return k === "esc" ? "escape" : k;
}

function editable(target) {
  if (!target || target.nodeType !== 1) return false;
  return !!target.closest('input, textarea, select, [contenteditable]:not([contenteditable="false"])');
}

function appIdle() {
  const app = document.querySelector('[data-testid="stApp"]');
  const state = app ? app.getAttribute("data-test-script-state") : null;
  return !state || !["running", "rerunRequested", "stopRequested"].includes(state);
}

function noticeBox(id) {
  let box = document.getElementById(id);
  if (!box) {
    box = document.createElement("div");
    box.id = id;
    box.className = "xi-keys-notice";
    box.setAttribute("role", "status");
    box.setAttribute("aria-live", "polite");
    box.hidden = true;
    document.body.appendChild(box);
  }
  return box;
}

function markReady(ready) {
  if (ready) document.documentElement.dataset.xiKeys = "ready";
  else delete document.documentElement.dataset.xiKeys;
}

function makeController() {
  const c = {
    version: VERSION,
    view: null, // {item, mode, keys, hints, ack, run} from the server's latest run
    trigger: null,
    pending: null, // the key in flight: {id, key, item, sentAt, tries, queuedAt}
    queue: [], // keys pressed while busy: {key, item, at}
    seq: 0,
    page: Math.random().toString(36).slice(2, 10) + Date.now().toString(36),
    lastUpdate: 0,
    detachTimer: null,
    refusedTimer: null,
    goneSince: 0,
  };

  c.itemOnScreen = () => {
    const el = document.querySelector("[data-xi-item]");
    return el ? el.getAttribute("data-xi-item") : c.view ? c.view.item : "";
  };

  c.refuse = (text) => {
    const box = noticeBox("xi-keys-refused");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(c.refusedTimer);
    c.refusedTimer = setTimeout(() => {
      box.hidden = true;
    }, 8000);
  };

  c.showQueue = () => {
    const box = noticeBox("xi-keys-queued");
    const now = performance.now();
    const waiting = c.queue.filter((q) => now - q.at >= SHOW_QUEUE_MS);
    if (waiting.length) {
      box.textContent = `Page busy: ${c.queue.map((q) => label(q.key)).join(" ")} queued, applied when it is ready.`;
      box.hidden = false;
    } else {
      box.hidden = true;
    }
  };

  c.send = (q) => {
    const id = `${c.page}:${++c.seq}`;
    c.pending = { id, key: q.key, item: q.item, sentAt: performance.now(), tries: 1 };
    c.trigger("press", { id, key: q.key, item: q.item });
  };

  c.pump = () => {
    if (!c.pending && c.view && c.trigger && appIdle()) {
      while (c.queue.length) {
        const q = c.queue.shift();
        if (q.item !== c.view.item) {
          const now = c.view.item ? "another item is shown" : "your queue is now empty";
          c.refuse(`${label(q.key)} was not applied: you pressed it on a previous item and ${now}. ` +
                   "Press it again if you mean this one.");
          continue;
        }
        if (!c.view.keys.includes(q.key)) {
          c.refuse(`${label(q.key)} was not applied: it does nothing ${c.view.hint}.`);
          continue;
        }
        c.send(q);
        break;
      }
    }
    c.showQueue();
  };

  c.onKey = (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) return;
    const key = keyName(ev);
    if (!KEYS.has(key) || editable(ev.target)) return;
    if (!c.view && !c.pending && !c.queue.length && !document.querySelector("[data-xi-item]")) return; // not on Review
    const busy = !!c.pending || c.queue.length > 0 || !c.view || !appIdle();
    if (!busy && c.view.mode === "edit") return; // Ctrl+Enter / Esc of the edit form handle it
    ev.preventDefault();
    ev.stopImmediatePropagation(); // this listener alone handles the review keys (no second path, no double action)
    if (ev.repeat) return; // a held key is one press
    if (!busy && !c.view.keys.includes(key)) {
      c.refuse(`${label(key)} does nothing ${c.view.hint}.`);
      return;
    }
    c.queue.push({ key, item: c.itemOnScreen(), at: performance.now() });
    c.pump();
  };

  c.watch = () => {
    c.pump();
    if (!c.view && c.queue.length && !document.querySelector("[data-xi-item]") && appIdle()) {
      // queued before the Review page's data arrived, and the item has gone since: the page is not the Review page
      c.goneSince = c.goneSince || performance.now();
      if (performance.now() - c.goneSince > DETACH_MS) {
        const lost = c.queue.map((q) => label(q.key));
        c.queue = [];
        c.showQueue();
        c.refuse(`${lost.join(" ")} not applied: the Review page was not ready and its item is gone.`);
      }
    } else {
      c.goneSince = 0;
    }
    const p = c.pending;
    if (!p || !appIdle()) return;
    const now = performance.now();
    if (now - p.sentAt < RESEND_MS || now - c.lastUpdate < 300) return;
    if (p.tries >= MAX_TRIES || !c.trigger) {
      c.pending = null;
      c.refuse(`${label(p.key)} may not have been applied: the server did not confirm it. ` +
               "Check the item and press it again if needed.");
      c.pump();
      return;
    }
    p.tries += 1;
    p.sentAt = now;
    c.trigger("press", { id: p.id, key: p.key, item: p.item });
  };

  c.update = (data, trigger) => {
    clearTimeout(c.detachTimer);
    c.view = data;
    c.trigger = trigger;
    c.lastUpdate = performance.now();
    if (c.pending && data.ack === c.pending.id) c.pending = null;
    markReady(true);
    c.pump();
  };

  c.detach = () => {
    const lost = c.queue.map((q) => label(q.key));
    if (c.pending) lost.unshift(label(c.pending.key));
    c.view = null;
    c.pending = null;
    c.queue = [];
    markReady(false);
    c.showQueue();
    if (lost.length) c.refuse(`${lost.join(" ")} not applied: you left the Review page.`);
  };

  const app = document.querySelector('[data-testid="stApp"]');
  const observer = new MutationObserver(() => c.pump());
  if (app) observer.observe(app, { attributes: true, attributeFilter: ["data-test-script-state"] });
  const ticker = setInterval(c.watch, 200);
  window.addEventListener("keydown", c.onKey, true);
  c.dispose = () => {
    markReady(false);
    observer.disconnect();
    clearInterval(ticker);
    window.removeEventListener("keydown", c.onKey, true);
  };
  return c;
}

function controller() {
  const old = window.__xiReviewKeys;
  if (old && old.version === VERSION) return old;
  if (old) old.dispose();
  window.__xiReviewKeys = makeController();
  return window.__xiReviewKeys;
}

// Streamlit calls the returned cleanup when the component leaves the page, and also when a render of it was overtaken
// by a newer one (data changes on every run; on a busy machine two runs' renders overlap). Only the first means the
// reviewer left: so the queued keys are dropped only when the component's element and the item are both gone from the
// page. (Version 3 dropped them whenever no render came within DETACH_MS of any cleanup: a key queued during a slow
// run after an overtaken render was refused as "you left the Review page" while the reviewer was still on it.)
export default function (component) {
  const c = controller();
  if (component.data && component.data.mode === "off") return () => {}; // the login page: installed, nothing to hear
  const el = component.parentElement;
  c.update(component.data, component.setTriggerValue);
  return () => {
    clearTimeout(c.detachTimer);
    const check = () => {
      if ((el && el.isConnected) || document.querySelector("[data-xi-item]")) {
        c.detachTimer = setTimeout(check, DETACH_MS); // still on the Review page: look again later
      } else {
        c.detach();
      }
    };
    c.detachTimer = setTimeout(check, DETACH_MS);
  };
}
