"""Observation deltas: what one event (or a batch) adds to a series' period aggregate."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ml.aggregates import FieldStats, merge_fields

__all__ = ["ObservationDelta", "ObservationKey", "accumulate", "combine"]

#: (domain, series_key, period_start)
ObservationKey = tuple[str, str, datetime]


@dataclass(slots=True)
class ObservationDelta:
    """Counts and field statistics to add to one (domain, series, period) observation."""

    domain: str
    series_key: str
    period_start: datetime
    n_events: int = 1
    fields: dict[str, FieldStats] = field(default_factory=dict)

    @property
    def key(self) -> ObservationKey:
        return (self.domain, self.series_key, self.period_start)


def accumulate(into: dict[ObservationKey, ObservationDelta], delta: ObservationDelta) -> None:
    """Add ``delta`` to its key's accumulator in ``into`` (created on first use).

    ``delta`` is only read, never kept: the accumulators are new objects owned by ``into``."""
    key = (delta.domain, delta.series_key, delta.period_start)
    acc = into.get(key)
    if acc is None:
        acc = into[key] = ObservationDelta(
            delta.domain, delta.series_key, delta.period_start, 0, {}
        )
    acc.n_events += delta.n_events
    merge_fields(acc.fields, delta.fields)


def combine(deltas: Iterable[ObservationDelta]) -> dict[ObservationKey, ObservationDelta]:
    """Fold many deltas into one per observation key (order does not matter)."""
    out: dict[ObservationKey, ObservationDelta] = {}
    for delta in deltas:
        accumulate(out, delta)
    return out
