"""The session cookie: the browser keeps the login token in an HttpOnly cookie, so a reload or a reopened tab stays
logged in, and page scripts (including any injected one) cannot read the token.

Streamlit has no API to set a cookie from a script run, and a cookie set by JavaScript (`document.cookie`) cannot be
HttpOnly. Streamlit's own ASGI entry point, `st.App`, can serve extra routes beside the app, and a route's response can
set any cookie. So `serve.py` (what `xinstruct app` runs) serves the app with two routes:

* `POST /xi/session` with a one-time code in the body: sets `xi_session=<token>` (HttpOnly, SameSite=Strict, Secure
  under HTTPS, 7 days). After a login, the app puts the code (not the token) in a few lines of script that post it at
  once; the code lives 60 s in this process's memory and works once. The token itself never reaches page scripts.
* `POST /xi/logout`: clears the cookie. Logging out ends the token on the server first; the cookie is only tidied.

Streamlit reads the cookie on each new connection (`st.context.cookies`); `auth.current_user()` re-validates it on every
page run. Served with plain `streamlit run app.py` (no routes), logins work but last only as long as the tab.
"""

from __future__ import annotations

import json
import secrets
import threading
import time

COOKIE = "xi_session"
OFFER_SECONDS = 60.0
MAX_BODY = 256  # bytes: a code is 32 characters

_offers: dict[str, tuple[str, float]] = {}
_lock = threading.Lock()


def offer(token: str) -> str:
    """A one-time code (valid OFFER_SECONDS) that the browser exchanges at /xi/session for the token's cookie."""
    code = secrets.token_urlsafe(24)
    now = time.monotonic()
    with _lock:
        for old in [c for c, (_, until) in _offers.items() if until <= now]:
            del _offers[old]
        _offers[code] = (token, now + OFFER_SECONDS)
    return code


def take(code: str) -> str | None:
    """The token for a code offered less than OFFER_SECONDS ago, once; None otherwise."""
    with _lock:
        found = _offers.pop(code, None)
    if found is None or found[1] <= time.monotonic():
        return None
    return found[0]


def _base() -> str:
    from streamlit import config

    base = (config.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}" if base else ""


def script(*, code: str | None = None, clear: bool = False) -> str:
    """The page script that posts a code to /xi/session (or asks /xi/logout to clear the cookie). The code is
    alphanumeric (token_urlsafe) and written through json.dumps, so it cannot break out of the script."""
    if code is not None:
        return (f"<script>fetch({json.dumps(_base() + '/xi/session')}, {{method: 'POST', credentials: 'same-origin', "
                f"headers: {{'Content-Type': 'text/plain'}}, body: {json.dumps(code)}}});</script>")
    if clear:
        return (f"<script>fetch({json.dumps(_base() + '/xi/logout')}, {{method: 'POST', "
                f"credentials: 'same-origin'}});</script>")
    return ""


def _same_origin(request) -> bool:
    """A browser always sends Origin with a POST fetch; refuse one from another site (no cross-site cookie setting)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def _read_small_body(request) -> bytes | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return body


def _secure(request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"


async def set_cookie(request):
    from starlette.responses import PlainTextResponse, Response

    if not _same_origin(request):
        return PlainTextResponse("cross-site request refused", status_code=403)
    body = await _read_small_body(request)
    if body is None:
        return PlainTextResponse(f"body too large (at most {MAX_BODY} bytes)", status_code=413)
    token = take(body.decode("ascii", "replace").strip())
    if token is None:
        return PlainTextResponse("unknown or expired code; log in again", status_code=403)
    from .auth import SESSION_LIFETIME

    response = Response(status_code=204)
    response.set_cookie(COOKIE, token, max_age=int(SESSION_LIFETIME.total_seconds()), path=_base() or "/",
                        httponly=True, samesite="strict", secure=_secure(request))
    return response


async def clear_cookie(request):
    from starlette.responses import PlainTextResponse, Response

    if not _same_origin(request):
        return PlainTextResponse("cross-site request refused", status_code=403)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path=_base() or "/", httponly=True, samesite="strict", secure=_secure(request))
    return response


def routes() -> list:
    """The two routes, for st.App(..., routes=routes())."""
    from starlette.routing import Route

    return [Route(f"{_base()}/xi/session", set_cookie, methods=["POST"]),
            Route(f"{_base()}/xi/logout", clear_cookie, methods=["POST"])]
