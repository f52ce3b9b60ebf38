"""Health endpoints (public): ``GET /health`` and ``GET /actuator/health``, in the shape the
dealership clients expect: ``status``, ``service`` (the ``SERVICE_NAME`` setting, default
``sgivu-ml``), ``version``, ``model_available``, plus ``checks``.

- ``healthy`` (200): the store and the broker answer and no stream worker refused partitions.
- ``degraded`` (200): the API still answers from the store, but something around it is wrong
  and named in ``checks``: the broker is unreachable (commands and retrains cannot be
  published, new versions are only noticed by the periodic store check), or a stream worker
  refused partitions the broker no longer backs (``checks.streams``, with the command that
  reconciles them).
- ``down`` (503): the store cannot be read; the API cannot answer anything then.
"""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

import millrace
from millrace.kafka import broker_reachable
from ml.registry.store import Store

__all__ = ["router", "HealthResponse"]

router = APIRouter(tags=["health"])

_BROKER_CACHE_SECONDS = 2.0


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "down"] = Field(examples=["healthy"])
    service: str = Field(examples=["sgivu-ml"])
    version: str = Field(examples=[millrace.__version__])
    model_available: bool = Field(examples=[True])
    checks: dict[str, str] = Field(examples=[{"database": "ok", "broker": "ok"}])


def _broker_check(request: Request) -> str:
    state = request.app.state
    cached = getattr(state, "broker_check", None)
    now = time.monotonic()
    if cached and now - cached[0] < _BROKER_CACHE_SECONDS:
        return cached[1]
    ok, why = broker_reachable(state.settings.bootstrap_servers, timeout=1.0)
    result = "ok" if ok else f"unreachable: {why}"
    state.broker_check = (now, result)
    return result


def _streams_check(store: Store) -> str:
    """ "ok", or the partitions a stream worker refused (the broker lost what the store
    includes) with the command that reconciles them."""
    faults = store.stream.faults()
    if not faults:
        return "ok"
    named = "; ".join(f.reason for f in faults[:8])
    more = f" (+{len(faults) - 8} more)" if len(faults) > 8 else ""
    topics = " ".join(sorted({f.topic for f in faults}))
    return (
        f"refused {len(faults)} partition(s): {named}{more}. Reconcile with: "
        f"millrace checkpoints reset --topic <{topics}> --to earliest|latest"
    )


@router.get("/health", response_model=HealthResponse, summary="Service health")
@router.get("/actuator/health", response_model=HealthResponse, include_in_schema=False)
def health(request: Request, response: Response) -> HealthResponse:
    store = request.app.state.store
    checks: dict[str, str] = {}
    model_available = False
    try:
        store.ping()
        checks["database"] = "ok"
        model_available = bool(store.models.list_versions(status="active", limit=1))
        checks["streams"] = _streams_check(store)
    except Exception as exc:  # noqa: BLE001 - reported, never raised
        checks["database"] = f"error: {type(exc).__name__}"
    checks["broker"] = _broker_check(request)
    if checks["database"] != "ok":
        status = "down"
        response.status_code = 503
    elif checks["broker"] != "ok" or checks["streams"] != "ok":
        status = "degraded"
    else:
        status = "healthy"
    return HealthResponse(
        status=status,
        service=request.app.state.settings.service_name,
        version=millrace.__version__,
        model_available=model_available,
        checks=checks,
    )
