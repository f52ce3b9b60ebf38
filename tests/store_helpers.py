"""Store operations only tests need, written with the store's public methods (the production
code has no use for them, so the store does not carry them)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from ml.registry.entities import JOB_OPEN, ForecastRow, TrainingJobRow
from ml.registry.store import Store


def add_drift_event(store: Store, **fields: Any) -> bool:
    """Store a drift event through the stream's commit; False if its ``event_id`` was known."""
    known = {e.event_id for e in store.monitoring.drift_events(limit=1_000_000)}
    store.stream.apply_observations([], drift_events=[fields])
    return fields["event_id"] not in known


def upsert_forecasts(store: Store, rows: Iterable[ForecastRow]) -> None:
    """Insert or replace forecasts through the stream's commit."""
    store.stream.apply_observations([], forecasts=list(rows))


def observation_totals(store: Store, domain: str) -> dict[str, int]:
    """Events per series of ``domain``."""
    totals: Counter[str] = Counter()
    for row in store.series.observations(domain):
        totals[row.series_key] += row.n_events
    return dict(totals)


def open_job(store: Store, domain: str, scope: str) -> TrainingJobRow | None:
    """The oldest queued or running job of a scope, if any."""
    jobs = [
        job
        for status in JOB_OPEN
        for job in store.jobs.list_jobs(domain=domain, scope=scope, status=status, limit=1000)
    ]
    return min(jobs, key=lambda j: j.created_at, default=None)
