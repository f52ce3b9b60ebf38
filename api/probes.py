"""Kubernetes-style probes of the API process (public, like ``/health``).

- ``GET /livez``: 200 whenever the process answers (its event loop runs).
- ``GET /readyz``: 200 when the store answers and every served domain's prediction snapshot
  has been loaded (:meth:`api.live.LiveModels.loaded`: at least one check of its live
  version finished, with or without a version); 503 with a ``detail`` naming what is missing.

``/health`` keeps its own shape and meaning; these two answer one question each.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

__all__ = ["router"]

router = APIRouter(tags=["health"])


def _example(body: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"example": body}}}


@router.get(
    "/livez",
    summary="Liveness: the process answers",
    responses={200: _example({"status": "live"})},
)
async def livez() -> dict[str, str]:
    return {"status": "live"}


@router.get(
    "/readyz",
    summary="Readiness: store reachable and prediction snapshots loaded",
    responses={
        200: _example({"status": "ready", "checks": {"database": "ok", "snapshots": "loaded"}}),
        503: {"description": "Not ready; `detail` says why"},
    },
)
def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    checks: dict[str, Any] = {}
    problems = []
    try:
        state.store.ping()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, never raised
        checks["database"] = f"error: {type(exc).__name__}"
        problems.append("the store does not answer")
    missing = state.live.missing()
    checks["snapshots"] = "loaded" if not missing else f"not loaded: {', '.join(missing)}"
    if missing:
        problems.append(f"prediction snapshot not loaded for {', '.join(missing)}")
    if problems:
        body = {"status": "not ready", "detail": "; ".join(problems), "checks": checks}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})
