"""Replays in event-time order, and what the worker will refuse of them.

A file's rows are not always in time order (the dealership export lists contracts by client):
published as they stand, most events would reach the stream after their month closed and
become late corrections. :func:`in_time_order` sorts a source's records by ``occurred_at``
(stable: equal times keep the file's order; the rejections come first) unless the source says
it is already ordered (``Source.time_ordered``).

:func:`worker_refusal` applies the stream's time rules (``MAX_FUTURE_SECONDS``,
``MIN_EVENT_TIME``) to an event before it is published, so a replay can say which rows the
worker will dead-letter instead of reporting them as published and fine.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from millrace.importers.base import Record, Rejected, Source
from schemas.events import BaseEvent

__all__ = ["TimeOrdered", "WorkerRules", "in_time_order", "worker_refusal"]


class TimeOrdered(Source):
    """``source`` with its records sorted by event time (held in memory while sorting)."""

    time_ordered = True

    def __init__(self, source: Source) -> None:
        self.source = source
        self.name = source.name

    @property
    def estimated_total(self) -> int | None:
        return self.source.estimated_total

    def __iter__(self) -> Iterator[Record | Rejected]:
        records: list[Record] = []
        for item in self.source:
            if isinstance(item, Rejected):
                yield item
            else:
                records.append(item)
        records.sort(key=lambda r: r.event.occurred_at)  # stable: ties keep the file's order
        yield from records


def in_time_order(source: Source) -> Source:
    """``source`` itself when it is time-ordered already, else it sorted (:class:`TimeOrdered`)."""
    return source if getattr(source, "time_ordered", False) else TimeOrdered(source)


class WorkerRules:
    """The stream worker's time rules, from the settings (``max_future_seconds``,
    ``min_event_time``), evaluated against the clock at the replay's start."""

    def __init__(self, settings: Any, now: datetime | None = None) -> None:
        self.max_future = timedelta(seconds=float(getattr(settings, "max_future_seconds", 86400)))
        start = getattr(settings, "min_event_time", date(2000, 1, 1))
        if not isinstance(start, datetime):
            start = datetime.combine(start, time(0), tzinfo=UTC)
        self.min_time = start if start.tzinfo else start.replace(tzinfo=UTC)
        self.now = now or datetime.now(UTC)
        try:
            self.latest = self.now + self.max_future
        except OverflowError:
            self.latest = datetime.max.replace(tzinfo=UTC)

    def refusal(self, event: BaseEvent) -> tuple[str, str] | None:
        """(error type, reason) when the worker will dead-letter ``event``, else None."""
        return worker_refusal(event, self)


def worker_refusal(event: BaseEvent, rules: WorkerRules) -> tuple[str, str] | None:
    """(error type, reason) when the worker will refuse ``event`` for its time, else None."""
    at = event.occurred_at
    if at > rules.latest:
        return "future_timestamp", (
            f"occurred_at {at.isoformat()} is more than {rules.max_future.total_seconds():.0f} s "
            "in the future (MAX_FUTURE_SECONDS)"
        )
    if at < rules.min_time:
        return "too_old", (
            f"occurred_at {at.isoformat()} is before {rules.min_time.date()} (MIN_EVENT_TIME)"
        )
    return None
