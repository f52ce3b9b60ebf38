"""Shared response pieces: the ``{"detail": ...}`` error body, documented error responses, the
metrics shape of the dealership clients and small accessors of the app's state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import HTTPException, Request, Response
from pydantic import BaseModel, Field

from api.live import LiveModels
from millrace.settings import Settings
from ml.domains import all_domains
from ml.registry.store import Store

__all__ = [
    "AUTH_ERRORS",
    "DOMAIN_EXAMPLES",
    "Detail",
    "Metrics",
    "NOT_FOUND",
    "NO_MODELS",
    "domain_or_default",
    "iso_z",
    "json_response",
    "live",
    "metrics_of",
    "settings",
    "store",
]

#: The registered domains' names, as documentation examples.
DOMAIN_EXAMPLES = [domain.name for domain in all_domains()]

#: What the dealership clients expect when no model exists (200 on models/latest).
NO_MODELS = "No hay modelos disponibles"


class Detail(BaseModel):
    """Every error body."""

    detail: str = Field(examples=["Not authenticated"])


class Metrics(BaseModel):
    """Test-window scores of a version (time-ordered 80/20 split)."""

    mae: float | None = Field(examples=[35.29])
    rmse: float | None = Field(examples=[61.8])
    mape: float | None = Field(None, description="Fraction (0.12 = 12%)", examples=[0.21])
    r2: float | None = Field(examples=[0.93])


def iso_z(value: datetime) -> str:
    """ISO 8601 UTC to the second with ``Z`` (the dealership clients' format)."""
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def json_response(body: Any, status_code: int = 200) -> Response:
    """``body`` (plain JSON types, numpy scalars allowed) serialised once by orjson, with no
    second validation (FastAPI's ``ORJSONResponse`` is deprecated and costs a wrapper call)."""
    data = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    return Response(data, status_code=status_code, media_type="application/json")


def metrics_of(values: dict[str, Any]) -> Metrics:
    def num(name: str) -> float | None:
        value = values.get(name)
        return float(value) if isinstance(value, int | float) else None

    return Metrics(mae=num("mae"), rmse=num("rmse"), mape=num("mape"), r2=num("r2"))


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": Detail,
        "description": "No or invalid credentials",
        "content": {"application/json": {"example": {"detail": "Not authenticated"}}},
    },
    403: {
        "model": Detail,
        "description": "The caller lacks the permission",
        "content": {
            "application/json": {
                "example": {"detail": "User does not have required permission: ml:models"}
            }
        },
    },
    429: {
        "model": Detail,
        "description": "Too many failed authentications from this address (see `Retry-After`)",
        "content": {
            "application/json": {
                "example": {
                    "detail": "Too many failed authentications from this address; retry in 42 s"
                }
            }
        },
    },
}


def NOT_FOUND(example: str) -> dict[int | str, dict[str, Any]]:  # noqa: N802 - reads as a constant
    return {
        404: {
            "model": Detail,
            "description": "Not found",
            "content": {"application/json": {"example": {"detail": example}}},
        }
    }


def store(request: Request) -> Store:
    return request.app.state.store


def settings(request: Request) -> Settings:
    return request.app.state.settings


def live(request: Request) -> LiveModels:
    return request.app.state.live


def domain_or_default(request: Request, domain: str | None = None) -> str:
    """``domain``, or the ``DEFAULT_DOMAIN`` setting when it is omitted; a domain that is not
    registered (asked, or configured as the default) is answered 404 (``Unknown domain: ...``)."""
    name = domain or settings(request).default_domain
    if name not in {d.name for d in all_domains()}:
        raise HTTPException(404, detail=f"Unknown domain: {name}")
    return name
