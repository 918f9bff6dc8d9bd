"""A local HTTP server that answers like Slack's incoming webhook, for tests (no patching).

Paths choose the behaviour, as Slack's answers are documented (/work/shared/SLACK.md):
  /services/ok                  200 ok
  /services/invalid_payload     400 invalid_payload
  /services/no_service          404 no_service
  /services/channel_is_archived 410 channel_is_archived
  /services/action_prohibited   403 action_prohibited
  /services/rate_limited        429 with Retry-After: 30
  /services/rollup_error        500 rollup_error
  /services/slow                200 ok after `slow_seconds` (past the client's timeout): Slack
                                posted the message, the client never learns it
  /services/hangup              reads the request, then closes the connection without answering
  /services/scripted            answers from `script` (a list of (status, body, headers)) in order,
                                then 200 ok once the script is used up
Every request's JSON body is recorded in `received[path]`, whatever the answer.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWERS = {
    "/services/ok": (200, "ok", {}),
    "/services/invalid_payload": (400, "invalid_payload", {}),
    "/services/no_service": (404, "no_service", {}),
    "/services/channel_is_archived": (410, "channel_is_archived", {}),
    "/services/action_prohibited": (403, "action_prohibited", {}),
    "/services/rate_limited": (429, "rate_limited", {"Retry-After": "30"}),
    "/services/rollup_error": (500, "rollup_error", {}),
}


class FakeSlack:
    def __init__(self, slow_seconds: float = 1.5):
        self.received: dict[str, list[dict]] = {}
        self.script: list[tuple[int, str, dict]] = []
        self.slow_seconds = slow_seconds
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/services/{name}"

    def bodies(self, name: str) -> list[dict]:
        with self.lock:
            return list(self.received.get(f"/services/{name}", []))

    def __enter__(self) -> FakeSlack:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, path: str) -> tuple[int, str, dict]:
        if path == "/services/scripted":
            with self.lock:
                return self.script.pop(0) if self.script else (200, "ok", {})
        if path == "/services/slow":
            time.sleep(self.slow_seconds)
            return 200, "ok", {}
        return ANSWERS.get(path, (404, "no_service", {}))

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"unparsed": raw.decode("utf-8", "replace")}
                with fake.lock:
                    fake.received.setdefault(self.path, []).append(body)
                if self.path == "/services/hangup":
                    self.close_connection = True
                    return
                status, text, headers = fake._answer(self.path)
                data = text.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        return Handler
