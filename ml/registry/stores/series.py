"""What the stream folded in, read back per series: observations, their summaries and the
forecasts written for them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from ml.registry import entities as e
from ml.registry.db import Database
from ml.registry.models import Forecast, Observation, as_utc

__all__ = ["SeriesStore"]


class SeriesStore:
    """Observations and forecasts per series (written by :class:`StreamStore`'s commit)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def observations(
        self,
        domain: str,
        series_key: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[e.ObservationRow]:
        query = select(Observation).where(Observation.domain == domain)
        if series_key is not None:
            query = query.where(Observation.series_key == series_key)
        if start is not None:
            query = query.where(Observation.period_start >= start)
        if end is not None:
            query = query.where(Observation.period_start < end)
        query = query.order_by(Observation.series_key, Observation.period_start)
        with self._db.session() as session:
            return [r.to_entity() for r in session.scalars(query)]

    def count_events(self, domain: str) -> int:
        query = select(func.coalesce(func.sum(Observation.n_events), 0)).where(
            Observation.domain == domain
        )
        with self._db.session() as session:
            return int(session.execute(query).scalar_one())

    def observation_stats(self) -> list[dict[str, Any]]:
        """Per domain: events folded in, distinct series, latest period."""
        query = select(
            Observation.domain,
            func.sum(Observation.n_events),
            func.count(func.distinct(Observation.series_key)),
            func.max(Observation.period_start),
        ).group_by(Observation.domain)
        with self._db.session() as session:
            return [
                {
                    "domain": domain,
                    "events": int(events or 0),
                    "series": int(series),
                    "latest_period": as_utc(latest),
                }
                for domain, events, series, latest in session.execute(query)
            ]

    def series_summary(self, domain: str) -> list[dict[str, Any]]:
        """Per series: first and last period observed, periods and events."""
        query = (
            select(
                Observation.series_key,
                func.min(Observation.period_start),
                func.max(Observation.period_start),
                func.count(Observation.id),
                func.sum(Observation.n_events),
            )
            .where(Observation.domain == domain)
            .group_by(Observation.series_key)
            .order_by(Observation.series_key)
        )
        with self._db.session() as session:
            return [
                {
                    "series_key": key,
                    "first_period": as_utc(first),
                    "last_period": as_utc(last),
                    "periods": int(periods),
                    "events": int(events or 0),
                }
                for key, first, last, periods, events in session.execute(query)
            ]

    def completeness(
        self, domain: str, before: datetime
    ) -> tuple[int, int, datetime | None, datetime | None]:
        """Of ``domain``'s periods starting before ``before``: rows, events and last update;
        and the latest period stored (of any time)."""
        complete = select(
            func.count(),
            func.coalesce(func.sum(Observation.n_events), 0),
            func.max(Observation.updated_at),
        ).where(Observation.domain == domain, Observation.period_start < before)
        latest = select(func.max(Observation.period_start)).where(Observation.domain == domain)
        with self._db.engine.connect() as conn:
            rows, events, updated = conn.execute(complete).one()
            last = as_utc(conn.execute(latest).scalar())
        return int(rows), int(events), as_utc(updated), last

    def forecasts(
        self, domain: str, series_key: str, model_version: str | None = None
    ) -> list[e.ForecastRow]:
        query = select(Forecast).where(Forecast.domain == domain, Forecast.series_key == series_key)
        if model_version is not None:
            query = query.where(Forecast.model_version == model_version)
        with self._db.session() as session:
            return [r.to_entity() for r in session.scalars(query.order_by(Forecast.period_start))]
