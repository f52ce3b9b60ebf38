"""Monitoring records: drift events and the score history (running and evaluated scores)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from ml.registry import entities as e
from ml.registry.db import Database
from ml.registry.models import DriftEventRecord, ScoreHistory, utcnow

__all__ = ["MonitoringStore"]


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

    def latest_online_score(
        self, domain: str, scope: str, model_id: str, metric: str
    ) -> e.OnlineScore | None:
        """The stream's most recent running score of ``model_id`` for ``scope`` on ``metric``."""
        query = (
            select(ScoreHistory.id, ScoreHistory.score, ScoreHistory.recorded_at)
            .where(
                ScoreHistory.domain == domain,
                ScoreHistory.scope == scope,
                ScoreHistory.model_id == model_id,
                ScoreHistory.metric == metric,
                ScoreHistory.trigger == "online",
            )
            .order_by(ScoreHistory.recorded_at.desc(), ScoreHistory.id.desc())
            .limit(1)
        )
        with self._db.session() as session:
            row = session.execute(query).first()
        return e.OnlineScore(int(row[0]), float(row[1]), row[2]) if row else None
