"""The little HTTP the receiver speaks over ASGI: read a bounded body, answer JSON or bytes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

Send = Callable[[dict], Awaitable[None]]
Receive = Callable[[], Awaitable[dict]]


class BodyTooLarge(Exception):
    """The body exceeds the configured limit."""


class ClientGone(Exception):
    """The client disconnected before sending the whole body."""


class NotStored(Exception):
    """The row was not committed (database down or busy); the message says so, for the 503."""


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def json_answer(send: Send, status: int, payload: dict, headers: list[tuple[bytes, bytes]] | None = None,
                close: bool = False) -> int:
    body = json.dumps(payload, separators=(",", ":")).encode() + b"\n"
    return await respond(send, status, body, b"application/json", headers, close)


async def respond(send: Send, status: int, body: bytes, content_type: bytes,
                   headers: list[tuple[bytes, bytes]] | None = None, close: bool = False) -> int:
    all_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if close:
        all_headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": all_headers + (headers or [])})
    await send({"type": "http.response.body", "body": body})
    return status
