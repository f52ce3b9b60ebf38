"""Predictions from the live version of the ``DEFAULT_DOMAIN``: ``POST /v1/ml/predict``,
``/predict-with-history`` and ``GET /v1/ml/segments``.

A prediction reads one snapshot (``api.live``) and answers from its precomputed forecast book,
so it is a lookup plus an interval computation, and never mixes two versions.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field, field_validator

from api.auth import ML_MODELS, ML_PREDICT, Principal, require
from api.common import (
    AUTH_ERRORS,
    NO_MODELS,
    NOT_FOUND,
    Metrics,
    domain_or_default,
    json_response,
    live,
    metrics_of,
    store,
)
from api.limits import StrictJSONRoute
from api.live import MAX_HORIZON, LiveModel
from ml.demand.segments import MARKET_SEGMENT_PARTS
from schemas.events import VehicleType

__all__ = ["router", "PredictRequest", "PredictResponse"]

router = APIRouter(route_class=StrictJSONRoute, prefix="/v1/ml", tags=["predictions"])

Text = Annotated[str, Field(min_length=1, max_length=120)]


class PredictRequest(BaseModel):
    """A segment and how far and how sure to forecast."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "vehicle_type": "CAR",
                    "brand": "TOYOTA",
                    "model": "COROLLA",
                    "line": "XEI",
                    "horizon_months": 6,
                    "confidence": 0.95,
                }
            ]
        }
    }

    vehicle_type: VehicleType
    brand: Text
    model: Text
    line: Annotated[str, Field(max_length=120)] = ""
    market: Annotated[str | None, Field(max_length=40)] = Field(
        None,
        description="The segment's market (as its events name it), if any; falls back within "
        "the market",
        examples=[None],
    )
    horizon_months: int = Field(6, ge=1, le=MAX_HORIZON)
    confidence: float = Field(0.95, ge=0.5, le=0.99)

    @field_validator("market")
    @classmethod
    def _market_is_not_a_vehicle_type(cls, market: str | None) -> str | None:
        """As in the event contract: a market named like a vehicle type would meet its keys."""
        if market and market.strip().upper() in set(VehicleType):
            raise ValueError(f"market must not be a vehicle type: {market!r}")
        return market

    def parts(self) -> tuple[str, ...]:
        """The segment key's parts, as :attr:`SaleContractEvent.segment` normalises them."""
        parts = (
            str(self.vehicle_type),
            self.brand.strip().upper(),
            self.model.strip().upper(),
            self.line.strip().upper(),
        )
        market = (self.market or "").strip().upper()
        return (market, *parts) if market else parts


class PredictionPoint(BaseModel):
    month: date = Field(description="First day of the month", examples=["2026-12-01"])
    demand: float = Field(ge=0, examples=[12.4])
    lower_ci: float = Field(ge=0, examples=[7.9])
    upper_ci: float = Field(ge=0, examples=[19.1])


class PredictResponse(BaseModel):
    predictions: list[PredictionPoint]
    model_version: str = Field(examples=["v1.0.0-20261122"])
    segment: str = Field(
        description="The segment that answered (a parent when falling back)",
        examples=["CAR|TOYOTA|COROLLA|XEI"],
    )
    fallback_level: str | None = Field(
        description="brand_model or brand when a parent answered", examples=[None]
    )
    confidence: float = Field(examples=[0.95])
    metrics: Metrics


class HistoryPoint(BaseModel):
    month: date = Field(examples=["2026-10-01"])
    sales_count: int = Field(ge=0, examples=[11])


class PredictWithHistoryResponse(PredictResponse):
    history: list[HistoryPoint] = Field(description="Monthly sales of the answering segment(s)")


_ERRORS = {
    **AUTH_ERRORS,
    **NOT_FOUND("Unknown segment CAR|NOPE|X|: no data for it, its brand_model or brand"),
}


def _serve(request: Request, body: PredictRequest) -> tuple[LiveModel, Any, float]:
    started = time.perf_counter()
    current = live(request).get(domain_or_default(request))
    if current is None or current.book is None:
        raise HTTPException(404, detail=NO_MODELS)
    try:
        prediction = current.book.predict(body.parts(), body.horizon_months, body.confidence)
    except KeyError:  # the book holds neither the segment nor a parent
        key = "|".join(body.parts())
        raise HTTPException(
            404,
            detail=f"Unknown segment {key}: model {current.version.version} has no data for "
            "it, its brand_model or its brand",
        ) from None
    if not prediction.points:
        raise HTTPException(404, detail=f"Model {current.version.version} has no months yet")
    return current, prediction, started


def _response(current: LiveModel, prediction: Any, confidence: float) -> dict:
    """The response body as plain JSON types (serialised by orjson, no second validation:
    every value is built here from the book's already-checked floats)."""
    return {
        "predictions": [
            {
                "month": p.month.isoformat(),
                "demand": p.value,
                "lower_ci": p.lower,
                "upper_ci": p.upper,
            }
            for p in prediction.points
        ],
        "model_version": current.version.version,
        "segment": prediction.segment,
        "fallback_level": prediction.fallback_level,
        "confidence": confidence,
        "metrics": _metrics(current),
    }


