"""Calls an ASGI app in-process, no socket: enough HTTP for the receiver's own tests."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def call(app, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
         chunks: list[bytes] | None = None) -> Response:
    """Sends one request (the body in `chunks` if given) and returns the response."""
    parts = chunks if chunks is not None else [body]
    scope = {
        "type": "http", "method": method, "path": path, "query_string": b"", "http_version": "1.1",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()],
        "client": ("203.0.113.7", 40000), "server": ("127.0.0.1", 9080), "scheme": "http",
    }
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    return Response(
        start["status"],
        {k.decode(): v.decode() for k, v in start["headers"]},
        b"".join(m.get("body", b"") for m in sent[1:]),
    )
