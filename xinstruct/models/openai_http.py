"""An OpenAI-compatible chat endpoint as a model (`--backend openai`): vLLM's own server (`vllm serve MODEL`), a
hosted model, or anything else that speaks POST {base_url}/chat/completions.

Standard library only (urllib): one JSON request per prompt, a few in parallel threads. The key comes from an
environment variable (OPENAI_API_KEY by default, or the one `api_key_env` names) and is sent as a Bearer token; without
one no Authorization header is sent (a local vLLM server started without --api-key needs none). Timeouts and HTTP 429 /
5xx are retried with exponential backoff (a Retry-After header is honoured); 401/403 (key), 404 (URL or model name),
other 4xx and a refused connection fail at once with what to check.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from ..errors import XInstructError
from .base import Generation, SamplingParams

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"


class EndpointError(XInstructError):
    """The endpoint refused or failed a request (after retries where retrying makes sense)."""


def chat_url(base_url: str) -> str:
    """{base_url}/chat/completions; a base URL without a path ('http://localhost:8000') gets '/v1'."""
    base = base_url.rstrip("/")
    if not urllib.parse.urlsplit(base).path:
        base += "/v1"
    return base + "/chat/completions"


class OpenAIChatModel:
    """Generates by chat completion; `chat` takes messages, `generate` sends each prompt as one user message."""

    def __init__(self, model: str, *, base_url: str = DEFAULT_BASE_URL, api_key: str | None = None,
                 api_key_env: str = DEFAULT_KEY_ENV, timeout: float = 120.0, retries: int = 5, backoff: float = 1.0,
                 max_backoff: float = 60.0, concurrency: int = 4, sleep=time.sleep):
        if not model:
            raise XInstructError("the openai backend needs a model name (e.g. --judge gpt-4o, or the name a vLLM "
                                 "server serves)")
        self.name = model
        self.base_url = base_url
        self.url = chat_url(base_url)
        self.api_key = api_key
        self.api_key_env = api_key_env
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        self.concurrency = max(1, concurrency)
        self.sleep = sleep

    @classmethod
    def load(cls, spec: str | None = None, *, base_url: str | None = None, api_key_env: str | None = None,
             **kwargs) -> OpenAIChatModel:
        env = api_key_env or DEFAULT_KEY_ENV
        base = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        return cls(spec or "", base_url=base, api_key=os.environ.get(env) or None, api_key_env=env, **kwargs)

    # -- the Model interface ---------------------------------------------------------------------------------------
    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        return self.chat([[{"role": "user", "content": p}] for p in prompts], params)

    def chat(self, conversations: list[list[dict]], params: SamplingParams) -> list[Generation]:
        """One completion per conversation, in order (requests run `concurrency` at a time)."""
        if len(conversations) <= 1 or self.concurrency == 1:
            return [self._complete(c, params) for c in conversations]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda c: self._complete(c, params), conversations))

    def label_probs(self, prompts: list[str], words: list[str]) -> list[dict[str, float]]:
        raise XInstructError("the openai backend only generates text (judging); label and score with a local backend")

    def loglik(self, prompts: list[str], continuations: list[str]) -> list[float]:
        raise XInstructError("the openai backend only generates text (judging); score with a local backend")

    # -- one request -------------------------------------------------------------------------------------------------
    def request_body(self, messages: list[dict], params: SamplingParams) -> dict:
        body = {"model": self.name, "messages": messages, "temperature": params.temperature,
                "max_tokens": params.max_new_tokens, "seed": params.seed}
        if params.temperature > 0:
            body["top_p"] = params.top_p
        if params.stop:
            body["stop"] = list(params.stop)
        return body

    def _complete(self, messages: list[dict], params: SamplingParams) -> Generation:
        data = json.dumps(self.request_body(messages, params)).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.retries + 1):
            wait = min(self.max_backoff, self.backoff * 2 ** attempt)
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                if exc.code == 429 or exc.code >= 500:
                    last = f"HTTP {exc.code}: {detail}"
                    retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
                    if attempt < self.retries:
                        self.sleep(min(self.max_backoff, retry_after) if retry_after is not None else wait)
                    continue
                raise self._fatal(exc.code, detail) from None
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, ConnectionRefusedError) or "refused" in str(reason).lower():
                    raise EndpointError(f"cannot connect to {self.url}: connection refused (is the server running? "
                                        "check --base-url)") from None
                if isinstance(reason, (socket.timeout, TimeoutError)):
                    last = f"timed out after {self.timeout:g} s"
                elif isinstance(reason, socket.gaierror):
                    raise EndpointError(f"cannot resolve the host of {self.url} (check --base-url)") from None
                else:
                    last = f"connection failed: {reason}"
                if attempt < self.retries:
                    self.sleep(wait)
                continue
            except (TimeoutError, socket.timeout, ConnectionResetError):
                last = f"timed out after {self.timeout:g} s"
                if attempt < self.retries:
                    self.sleep(wait)
                continue
            try:
                return parse_completion(raw)
            except EndpointError as exc:
                last = str(exc)  # a proxy's HTML page or a cut-off body: worth another try
                if attempt < self.retries:
                    self.sleep(wait)
        raise EndpointError(f"{self.url} failed {self.retries + 1} times; last: {last}")

    def _fatal(self, code: int, detail: str) -> EndpointError:
        if code in (401, 403):
            key = (f"the key from ${self.api_key_env} was refused" if self.api_key
                   else f"no key was sent: set ${self.api_key_env} (or name another variable with --api-key-env)")
            return EndpointError(f"{self.url} answered HTTP {code} ({detail}): {key}")
        if code == 404:
            return EndpointError(f"{self.url} answered HTTP 404 ({detail}): check --base-url (up to /v1) and the "
                                 f"model name {self.name!r}")
        return EndpointError(f"{self.url} answered HTTP {code}: {detail}")


def parse_completion(raw: bytes) -> Generation:
    """The first choice of a chat completion response: text, completion tokens and finish_reason (in meta)."""
    try:
        obj = json.loads(raw.decode("utf-8"))
        choice = obj["choices"][0]
        content = choice["message"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError):
        raise EndpointError(f"malformed response (not a chat completion): {raw[:200]!r}") from None
    if content is not None and not isinstance(content, str):
        raise EndpointError(f"malformed response: message content is {type(content).__name__}, not text")
    usage = obj.get("usage") or {}
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return Generation(content or "", n_tokens=int(tokens or 0),
                      meta={"finish_reason": choice.get("finish_reason"), "id": obj.get("id")})


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the body is only a detail of the message
        return exc.reason or ""
    try:
        err = json.loads(body).get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
        if isinstance(err, str):
            return err[:300]
    except (ValueError, AttributeError):
        pass
    return body.strip()[:300] or str(exc.reason or "")


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
