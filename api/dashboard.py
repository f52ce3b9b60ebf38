"""The operator dashboard: static pages at ``/`` and two read-only JSON routes they need.

- ``GET /`` and ``GET /dashboard/{file}``: the page and its assets (plain JS, CSS, the
  vendored uPlot chart library with its licence) from ``api/dashboard/``. Public: they carry no
  data. The page asks for the service key or a token once, keeps it in the browser's
  ``sessionStorage`` and sends it as the header the JSON routes expect (never in a URL).
- ``GET /v1/ml/dashboard/streams`` (``ml:models``): every stream consumer's stored position
  per partition, when it last moved, the broker's end offset and the lag between them, and
  the partitions a worker refused. The page turns two answers into events/s.
- ``GET /v1/ml/dashboard/forecasts`` (``ml:models``): the forecasts the stream stored for one
  series of a domain (``DEFAULT_DOMAIN`` when omitted): the online model's, with their
  fallback level.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import ML_MODELS, Principal, require
from api.common import (
    AUTH_ERRORS,
    DOMAIN_EXAMPLES,
    NOT_FOUND,
    domain_or_default,
    settings,
    store,
)
from api.limits import StrictJSONRoute
from millrace.checkpoints import end_offsets

__all__ = ["router", "STATIC_DIR"]

#: the page, its script and style, and the vendored chart library
STATIC_DIR = Path(__file__).with_name("dashboard")
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
          ".LICENSE": "text/plain"}  # fmt: skip
#: served files by name: only what the folder holds (no path is ever joined from a request)
_FILES = {
    p.relative_to(STATIC_DIR).as_posix(): p
    for p in STATIC_DIR.rglob("*")
    if p.is_file() and p.suffix in _TYPES
}
#: how long one answer of the broker's end offsets is reused (the page polls every few seconds)
_END_OFFSETS_CACHE_SECONDS = 2.0

router = APIRouter(route_class=StrictJSONRoute)


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(_FILES["index.html"], media_type="text/html",
                        headers={"Cache-Control": "no-cache"})  # fmt: skip


@router.get("/dashboard/{name:path}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    path = _FILES.get(name)
    if path is None:
        raise HTTPException(404, detail=f"No dashboard file {name!r}")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


class PartitionOut(BaseModel):
    consumer: str = Field(examples=["millrace-streams"])
    topic: str = Field(examples=["sales.transactions"])
    partition: int = Field(examples=[0])
    offset: int = Field(description="Last offset included in the stored state", examples=[1234])
    end_offset: int | None = Field(description="The broker's end offset (None: not known)")
    lag: int | None = Field(description="Records on the broker not yet in the stored state")
    updated_at: datetime = Field(description="When the stored position last moved")


class FaultOut(BaseModel):
    consumer: str
    topic: str
    partition: int
    reason: str
    detected_at: datetime


class StreamsReport(BaseModel):
    checked_at: datetime
    partitions: list[PartitionOut]
    faults: list[FaultOut]
    broker: str = Field(description='"ok", or why the end offsets are not known', examples=["ok"])


def _end_offsets(request: Request, topics: list[str]) -> tuple[dict[tuple[str, int], int], str]:
    """The broker's end offsets of ``topics`` (cached briefly), and "ok" or the error."""
    state = request.app.state
    cached = getattr(state, "dashboard_end_offsets", None)
    now = time.monotonic()
    if cached and now - cached[0] < _END_OFFSETS_CACHE_SECONDS and cached[1] == topics:
        return cached[2], cached[3]
    ends: dict[tuple[str, int], int] = {}
    status = "ok"
    for topic in topics:
        try:
            for partition, end in end_offsets(settings(request), topic, timeout=2.0).items():
                ends[(topic, partition)] = end
        except Exception as exc:  # noqa: BLE001 - the broker's state is shown, not raised
            status = f"{topic}: {type(exc).__name__}: {exc}"
    state.dashboard_end_offsets = (now, topics, ends, status)
    return ends, status


def _streams(request: Request) -> StreamsReport:
    rows = store(request).stream.progress()
    topics = sorted({r.topic for r in rows})
    ends, broker = _end_offsets(request, topics) if topics else ({}, "ok")
    partitions = []
    for r in rows:
        end = ends.get((r.topic, r.partition))
        # the stored offset is the last record included: end - 1 - offset records are left
        lag = max(end - 1 - r.offset, 0) if end is not None else None
        partitions.append(PartitionOut(consumer=r.consumer, topic=r.topic, partition=r.partition,
                                       offset=r.offset, end_offset=end, lag=lag,
                                       updated_at=r.updated_at))  # fmt: skip
    faults = [
        FaultOut(
            consumer=f.consumer,
            topic=f.topic,
            partition=f.partition,
            reason=f.reason,
            detected_at=f.detected_at,
        )  # fmt: skip
        for f in store(request).stream.faults()
    ]
    return StreamsReport(checked_at=datetime.now(UTC), partitions=partitions,
                         faults=faults, broker=broker)  # fmt: skip


@router.get(
    "/v1/ml/dashboard/streams",
    response_model=StreamsReport,
    tags=["monitoring"],
    summary="Stream consumers' positions per partition, the broker's end offsets and the lag",
    responses=AUTH_ERRORS,
)
async def streams(
    request: Request,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> StreamsReport:
    return await run_in_threadpool(_streams, request)


class ForecastOut(BaseModel):
    model_version: str = Field(examples=["online"])
    month: datetime = Field(description="Start of the forecast period")
    value: float
    lower: float | None
    upper: float | None
    fallback_level: str | None = Field(examples=["brand_model"])
    created_at: datetime | None


@router.get(
    "/v1/ml/dashboard/forecasts",
    response_model=list[ForecastOut],
    tags=["monitoring"],
    summary="The forecasts the stream stored for one series (online model), oldest first",
    responses={**AUTH_ERRORS, **NOT_FOUND("Unknown domain: weather")},
)
async def forecasts(
    request: Request,
    series: Annotated[
        str, Query(min_length=1, max_length=300, examples=["CAR|TOYOTA|COROLLA|XEI"])
    ],  # fmt: skip
    domain: Annotated[str | None, Query(max_length=60, examples=DOMAIN_EXAMPLES[:1])] = None,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> list[ForecastOut]:
    domain = domain_or_default(request, domain)
    rows = await run_in_threadpool(store(request).series.forecasts, domain, series)
    return [
        ForecastOut(
            model_version=r.model_version,
            month=r.period_start,
            value=r.value,
            lower=r.lower,
            upper=r.upper,
            fallback_level=r.fallback_level,
            created_at=r.created_at,
        )  # fmt: skip
        for r in rows
    ]
