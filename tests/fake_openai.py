"""A fake OpenAI-compatible endpoint for tests: POST /v1/chat/completions on 127.0.0.1, in a thread.

Each request is recorded (path, headers, JSON body). What it answers is decided by `server.reply`, a function of the
request body returning (status, body bytes or dict, extra headers); by default a completion whose content is
`server.content(body)`. `server.script` (a list) answers the next requests first, one entry each, in order.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(content, finish_reason: str = "stop", tokens: int = 7) -> dict:
    return {"id": "chatcmpl-test", "object": "chat.completion", "model": "judge-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 50, "completion_tokens": tokens, "total_tokens": 50 + tokens}}


class FakeEndpoint:
    def __init__(self):
        self.requests: list[dict] = []
        self.script: list = []  # (status, body, headers) or a float: sleep that long, then answer normally
        self.content = lambda body: "Scores: 7 4\nAnswer 1 is more detailed."
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with endpoint.lock:
                    endpoint.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    step = endpoint.script.pop(0) if endpoint.script else None
                if isinstance(step, (int, float)):
                    time.sleep(step)
                    step = None
                if step is None:
                    if self.path != "/v1/chat/completions":
                        step = (404, {"error": {"message": f"no route {self.path}"}}, {})
                    else:
                        step = (200, completion(endpoint.content(body)), {})
                status, payload, headers = step
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
