"""Monthly sales books per segment, closed by an event-time watermark with allowed lateness.

A month M closes when the watermark (the latest ``occurred_at`` seen) passes the start of M+1
plus ``allowed_lateness``. Months close in order, empty ones included, so every known segment
gets a value (0 when it sold nothing) for every closed month. An event for an already closed
month is *late*: the caller applies it to the stored observations as a correction and counts
it; it does not reopen the month nor re-train the online model on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ml.aggregates import FieldStats
from ml.demand.segments import Segment, contract_stats
from ml.periods import month_start, next_month
from schemas.events import SaleContractEvent

__all__ = ["MonthCounts", "ClosedMonth", "MonthlyBook"]


@dataclass(slots=True)
class MonthCounts:
    """What one segment did in one month: the fields of its contracts
    (:func:`ml.demand.segments.contract_stats`, as the stored observations count them: an
    event of quantity q as q events)."""

    fields: dict[str, FieldStats] = field(default_factory=dict)

    def add(self, event: SaleContractEvent) -> None:
        for name, stats in contract_stats(event).items():
            mine = self.fields.get(name)
            if mine is None:
                self.fields[name] = stats
            else:
                mine.merge(stats)

    @property
    def sales(self) -> int:
        stats = self.fields.get("sales")
        return stats.count if stats else 0

    @property
    def purchases(self) -> int:
        stats = self.fields.get("purchases")
        return stats.count if stats else 0

    @property
    def avg_sale_price(self) -> float | None:
        stats = self.fields.get("sale_price")
        return stats.mean if stats else None

    @property
    def avg_purchase_price(self) -> float | None:
        stats = self.fields.get("purchase_price")
        return stats.mean if stats else None


@dataclass(frozen=True, slots=True)
class ClosedMonth:
    """A month that just closed, with every known segment's counts (zeros included)."""

    month: datetime
    counts: dict[Segment, MonthCounts]


@dataclass
class MonthlyBook:
    """Open months of one partition. Picklable: it is part of the checkpointed state."""

    allowed_lateness: timedelta
    watermark: datetime | None = None
    closed_through: datetime | None = None
    open: dict[datetime, dict[Segment, MonthCounts]] = field(default_factory=dict)
    segments: set[Segment] = field(default_factory=set)
    late_events: int = 0

    def add(self, event: SaleContractEvent) -> bool:
        """Count an event; return False if its month is already closed (a late event)."""
        occurred = event.occurred_at
        month = month_start(occurred)
        if self.watermark is None or occurred > self.watermark:
            self.watermark = occurred
        if self.closed_through is not None and month <= self.closed_through:
            self.late_events += 1
            return False
        segment = event.segment
        books = self.open.get(month)
        if books is None:
            books = self.open[month] = {}
        counts = books.get(segment)
        if counts is None:
            counts = books[segment] = MonthCounts()
            self.segments.add(segment)
        counts.add(event)
        return True

    def close_ready(self) -> list[ClosedMonth]:
        """Close every month the watermark has passed (plus lateness), oldest first."""
        if self.watermark is None or not (self.open or self.closed_through):
            return []
        first = (
            next_month(self.closed_through) if self.closed_through is not None else min(self.open)
        )
        closed: list[ClosedMonth] = []
        month = first
        while next_month(month) + self.allowed_lateness <= self.watermark:
            books = self.open.pop(month, {})
            counts = {seg: books.get(seg, MonthCounts()) for seg in sorted(self.segments)}
            closed.append(ClosedMonth(month, counts))
            self.closed_through = month
            month = next_month(month)
        return closed
