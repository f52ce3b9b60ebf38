"""Monitoring: ``GET /v1/ml/drift`` (current drift statistics and recent drift events),
``GET /v1/ml/monitoring`` (prediction latency), ``GET /v1/ml/predictions`` (the last N
predictions with inputs, output, version, latency) and ``GET /metrics`` (Prometheus).

Latency figures and the prediction list come from the prediction log (``prediction_log``,
written by :mod:`api.prediction_log`), so they survive a restart and cover every API replica;
each route first flushes this process's buffered predictions.

Current drift statistics are the rows the stream workers write with every batch that changes
them (``stream_statistics``, in the batch's transaction), so they are exactly as fresh as the last
committed batch; the API reads plain rows and needs none of the streams' classes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import ML_MODELS, Principal, require
from api.common import AUTH_ERRORS, DOMAIN_EXAMPLES, NOT_FOUND, domain_or_default, store
from api.limits import StrictJSONRoute
from api.telemetry import LatencySummary, latency_summary
from ml.domains import get_domain
from ml.network.configs import configs_for_field
from ml.registry.entities import StreamStatisticRow, plain

__all__ = ["router", "metrics_router"]

router = APIRouter(route_class=StrictJSONRoute, prefix="/v1/ml", tags=["monitoring"])
metrics_router = APIRouter(route_class=StrictJSONRoute, tags=["monitoring"])


#: a part of a network drift scope ``<cell>|<field>``: printable, no ``|``
_PART = r"^[^|\x00-\x1f\x7f]+$"


class DriftEventOut(BaseModel):
    event_id: str
    scope: str = Field(examples=["CAR|TOYOTA|COROLLA|XEI"])
    detector: str = Field(examples=["adwin"])
    statistic: str = Field(examples=["abs_error"])
    value: float = Field(examples=[4.2])
    threshold: float | None
    model_version: str | None
    evidence: dict[str, Any]
    occurred_at: datetime


class DriftReport(BaseModel):
    domain: str = Field(examples=DOMAIN_EXAMPLES)
    scope: str | None = Field(examples=[None])
    partitions: int = Field(
        description="Stream partitions whose statistics were read", examples=[4]
    )
    statistics: dict[str, Any] = Field(
        description="By scope: rolling input statistics against the reference window, the "
        "error detector and prediction latency; `global`: the degradation window per partition. "
        "Network: by field, the running scores per online config and `drift` (cells, active "
        "and detecting cells, their share, threshold, detections) by partition"
    )
    events: list[DriftEventOut] = Field(description="Recent drift events, newest first")


def _merged(
    rows: list[StreamStatisticRow], per_partition: frozenset[str] = frozenset()
) -> tuple[int, dict[str, Any]]:
    """The partitions read and their statistics by scope (``global``: by partition; a name in
    ``per_partition``, e.g. network ``drift``: its value by partition)."""
    merged: dict[str, Any] = {}
    partitions = set()
    for row in rows:
        partitions.add(row.partition)
        if row.scope == "global":
            scope = merged.setdefault("global", {}).setdefault(str(row.partition), {})
        else:
            scope = merged.setdefault(row.scope, {})
        if row.name in per_partition:
            scope.setdefault(row.name, {})[str(row.partition)] = row.value
        else:
            scope[row.name] = row.value
    return len(partitions), merged


@router.get(
    "/drift",
    response_model=DriftReport,
    summary="Current drift statistics and recent drift events",
    responses={**AUTH_ERRORS, **NOT_FOUND("Unknown domain: weather")},
)
def drift(
    request: Request,
    domain: Annotated[
        str | None,
        Query(max_length=60, examples=DOMAIN_EXAMPLES, description="default: DEFAULT_DOMAIN"),
    ] = None,
    scope: Annotated[str | None, Query(max_length=120)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    field: Annotated[
        str | None,
        Query(
            max_length=60,
            pattern=_PART,
            description="network only: events and statistics of this output field",
            examples=["rsrp"],
        ),
    ] = None,
    cell: Annotated[
        str | None,
        Query(
            max_length=120,
            pattern=_PART,
            description="network only: events of this cell (`*`: the field-level ones)",
            examples=["SIM-003"],
        ),
    ] = None,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> DriftReport:
    domain = domain_or_default(request, domain)
    if (field is not None or cell is not None) and domain != "network":
        raise HTTPException(400, detail="field and cell filter network drift only (domain=network)")
    settings = request.app.state.settings
    topic = get_domain(domain).topic(settings)
    partitions, stats = _merged(
        store(request).stream.statistics(settings.streams_app_id, topic),
        frozenset({"drift"}) if domain == "network" else frozenset(),
    )
    if field is not None and not configs_for_field(store(request).network.live_configs(), field):
        raise HTTPException(404, detail=f"Unknown field: {field} (no model forecasts it)")
    if scope is not None:
        stats = {k: v for k, v in stats.items() if k == scope}
    if field is not None:
        stats = {k: v for k, v in stats.items() if k == field}
    events = store(request).monitoring.drift_events(
        domain=domain,
        scope=scope,
        limit=limit,
        scope_prefix=None if cell is None else f"{cell}|",
        scope_suffix=None if field is None else f"|{field}",
    )
    return DriftReport(
        domain=domain,
        scope=scope,
        partitions=partitions,
        statistics=stats,  # stored JSON-safe
        events=[
            DriftEventOut(
                event_id=e.event_id,
                scope=e.scope,
                detector=e.detector,
                statistic=e.statistic,
                value=e.value,
                threshold=e.threshold,
                model_version=e.model_version,
                evidence=plain(e.evidence),
                occurred_at=e.occurred_at,
            )
            for e in events
        ],
    )


class Latency(BaseModel):
    count: int = Field(examples=[1000])
    avg_ms: float | None = Field(examples=[1.2])
    p95_ms: float | None = Field(examples=[2.1])
    p99_ms: float | None = Field(examples=[3.4])
    rate_per_s: float | None = Field(
        description="Predictions per second over the window", examples=[480.0]
    )


class MonitoringReport(BaseModel):
    window: int = Field(description="Predictions asked for (the last N)", examples=[1000])
    overall: Latency
    by_model_version: dict[str, Latency]


def _latency(s: LatencySummary) -> Latency:
    return Latency(
        count=s.count, avg_ms=s.avg_ms, p95_ms=s.p95_ms, p99_ms=s.p99_ms, rate_per_s=s.rate_per_s
    )


Domain = Annotated[
    str | None,
    Query(max_length=60, examples=DOMAIN_EXAMPLES, description="Only this domain's predictions"),
]
LatencyDomain = Annotated[
    str | None,
    Query(
        max_length=60,
        examples=DOMAIN_EXAMPLES,
        description="The domain's predictions (default: `DEFAULT_DOMAIN`; versions are named "
        "per domain)",
    ),
]


@router.get(
    "/monitoring",
    response_model=MonitoringReport,
    summary="Prediction latency over a domain's last N predictions (from the prediction log)",
    responses=AUTH_ERRORS,
)
async def monitoring(
    request: Request,
    last: Annotated[int, Query(ge=1, le=1_000_000, description="N")] = 1000,
    domain: LatencyDomain = None,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> MonitoringReport:
    domain = domain_or_default(request, domain)
    await request.app.state.predictions.flush()  # this process's buffered ones count too
    items = await run_in_threadpool(store(request).predictions.latencies, last, domain)
    overall, by_version = latency_summary(items)
    return MonitoringReport(
        window=last,
        overall=_latency(overall),
        by_model_version={v: _latency(s) for v, s in by_version.items()},
    )


class PredictionOut(BaseModel):
    id: int = Field(description="Log position (insertion order)", examples=[4211])
    domain: str = Field(examples=DOMAIN_EXAMPLES[:1])
    endpoint: str = Field(examples=["predict"])
    model_version: str = Field(examples=["v1.0.0-20261122"])
    inputs: dict[str, Any] = Field(
        examples=[{"vehicle_type": "CAR", "brand": "TOYOTA", "model": "COROLLA", "line": "XEI",
                   "horizon_months": 6, "confidence": 0.95}]
    )  # fmt: skip
    output: dict[str, Any] = Field(
        examples=[{"segment": "CAR|TOYOTA|COROLLA|XEI", "fallback_level": None,
                   "predictions": [{"month": "2026-12-01", "demand": 12.4, "lower_ci": 7.9,
                                    "upper_ci": 19.1}]}]
    )  # fmt: skip
    latency_ms: float = Field(examples=[1.3])
    served_at: datetime


class PredictionPage(BaseModel):
    items: list[PredictionOut] = Field(description="Newest first")
    total: int = Field(description="Predictions in the log (after retention)", examples=[1000])


@router.get(
    "/predictions",
    response_model=PredictionPage,
    summary="The last N predictions served, with inputs, output, version and latency",
    responses=AUTH_ERRORS,
)
async def predictions(
    request: Request,
    last: Annotated[int, Query(ge=1, le=1000, description="N")] = 100,
    domain: Domain = None,
    model_version: Annotated[str | None, Query(max_length=64)] = None,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> PredictionPage:
    await request.app.state.predictions.flush()
    log = store(request).predictions
    rows = await run_in_threadpool(log.recent, last, domain, model_version)
    total = await run_in_threadpool(log.count, domain)
    return PredictionPage(
        items=[
            PredictionOut(
                id=r.id or 0,
                domain=r.domain,
                endpoint=r.endpoint,
                model_version=r.model_version,
                inputs=r.inputs,
                output=r.output,
                latency_ms=r.latency_ms,
                served_at=r.served_at,
            )
            for r in rows
        ],
        total=total,
    )


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"example": "millrace_predictions_total 3"}}}
    },
)
def metrics(request: Request) -> Response:
    body = generate_latest(request.app.state.telemetry.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
