"""Validation of raw stream messages and folding of a batch into observations + checkpoints.

Pure logic: the stream adapter hands in (topic, partition, offset, key, bytes) tuples, gets back
what to store, what to dead-letter and which offsets the stored state includes. Messages at or
below a partition's checkpoint offset were already applied and are skipped, so redelivery after a
crash or a rebalance never counts an event twice.

A bad field does not throw away good ones: an invalid value of a droppable field (e.g. a negative
uplink rate in a network measurement, see :mod:`ml.salvage`) becomes missing, the event is kept,
and the dropped value is counted per partition, field and reason in the batch
(:attr:`IngestBatch.field_rejections`, stored in the batch's transaction). Only accepted events'
dropped values are counted, so each is counted once.

No payload raises: whatever the bytes (invalid UTF-8, nesting beyond the parser's depth limit,
values the contract refuses, times before ``min_time`` or past ``now + max_future``), the
message becomes a :class:`Rejection` and then a dead letter, so poison never stops the worker
and never reaches the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

import orjson
from pydantic import ValidationError

from ml.domains.base import Domain
from ml.observations import ObservationDelta, ObservationKey, accumulate
from ml.registry.entities import FieldRejectionCount
from ml.salvage import (
    FieldRejection,
    NothingValid,
    describe,
    lenient_loads,
    validate_keeping_fields,
)
from schemas.events import BaseEvent, DeadLetterRecord, deterministic_id

__all__ = [
    "DEFAULT_MIN_TIME",
    "IngestBatch",
    "Message",
    "MessageLike",
    "Rejection",
    "as_min_time",
    "check_message",
    "fold_batch",
    "validate_message",
]

#: Events before this instant are ``too_old`` unless the caller says otherwise (the default of
#: the ``MIN_EVENT_TIME`` setting).
DEFAULT_MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC)

#: (topic, partition)
TopicPartition = tuple[str, int]


class MessageLike(Protocol):
    """What folding reads of a consumed message (``Message``, or Faust's own message)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class Message:
    """One consumed Kafka message, as the stream adapter saw it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused (``error_type`` is a DeadLetterRecord error type)."""

    error_type: str
    reason: str


def as_min_time(value: datetime | date) -> datetime:
    """``value`` as an aware UTC instant (a day means its first instant, UTC)."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time(0), tzinfo=UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _latest(now: datetime, max_future: timedelta) -> datetime:
    """``now + max_future``, or the largest instant when that is beyond the calendar."""
    try:
        return now + max_future
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


def validate_message(
    domain: Domain,
    value: bytes | None,
    *,
    max_bytes: int,
    max_future: timedelta,
    min_time: datetime | date = DEFAULT_MIN_TIME,
    now: datetime | None = None,
) -> BaseEvent | Rejection:
    """Parse and validate one payload into the domain's event, or say why not (never raises
    on the payload). ``min_time``: earlier ``occurred_at`` is ``too_old`` (a day or an instant).
    Invalid droppable values are dropped (see :func:`check_message` for which ones)."""
    return check_message(
        domain, value, max_bytes=max_bytes, max_future=max_future, min_time=min_time, now=now
    )[0]


def check_message(
    domain: Domain,
    value: bytes | None,
    *,
    max_bytes: int,
    max_future: timedelta,
    min_time: datetime | date = DEFAULT_MIN_TIME,
    now: datetime | None = None,
) -> tuple[BaseEvent | Rejection, list[FieldRejection]]:
    """:func:`validate_message`, with the values dropped from the event (invalid values of the
    event model's ``DROPPABLE_FIELDS``: out of range, not a number, NaN or infinite); none when
    the message is refused."""
    if value is None or len(value) == 0:
        return Rejection("invalid_json", "empty payload"), []
    if len(value) > max_bytes:
        return Rejection("oversize", f"payload of {len(value)} bytes exceeds {max_bytes} bytes"), []
    model = domain.event_model
    dropped: list[FieldRejection] = []
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        salvaged = lenient_loads(value, model.DROPPABLE_FIELDS) if model.DROPPABLE_FIELDS else None
        if salvaged is None:
            return Rejection("invalid_json", f"invalid JSON: {exc}"), []
        data, dropped = salvaged
    if not isinstance(data, dict):
        return Rejection(
            "schema_violation", f"expected a JSON object, got {type(data).__name__}"
        ), []
    try:
        if model.DROPPABLE_FIELDS:
            event, dropped = validate_keeping_fields(model, data, dropped)
        else:
            event = domain.parse(data)
    except ValidationError as exc:
        return Rejection("schema_violation", describe(exc)), []
    except NothingValid as exc:
        return Rejection("schema_violation", str(exc)), []
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        # a validator bug must not stop the worker: the message is refused, with the error
        return Rejection("schema_violation", f"invalid event: {type(exc).__name__}: {exc}"), []
    occurred_at = event.occurred_at
    earliest = as_min_time(min_time)
    if occurred_at < earliest:
        return Rejection(
            "too_old",
            f"occurred_at {occurred_at.isoformat()} is before the minimum event time "
            f"{earliest.isoformat()} (MIN_EVENT_TIME)",
        ), []
    if occurred_at > _latest(now or datetime.now(UTC), max_future):
        return Rejection(
            "future_timestamp",
            f"occurred_at {occurred_at.isoformat()} is more than "
            f"{max_future.total_seconds():.0f} s in the future",
        ), []
    return event, dropped


@dataclass(slots=True)
class IngestBatch:
    """What a batch of messages amounts to."""

    #: what the accepted events add to the observations, one delta per observation key
    deltas: list[ObservationDelta] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, DeadLetterRecord]] = field(default_factory=list)
    #: (topic, partition) -> highest offset covered by this batch
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    #: ids of the accepted events (recorded so a re-published duplicate is refused)
    event_ids: list[str] = field(default_factory=list)
    #: accepted events per partition, in offset order
    events: dict[TopicPartition, list[BaseEvent]] = field(default_factory=dict)
    #: values dropped from accepted events, counted per (topic, partition, field, reason)
    field_rejections: list[FieldRejectionCount] = field(default_factory=list)
    accepted: int = 0
    skipped: int = 0


def _dead_letter(
    msg: MessageLike, why: Rejection, consumer: str, max_bytes: int, now: datetime
) -> DeadLetterRecord:
    """The record of a refusal at ``now`` (its id is the message's position: a redelivery
    gives the same id)."""
    return DeadLetterRecord(
        event_id=deterministic_id("dead-letter", msg.topic, msg.partition, msg.offset),
        occurred_at=now,
        source_topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=msg.key.decode("utf-8", "replace") if msg.key else None,
        reason=why.reason,
        error_type=why.error_type,  # type: ignore[arg-type]
        consumer=consumer,
        payload=(msg.value or b"")[:max_bytes].decode("utf-8", "replace"),
    )


def fold_batch(
    domain: Domain,
    messages: Iterable[MessageLike],
    checkpoints: Mapping[TopicPartition, int],
    *,
    consumer: str,
    max_bytes: int,
    max_future: timedelta,
    min_time: datetime | date = DEFAULT_MIN_TIME,
    known_ids: Callable[[list[str]], set[str]] = lambda ids: set(),
    now: datetime | None = None,
) -> IngestBatch:
    """Validate every message not yet covered by ``checkpoints`` and fold it into a batch.

    ``known_ids`` answers which event ids were processed before (the store); those, and
    repeats inside the batch, are refused as ``duplicate``. Events before ``min_time`` (the
    ``MIN_EVENT_TIME`` setting) are ``too_old``. The batch's deltas come out combined: one per
    observation key.
    """
    batch = IngestBatch()
    now = now or datetime.now(UTC)
    min_time = as_min_time(min_time)
    offsets = batch.offsets
    fresh: list[
        tuple[MessageLike, TopicPartition, BaseEvent | Rejection, list[FieldRejection]]
    ] = []
    for msg in messages:
        tp = (msg.topic, msg.partition)
        offset = msg.offset
        if offset <= checkpoints.get(tp, -1):
            batch.skipped += 1
            continue
        if offset > offsets.get(tp, -1):
            offsets[tp] = offset
        result, dropped = check_message(
            domain,
            msg.value,
            max_bytes=max_bytes,
            max_future=max_future,
            min_time=min_time,
            now=now,
        )
        fresh.append((msg, tp, result, dropped))
    candidates = [r.event_id for _, _, r, _ in fresh if not isinstance(r, Rejection)]
    seen = known_ids(candidates) if candidates else set()
    combined: dict[ObservationKey, ObservationDelta] = {}
    event_ids, events = batch.event_ids, batch.events
    counts: dict[tuple[str, int, str, str], FieldRejectionCount] = {}
    for msg, tp, result, dropped in fresh:
        if not isinstance(result, Rejection):
            if result.event_id in seen:
                result = Rejection("duplicate", f"event_id {result.event_id} already processed")
            else:
                seen.add(result.event_id)
        if not isinstance(result, Rejection):
            try:
                observed = domain.observe(result)
            except (ValueError, TypeError, ArithmeticError) as exc:  # never stop the batch
                seen.discard(result.event_id)
                result = Rejection("schema_violation", f"cannot be observed: {exc}")
        if isinstance(result, Rejection):
            batch.dead_letters.append(
                (msg.key, _dead_letter(msg, result, consumer, max_bytes, now))
            )
            continue
        for delta in observed:
            accumulate(combined, delta)
        event_ids.append(result.event_id)
        accepted = events.get(tp)
        if accepted is None:
            accepted = events[tp] = []
        accepted.append(result)
        for d in dropped:
            _count(counts, msg, domain.name, d, result.event_id, now)
    batch.field_rejections = list(counts.values())
    batch.accepted = len(event_ids)
    batch.deltas = list(combined.values())
    return batch


def _count(
    counts: dict[tuple[str, int, str, str], FieldRejectionCount],
    msg: MessageLike,
    domain: str,
    dropped: FieldRejection,
    event_id: str,
    now: datetime,
) -> None:
    """Add one dropped value to the batch's counts (the latest one stays as the example)."""
    key = (msg.topic, msg.partition, dropped.field, dropped.reason)
    known = counts.get(key)
    counts[key] = FieldRejectionCount(
        topic=msg.topic,
        partition=msg.partition,
        domain=domain,
        field=dropped.field,
        reason=dropped.reason,
        count=(known.count if known else 0) + 1,
        example_value=dropped.value,
        example_detail=dropped.detail,
        example_event_id=event_id,
        example_key=msg.key.decode("utf-8", "replace")[:255] if msg.key else None,
        example_offset=msg.offset,
        first_seen_at=known.first_seen_at if known else now,
        last_seen_at=now,
    )