#: a version's scores as served, by (domain, scope, version): versions never change
_METRICS: dict[tuple[str, str, str], dict[str, Any]] = {}


def _metrics(current: LiveModel) -> dict[str, Any]:
    row = current.version
    key = (current.domain, row.scope, row.version)
    found = _METRICS.get(key)
    if found is None:
        if len(_METRICS) > 256:
            _METRICS.clear()
        found = _METRICS[key] = metrics_of(row.metrics).model_dump()
    return dict(found)


def _record(
    request: Request,
    endpoint: str,
    current: LiveModel,
    prediction: Any,
    started: float,
    body: PredictRequest,
    out: dict[str, Any],
) -> None:
    """Count the prediction (metrics) and buffer it for the prediction log (no I/O here)."""
    seconds = time.perf_counter() - started
    version = current.version.version
    state = request.app.state
    state.telemetry.prediction(current.domain, version, prediction.fallback_level, seconds)
    output = {
        "segment": out["segment"],
        "fallback_level": out["fallback_level"],
        "predictions": out["predictions"],
    }
    state.predictions.record(current.domain, endpoint, version, body, output, seconds)


@router.post(
    "/predict",
    response_model=PredictResponse,
    summary="Monthly forecast of a segment with confidence intervals",
    responses=_ERRORS,
)
async def predict(
    request: Request,
    body: PredictRequest,
    _: Principal = Depends(require(ML_PREDICT)),  # noqa: B008
) -> PredictResponse:
    current, prediction, started = _serve(request, body)
    content = _response(current, prediction, body.confidence)
    out = json_response(content)
    _record(request, "predict", current, prediction, started, body, content)
    return out  # type: ignore[return-value] - documented by response_model


@router.post(
    "/predict-with-history",
    response_model=PredictWithHistoryResponse,
    summary="As /predict, plus the segment's monthly sales history",
    responses=_ERRORS,
)
async def predict_with_history(
    request: Request,
    body: PredictRequest,
    _: Principal = Depends(require(ML_PREDICT)),  # noqa: B008
) -> PredictWithHistoryResponse:
    current, prediction, started = _serve(request, body)
    book = current.book
    assert book is not None
    if prediction.fallback_level is None:
        history = list(book.history(prediction.segment))
    else:  # the parent's history: its children's monthly sums
        sums: dict[date, int] = {}
        prefix = prediction.segment + "|"
        for key in book.segments:
            if key.startswith(prefix):
                for month, count in book.history(key):
                    sums[month] = sums.get(month, 0) + count
        history = sorted(sums.items())
    out = {
        **_response(current, prediction, body.confidence),
        "history": [{"month": m.isoformat(), "sales_count": c} for m, c in history],
    }
    response = json_response(out)
    _record(request, "predict-with-history", current, prediction, started, body, out)
    return response  # type: ignore[return-value] - documented by response_model


class SegmentOut(BaseModel):
    segment: str = Field(examples=["CAR|TOYOTA|COROLLA|XEI"])
    market: str | None = Field(description="The segment's market, if any", examples=[None])
    vehicle_type: str = Field(examples=["CAR"])
    brand: str = Field(examples=["TOYOTA"])
    model: str = Field(examples=["COROLLA"])
    line: str = Field(examples=["XEI"])
    first_month: datetime | None
    last_observation: datetime | None = Field(description="Last month with stored events")
    months: int = Field(examples=[36])
    events: int = Field(examples=[412])
    online_mae: float | None = Field(description="Running MAE of the online forecaster")
    in_model: bool = Field(description="Covered by the live version's forecasts")


class SegmentPage(BaseModel):
    items: list[SegmentOut]
    total: int = Field(examples=[39])
    limit: int = Field(examples=[200])
    offset: int = Field(examples=[0])
    model_version: str | None = Field(examples=["v1.0.0-20261122"])


@router.get(
    "/segments",
    response_model=SegmentPage,
    summary="Covered segments with their last observation and online error",
    responses=AUTH_ERRORS,
)
def segments(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> SegmentPage:
    s = store(request)
    domain = domain_or_default(request)
    summary = s.series.series_summary(domain)
    errors = s.monitoring.latest_scores(domain, "online", "mae")
    current = live(request).get(domain)
    covered = current.book.segments if current and current.book else {}
    items = []
    for row in summary[offset : offset + limit]:
        parts = row["series_key"].split("|")
        market = parts.pop(0) if len(parts) == MARKET_SEGMENT_PARTS else None
        parts = (parts + ["", "", "", ""])[:4]
        items.append(
            SegmentOut(
                segment=row["series_key"],
                market=market,
                vehicle_type=parts[0],
                brand=parts[1],
                model=parts[2],
                line=parts[3],
                first_month=row["first_period"],
                last_observation=row["last_period"],
                months=row["periods"],
                events=row["events"],
                online_mae=errors.get(row["series_key"]),
                in_model=row["series_key"] in covered,
            )
        )
    return SegmentPage(
        items=items,
        total=len(summary),
        limit=limit,
        offset=offset,
        model_version=current.version.version if current else None,
    )
