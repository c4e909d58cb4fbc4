"""Review shortcuts: one key map for the Review page and its browser listener (assets/review_keys.js).

A key the reviewer presses is sent to the server as {id, key, item}: a unique id, the key, and the id of the item that
was on screen when it was pressed. The browser sends one key at a time and queues the rest until the server has
confirmed the previous one (the page's data carries the last id it handled) and the page is idle, so a key pressed
while the page reruns is applied afterwards instead of being lost. The server (`resolve`) applies a key only to the item
it was pressed on and only once per id, and says why when it refuses one; the browser refuses visibly what can no
longer apply.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

from .review import REJECT_REASONS

# mode -> key -> action. "reject:<code>" rejects with that reason; the reasons are numbered in REJECT_REASONS' order.
KEYMAP: dict[str, dict[str, str]] = {
    "view": {"a": "accept", "e": "edit", "x": "reject", "s": "skip", "u": "undo"},
    "reject": {**{str(n): f"reject:{code}" for n, code in enumerate(REJECT_REASONS, start=1)}, "escape": "cancel"},
    # While editing, Ctrl+Enter and Esc belong to the edit form (Streamlit's own button shortcuts, so the text typed
    # last is saved); the listener only delivers an Esc that was queued while the page was busy.
    "edit": {"escape": "cancel_edit"},
    "empty": {"u": "undo"},
}
MODE_HINT = {
    "view": "here (A accept, E edit, X reject, S skip, U undo)",
    "reject": "while choosing a reject reason (1-6, or Esc to go back)",
    "edit": "while editing (Ctrl+Enter saves, Esc cancels)",
    "empty": "while your queue is empty (U undoes your last decision)",
}
SEEN_KEEP = 200  # ids of handled keys remembered per session (a resent key is recognised, never applied twice)


def key_label(key: str) -> str:
    return "Esc" if key == "escape" else key.upper()


def keys_for(mode: str) -> list[str]:
    return sorted(KEYMAP.get(mode, {}))


def resolve(press: Any, *, item_id: str, mode: str, seen: list[str]) -> tuple[str | None, str | None]:
    """What to do with one key event from the browser: (action, None), (None, message) to refuse it, or (None, None)
    for an id already handled (a resend). `seen` is the session's list of handled ids; the id is added to it."""
    if not isinstance(press, dict) or not all(isinstance(press.get(f), str) for f in ("id", "key", "item")):
        return None, (f"A key event from the browser was malformed and not applied ({str(press)[:80]}). "
                      "Press the key again.")
    if press["id"] in seen:
        return None, None
    seen.append(press["id"])
    del seen[:-SEEN_KEEP]
    key = press["key"]
    if press["item"] != item_id:
        now = "another item is shown" if item_id else "your queue is now empty"
        return None, (f"{key_label(key)} was not applied: you pressed it on a previous item and {now}. "
                      "Press it again if you mean this one.")
    action = KEYMAP.get(mode, {}).get(key)
    if action is None:
        return None, f"{key_label(key)} was not applied: it does nothing {MODE_HINT.get(mode, 'here')}."
    return action, None


def preload() -> None:
    """Mount the listener with nothing to hear (the login page): its module is loaded before the Review page's first
    item is drawn, so a key pressed right after login is queued for that item instead of going to Streamlit's own
    button shortcut (assets/review_keys.js, "Readiness")."""
    component()(key="xi_keys_login", data={"mode": "off"})


@lru_cache(maxsize=1)
def _script() -> str:
    return resources.files("xinstruct").joinpath("assets/review_keys.js").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def component():
    """The listener as a Streamlit component (registered once per process; no visible content of its own)."""
    import streamlit as st

    return st.components.v2.component("xinstruct_review_keys", js=_script(), isolate_styles=False)
