"""Monitoring records: drift events and the score history (running and evaluated scores).

Running scores (trigger ``online``) are written by the stream per partition over a sliding
window of event time, with their count and sufficient statistics;
:meth:`MonitoringStore.recent_online_score` merges the latest row of every partition within the
window into the model's recent score (exactly, see :func:`ml.metrics.merge_stats`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from ml.metrics import RunningMetrics, merge_stats
from ml.registry import entities as e
from ml.registry.db import Database
from ml.registry.models import DriftEventRecord, ScoreHistory, utcnow

__all__ = ["MonitoringStore", "merged_score"]


class MonitoringStore:
    """Drift events (written by the stream's commit) and scores."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def drift_events(
        self,
        domain: str | None = None,
        scope: str | None = None,
        limit: int = 100,
        *,
        scope_prefix: str | None = None,
        scope_suffix: str | None = None,
    ) -> list[e.DriftEventRow]:
        """Newest first; ``scope`` exact, or scopes starting / ending with the given text
        (e.g. a network cell ``"<cell>|"`` or field ``"|<field>"``)."""
        query = select(DriftEventRecord)
        if domain is not None:
            query = query.where(DriftEventRecord.domain == domain)
        if scope is not None:
            query = query.where(DriftEventRecord.scope == scope)
        if scope_prefix is not None:
            query = query.where(DriftEventRecord.scope.startswith(scope_prefix, autoescape=True))
        if scope_suffix is not None:
            query = query.where(DriftEventRecord.scope.endswith(scope_suffix, autoescape=True))
        query = query.order_by(
            DriftEventRecord.occurred_at.desc(), DriftEventRecord.id.desc()
        ).limit(limit)
        with self._db.session() as session:
            return [r.to_entity() for r in session.scalars(query)]

    def add_score(
        self,
        *,
        domain: str,
        scope: str,
        model_id: str,
        metric: str,
        score: float,
        trigger: str,
        baseline: float | None = None,
        recorded_at: datetime | None = None,
        partition: int | None = None,
        n: int | None = None,
        stats: dict[str, Any] | None = None,
    ) -> e.ScoreRow:
        with self._db.session.begin() as session:
            row = ScoreHistory(
                domain=domain,
                scope=scope,
                model_id=model_id,
                metric=metric,
                score=score,
                baseline=baseline,
                trigger=trigger,
                recorded_at=recorded_at or utcnow(),
                partition=partition,
                n=n,
                stats=stats,
            )
            session.add(row)
            session.flush()
            return row.to_entity()

    def score_history(
        self, domain: str, scope: str, model_id: str | None = None
    ) -> list[e.ScoreRow]:
        query = select(ScoreHistory).where(
            ScoreHistory.domain == domain, ScoreHistory.scope == scope
        )
        if model_id is not None:
            query = query.where(ScoreHistory.model_id == model_id)
        query = query.order_by(ScoreHistory.recorded_at, ScoreHistory.id)
        with self._db.session() as session:
            return [r.to_entity() for r in session.scalars(query)]

    def latest_scores(self, domain: str, model_id: str, metric: str) -> dict[str, float]:
        """The most recent score of ``model_id`` on ``metric`` per scope."""
        newest = (
            select(ScoreHistory.scope, func.max(ScoreHistory.id).label("id"))
            .where(
                ScoreHistory.domain == domain,
                ScoreHistory.model_id == model_id,
                ScoreHistory.metric == metric,
            )
            .group_by(ScoreHistory.scope)
            .subquery()
        )
        query = select(ScoreHistory.scope, ScoreHistory.score).join(
            newest, ScoreHistory.id == newest.c.id
        )
        with self._db.session() as session:
            return {scope: float(score) for scope, score in session.execute(query)}

    def recent_online_score(
        self,
        domain: str,
        scope: str,
        model_id: str,
        metric: str,
        window: timedelta | None = None,
    ) -> e.OnlineScore | None:
        """The stream's recent running score of ``model_id`` for ``scope`` on ``metric``: the
        latest row of every partition recorded within ``window`` of the newest row (event
        time; None: every partition's latest row), merged weighted by count. Rows with
        sufficient statistics merge exactly; older rows without them are weighted by their
        count (1 when unknown), and rows without a partition count as one partition. None
        without any row, or when the merged metric is undefined (e.g. R² of constant
        actuals)."""
        where = (
            ScoreHistory.domain == domain,
            ScoreHistory.scope == scope,
            ScoreHistory.model_id == model_id,
            ScoreHistory.metric == metric,
            ScoreHistory.trigger == "online",
        )
        with self._db.session() as session:
            newest = session.execute(select(func.max(ScoreHistory.recorded_at)).where(*where))
            newest_at = newest.scalar()
            if newest_at is None:
                return None
            query = select(
                ScoreHistory.id,
                ScoreHistory.score,
                ScoreHistory.recorded_at,
                ScoreHistory.partition,
                ScoreHistory.n,
                ScoreHistory.stats,
            ).where(*where)
            if window is not None:
                query = query.where(ScoreHistory.recorded_at >= newest_at - window)
            rows = session.execute(query.order_by(ScoreHistory.recorded_at, ScoreHistory.id))
            latest: dict[int | None, Any] = {}
            for row in rows:
                latest[row.partition] = row  # ordered: the last one of each partition stays
        chosen = list(latest.values())
        value, n = merged_score(metric, chosen)
        if value is None:
            return None
        newest_row = max(chosen, key=lambda r: (r.recorded_at, r.id))
        return e.OnlineScore(
            int(max(r.id for r in chosen)), value, newest_row.recorded_at, n, len(chosen)
        )


def merged_score(metric: str, rows: Sequence[Any]) -> tuple[float | None, int | None]:
    """``(score, n)`` of ``metric`` over score rows (with ``score``, ``n``, ``stats``) of
    disjoint points, e.g. the latest of each partition. All with statistics: the metric of
    their merged :class:`~ml.metrics.RunningMetrics` (exact). Otherwise weighted by count
    (1 when unknown): the mean of the scores, of their squares for RMSE."""
    if not rows:
        return None, None
    parts = [r.stats.get("model") if isinstance(r.stats, dict) else None for r in rows]
    if all(isinstance(p, dict) for p in parts):
        try:
            merged: RunningMetrics = merge_stats(parts)  # type: ignore[arg-type]
        except ValueError:
            merged = None  # type: ignore[assignment]
        if merged is not None:
            value = getattr(merged, metric, None)
            used = merged.n - merged.mape_excluded if metric == "mape" else merged.n
            return (float(value), used) if value is not None else (None, used)
    weights = [float(r.n) if r.n else 1.0 for r in rows]
    total = sum(weights)
    if metric == "rmse":
        value = math.sqrt(
            sum(w * float(r.score) ** 2 for w, r in zip(weights, rows, strict=True)) / total
        )
    else:
        value = sum(w * float(r.score) for w, r in zip(weights, rows, strict=True)) / total
    known = all(r.n for r in rows)
    return value, int(total) if known else None
