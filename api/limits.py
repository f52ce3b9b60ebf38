"""Request limits enforced before any work: body size, strict JSON, client errors as 4xx.

- :class:`BodyLimitMiddleware` (pure ASGI, outside every route): a ``Content-Length`` above
  ``API_MAX_BODY_BYTES`` is answered 413 at once, before authentication and before one byte of
  the body is read; a body without a length (chunked) is counted while the route reads it and
  refused with 413 at the limit. A response sent before the body was read to its end closes the
  connection (``Connection: close``), so the server stops receiving it instead of draining it.
- :class:`StrictJSONRoute`: JSON bodies are parsed with orjson, which refuses ``NaN``,
  ``Infinity`` and numbers that overflow a double (``1e309``): the caller gets 422 with a
  ``detail``, never a non-finite float inside the API.
- :func:`client_event`: an event built from values the caller gave; an invalid value is the
  caller's 422, not a 500.
- :func:`install_error_handlers`: validation errors are always serialisable (non-finite floats
  become ``null``), so no client error turns into a 500.

Request heads (request line + headers) and URLs are bounded by the HTTP protocol itself, before
the application sees the request: :mod:`api.protocol`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.common import json_response

__all__ = [
    "BodyLimitMiddleware",
    "StrictJSONRequest",
    "StrictJSONRoute",
    "client_event",
    "install_error_handlers",
    "validation_detail",
]

E = TypeVar("E", bound=BaseModel)


def _json_response(status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    body = orjson.dumps({"detail": detail})
    return [
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        },
        {"type": "http.response.body", "body": body},
    ]


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: declared ones before anything runs, chunked ones at
    the limit while they are read. Never buffers a body itself."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.detail = f"Request body larger than {max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
            elif name == b"transfer-encoding":
                chunked = True
        if length is not None and length > self.max_bytes:
            for message in _json_response(413, self.detail, [(b"connection", b"close")]):
                await send(message)
            return
        body_done = not chunked and not length
        seen = 0

        async def limited_receive() -> Message:
            nonlocal body_done, seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if not message.get("more_body", False):
                    body_done = True
                if seen > self.max_bytes:
                    raise HTTPException(413, detail=self.detail)
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not body_done:
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, limited_receive, closing_send)


class StrictJSONRequest(Request):
    """A request whose JSON body is parsed by orjson: no NaN / Infinity / overflowing numbers,
    no lone surrogates, nesting at most 1024 deep (errors are ``json.JSONDecodeError``s, which
    FastAPI answers with 422)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """Route class of every API router: hands the endpoint a :class:`StrictJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler


def validation_detail(exc: ValidationError) -> str:
    """``loc: message`` of each error, without the offending input."""
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'value'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    )


def client_event(model: type[E], **fields: Any) -> E:
    """``model(**fields)`` where the fields come from the caller: invalid means 422."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise HTTPException(422, detail=validation_detail(exc)) from None


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors())  # non-finite floats stay floats; orjson -> null
    return json_response({"detail": errors}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Client errors always answer their 4xx with a serialisable ``detail``."""
    app.add_exception_handler(RequestValidationError, _request_validation)
