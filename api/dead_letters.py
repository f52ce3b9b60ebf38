"""``GET /v1/ml/dead-letters``: the messages the stream refused, as stored with the batches
that refused them: counts by error type and topic, and the latest ones with their reason and
an excerpt of the payload; and the invalid values it dropped from events it kept (counts by
topic, field and reason, with the latest example)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import ML_MODELS, Principal, require
from api.common import AUTH_ERRORS, store
from api.limits import StrictJSONRoute
from ml.registry.entities import DeadLetterRow, FieldRejectionTotal

__all__ = ["router", "MAX_LIMIT"]

router = APIRouter(route_class=StrictJSONRoute, prefix="/v1/ml", tags=["dead letters"])

#: The most dead letters one answer lists.
MAX_LIMIT = 500

ERROR_TYPES = ("invalid_json", "schema_violation", "oversize", "future_timestamp", "too_old",
               "duplicate", "other")  # fmt: skip


class DeadLetterOut(BaseModel):
    event_id: str = Field(description="Derived from topic/partition/offset")
    topic: str = Field(examples=["sales.transactions"])
    partition: int = Field(examples=[0])
    offset: int = Field(examples=[1234])
    key: str | None = Field(examples=["CAR|TOYOTA|COROLLA|XEI"])
    error_type: str = Field(examples=["future_timestamp"])
    reason: str = Field(
        examples=["occurred_at 2026-12-30T10:00:00+00:00 is more than 86400 s in the future"]
    )
    payload: str = Field(description="The payload's first characters (DEAD_LETTER_PAYLOAD_CHARS)")
    payload_bytes: int = Field(description="Size of the refused payload", examples=[412])
    consumer: str = Field(examples=["millrace-streams"])
    occurred_at: datetime = Field(description="When the message was refused")
    created_at: datetime | None = Field(description="When its batch was stored")


class FieldRejectionOut(BaseModel):
    topic: str = Field(examples=["network.measurements"])
    domain: str = Field(examples=["network"])
    field: str = Field(examples=["ul_bitrate"])
    reason: str = Field(
        description="below_range | above_range | not_finite | not_a_number",
        examples=["below_range"],
    )
    count: int = Field(description="Values dropped (their events were kept)", examples=[12])
    example_value: str = Field(description="The latest dropped value", examples=["-3.0"])
    example_detail: str = Field(examples=["Input should be greater than or equal to 0"])
    example_event_id: str = Field(description="The event it was dropped from")
    example_key: str | None = Field(examples=["cell-17"])
    first_seen_at: datetime
    last_seen_at: datetime


class DeadLetterPage(BaseModel):
    total: int = Field(description="Stored dead letters (of the filters)", examples=[3])
    by_error_type: dict[str, int] = Field(examples=[{"future_timestamp": 2, "invalid_json": 1}])
    by_topic: dict[str, int] = Field(examples=[{"sales.transactions": 3}])
    items: list[DeadLetterOut] = Field(description="The latest, newest first")
    limit: int = Field(examples=[20])
    dropped_values: int = Field(
        0,
        description="Invalid values dropped from events that were kept (of the topic filter)",
        examples=[12],
    )
    field_rejections: list[FieldRejectionOut] = Field(
        default_factory=list,
        description="Dropped values by topic, field and reason, most frequent first",
    )


def _out(row: DeadLetterRow) -> DeadLetterOut:
    return DeadLetterOut(
        event_id=row.event_id,
        topic=row.topic,
        partition=row.partition,
        offset=row.offset,
        key=row.key,
        error_type=row.error_type,
        reason=row.reason,
        payload=row.payload,
        payload_bytes=row.payload_bytes,
        consumer=row.consumer,
        occurred_at=row.occurred_at,
        created_at=row.created_at,
    )


def _field_out(row: FieldRejectionTotal) -> FieldRejectionOut:
    return FieldRejectionOut(
        topic=row.topic,
        domain=row.domain,
        field=row.field,
        reason=row.reason,
        count=row.count,
        example_value=row.example_value,
        example_detail=row.example_detail,
        example_event_id=row.example_event_id,
        example_key=row.example_key,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
    )


@router.get(
    "/dead-letters",
    response_model=DeadLetterPage,
    summary="Refused stream messages: counts by error type and topic, the latest with reasons",
    responses=AUTH_ERRORS,
)
async def dead_letters(
    request: Request,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"How many of the latest (1..{MAX_LIMIT})")
    ] = 20,
    error_type: Annotated[str | None, Query(pattern="^(" + "|".join(ERROR_TYPES) + ")$")] = None,
    topic: Annotated[str | None, Query(max_length=255)] = None,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> DeadLetterPage:
    letters = store(request).dead_letters

    def read() -> DeadLetterPage:
        counts = letters.counts(topic=topic, error_type=error_type)
        rows = letters.recent(limit, topic=topic, error_type=error_type)
        dropped = letters.field_rejections(topic=topic)
        return DeadLetterPage(
            total=counts.total,
            by_error_type=counts.by_error_type,
            by_topic=counts.by_topic,
            items=[_out(r) for r in rows],
            limit=limit,
            dropped_values=sum(r.count for r in dropped),
            field_rejections=[_field_out(r) for r in dropped],
        )

    return await run_in_threadpool(read)
