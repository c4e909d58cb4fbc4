"""The OpenAI-compatible HTTP backend against a local fake endpoint: the request it sends (URL, auth header, messages,
sampling), the responses it reads (including malformed ones), retries on 429/5xx/timeouts, clear errors otherwise."""

from __future__ import annotations

import socket

import pytest

from fake_openai import FakeEndpoint, completion
from xinstruct.models.base import SamplingParams, load_model
from xinstruct.models.openai_http import EndpointError, OpenAIChatModel, chat_url, parse_completion

PARAMS = SamplingParams(max_new_tokens=64, temperature=0.0, stop=())


@pytest.fixture
def endpoint():
    with FakeEndpoint() as ep:
        yield ep


def model(ep: FakeEndpoint, **kw) -> OpenAIChatModel:
    kw.setdefault("api_key", "sk-test")
    kw.setdefault("retries", 2)
    return OpenAIChatModel("judge-model", base_url=ep.base_url, backoff=0.0, **kw)


def test_request_carries_key_messages_and_sampling(endpoint, monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-from-env")
    m = load_model("judge-model", "openai", base_url=endpoint.base_url, api_key_env="MY_JUDGE_KEY")
    msgs = [{"role": "system", "content": "Be fair."}, {"role": "user", "content": "Rate these: ä ü ஆ"}]
    [gen] = m.chat([msgs], PARAMS)
    assert gen.text.startswith("Scores: 7 4") and gen.n_tokens == 7 and gen.meta["finish_reason"] == "stop"
    [req] = endpoint.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-from-env"
    assert req["headers"]["Content-Type"] == "application/json"
    body = req["body"]
    assert body["model"] == "judge-model" and body["messages"] == msgs
    assert body["temperature"] == 0.0 and body["max_tokens"] == 64 and "stop" not in body


def test_generate_sends_a_user_message_and_keeps_the_order(endpoint):
    endpoint.content = lambda body: body["messages"][-1]["content"].upper()
    gens = model(endpoint, concurrency=3).generate(["one", "two", "three", "four"], PARAMS)
    assert [g.text for g in gens] == ["ONE", "TWO", "THREE", "FOUR"]
    assert all(r["body"]["messages"][0]["role"] == "user" for r in endpoint.requests)


def test_without_a_key_no_authorization_header(endpoint, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    m = load_model("judge-model", "openai", base_url=endpoint.base_url)
    m.generate(["hi"], PARAMS)
    assert "Authorization" not in endpoint.requests[0]["headers"]


def test_base_url_without_a_path_gets_v1():
    assert chat_url("http://localhost:8000") == "http://localhost:8000/v1/chat/completions"
    assert chat_url("http://localhost:8000/v1/") == "http://localhost:8000/v1/chat/completions"
    assert chat_url("https://host/openai/v1") == "https://host/openai/v1/chat/completions"


def test_429_and_5xx_are_retried_with_backoff(endpoint):
    slept = []
    endpoint.script = [(429, {"error": {"message": "slow down"}}, {"Retry-After": "3"}),
                       (503, b"<html>busy</html>", {})]
    m = OpenAIChatModel("judge-model", base_url=endpoint.base_url, retries=3, backoff=0.5, sleep=slept.append)
    [gen] = m.generate(["hi"], PARAMS)
    assert gen.text.startswith("Scores") and len(endpoint.requests) == 3
    assert slept == [3.0, 1.0]  # Retry-After honoured, then backoff * 2**attempt


def test_persistent_5xx_fails_after_the_retries(endpoint):
    endpoint.script = [(500, {"error": {"message": "boom"}}, {})] * 3
    with pytest.raises(EndpointError, match=r"failed 3 times; last: HTTP 500: boom"):
        model(endpoint).generate(["hi"], PARAMS)


def test_401_names_the_key_variable_and_is_not_retried(endpoint):
    endpoint.script = [(401, {"error": {"message": "Incorrect API key"}}, {})]
    with pytest.raises(EndpointError, match=r"HTTP 401 \(Incorrect API key\).*OPENAI_API_KEY was refused"):
        model(endpoint).generate(["hi"], PARAMS)
    assert len(endpoint.requests) == 1


def test_404_points_at_the_url_and_model(endpoint):
    m = OpenAIChatModel("judge-model", base_url=endpoint.base_url.replace("/v1", "/v2"), backoff=0.0)
    with pytest.raises(EndpointError, match=r"HTTP 404.*--base-url.*'judge-model'"):
        m.generate(["hi"], PARAMS)


def test_connection_refused_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    m = OpenAIChatModel("judge-model", base_url=f"http://127.0.0.1:{port}/v1", backoff=0.0)
    with pytest.raises(EndpointError, match="connection refused.*--base-url"):
        m.generate(["hi"], PARAMS)


def test_a_timeout_is_retried(endpoint):
    endpoint.script = [1.0]  # the first request answers after 1 s
    m = model(endpoint, timeout=0.3)
    [gen] = m.generate(["hi"], PARAMS)
    assert gen.text.startswith("Scores") and len(endpoint.requests) == 2


def test_malformed_responses(endpoint):
    endpoint.script = [(200, b"not json at all", {}), (200, {"choices": []}, {}), (200, {"object": "x"}, {})]
    with pytest.raises(EndpointError, match="malformed response"):
        model(endpoint).generate(["hi"], PARAMS)
    assert len(endpoint.requests) == 3
    endpoint.script = [(200, b"<html>proxy</html>", {})]
    assert model(endpoint).generate(["hi"], PARAMS)[0].text.startswith("Scores")  # recovered on the retry


def test_parse_completion_shapes():
    assert parse_completion(b'{"choices": [{"message": {"content": null}, "finish_reason": "length"}]}').text == ""
    gen = parse_completion(str.encode(__import__("json").dumps(completion("7 4", "length", 3))))
    assert (gen.text, gen.n_tokens, gen.meta["finish_reason"]) == ("7 4", 3, "length")
    with pytest.raises(EndpointError, match="content is list"):
        parse_completion(b'{"choices": [{"message": {"content": [1, 2]}}]}')
    with pytest.raises(EndpointError):
        parse_completion(b"\xff\xfe")


def test_scoring_is_refused():
    m = OpenAIChatModel("judge-model", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(Exception, match="only generates text"):
        m.loglik(["a"], ["b"])
