"""``GET /v1/ml/observations/stats``: how much each domain has stored (shows data arriving)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from api.auth import ML_MODELS, Principal, require
from api.common import AUTH_ERRORS, DOMAIN_EXAMPLES
from api.limits import StrictJSONRoute

__all__ = ["router"]

router = APIRouter(route_class=StrictJSONRoute, prefix="/v1/ml", tags=["observations"])


class DomainStats(BaseModel):
    domain: str = Field(examples=DOMAIN_EXAMPLES[:1])
    events: int = Field(
        description="Events folded into observations (an event of quantity q counts q)",
        examples=[1200],
    )
    series: int = Field(description="Distinct series (segments / cells)", examples=[39])
    latest_period: datetime | None = Field(examples=["2026-11-01T00:00:00Z"])


@router.get(
    "/observations/stats",
    response_model=list[DomainStats],
    summary="Stored observation counts per domain",
    responses=AUTH_ERRORS,
)
def observation_stats(
    request: Request,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> list[DomainStats]:
    store = request.app.state.store
    return [DomainStats(**row) for row in store.series.observation_stats()]
