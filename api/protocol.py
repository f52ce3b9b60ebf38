"""uvicorn's httptools protocol with bounded request heads and URLs.

httptools (llhttp) has no limit on the request line or the headers, and it accumulates a header
value by concatenating the pieces it receives: a 50 MB header cost seconds of the event loop
(quadratic copying) before the application was even called. uvicorn bounds heads only for its
pure-Python h11 protocol (``h11_max_incomplete_event_size``), which is several times slower per
request. This subclass keeps httptools and counts the bytes of the head being received:

- a head (request line + headers) over ``max_head_bytes`` is refused with 431 and the
  connection closed, at most one read (64 KiB) after the limit, so the loop never copies more;
- a URL (path + query) over ``max_url_bytes`` is answered 414 (as soon as it is known to be
  too long, even before the headers end).

Both answers are ``{"detail": ...}`` JSON with ``Connection: close``; the application never
sees the request. Build the class with :func:`bounded_httptools` and give it to uvicorn as
``http=``.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

__all__ = ["BoundedHttpToolsProtocol", "bounded_httptools"]

log = logging.getLogger(__name__)

_IDLE, _HEAD, _BODY = 0, 1, 2
#: per header line: ": " and CRLF
_LINE_OVERHEAD = 4


def _answer(status: int, detail: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = orjson.dumps({"detail": detail})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    return headers, body


def _refusal_app(status: int, detail: str) -> Any:
    """An ASGI app answering ``status`` to whatever it gets (used once the head is parsed)."""
    headers, body = _answer(status, detail)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` refusing over-long heads (431) and URLs (414)."""

    max_head_bytes = 65536
    max_url_bytes = 8192

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state = _IDLE
        self._messages = 0
        self._head_bytes = 0

    # --- parser callbacks: where are we in the message ---------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._state = _HEAD
        self._messages += 1

    def on_headers_complete(self) -> None:
        self._state = _BODY
        self._head_bytes = 0
        refusal = self._check(self._visible_head())
        if refusal is None:
            super().on_headers_complete()
            return
        app, self.app = self.app, _refusal_app(*refusal)
        try:  # uvicorn starts the cycle with self.app: the refusal answers, nothing else runs
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        self._state = _IDLE
        super().on_message_complete()

    # --- data ------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        state, messages = self._state, self._messages
        super().data_received(data)
        if self._state != _HEAD or self.transport.is_closing():
            return
        if state == _HEAD and messages == self._messages:
            self._head_bytes += len(data)  # the whole read belongs to the head still open
        else:  # the head began in this read: what the parser handed over so far
            self._head_bytes = self._visible_head()
        refusal = self._check(self._head_bytes)
        if refusal is not None:
            self._refuse_now(*refusal)

    def _visible_head(self) -> int:
        return len(self.url) + sum(
            len(name) + len(value) + _LINE_OVERHEAD for name, value in self.headers
        )

    def _check(self, head_bytes: int) -> tuple[int, str] | None:
        if len(self.url) > self.max_url_bytes:
            return 414, f"Request URL longer than {self.max_url_bytes} bytes"
        if head_bytes > self.max_head_bytes:
            return 431, f"Request head (request line and headers) over {self.max_head_bytes} bytes"
        return None

    def _refuse_now(self, status: int, detail: str) -> None:
        """Answer and close while the head is still arriving (no cycle for it exists)."""
        client = self.client[0] if self.client else "?"
        log.warning("refused a request from %s: %d %s", client, status, detail)
        if self.cycle is None or self.cycle.response_complete:
            headers, body = _answer(status, detail)
            lines = [STATUS_LINE[status]]
            lines += [name + b": " + value + b"\r\n" for name, value in headers]
            self.transport.write(b"".join([*lines, b"\r\n", body]))
        self.transport.close()


def bounded_httptools(max_head_bytes: int, max_url_bytes: int) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for uvicorn's ``http=`` with these limits."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"max_head_bytes": max_head_bytes, "max_url_bytes": max_url_bytes},
    )
