"""The registry's network-domain records: model configs, per-field performance state and the
results of published commands, over the same database as :class:`~ml.registry.store.Store`.

:class:`SqlFieldStateRepository` is the SQL backend of
:class:`ml.network.state.FieldStateRepository` (the in-memory one is the reference); scores go to
the shared ``score_history`` table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from ml.network.configs import ModelConfig, parse_config
from ml.network.state import DOMAIN, FieldState, FieldStateRepository, MonitoringState
from ml.registry.entities import ScoreRow
from ml.registry.models import (
    CommandResult,
    FieldStateRecord,
    ModelConfigRecord,
    ScoreHistory,
    utcnow,
)
from ml.registry.store import Store

__all__ = [
    "CommandResultRow",
    "ConfigRow",
    "NetworkRegistry",
    "OnlineScore",
    "SqlFieldStateRepository",
]


@dataclass(frozen=True, slots=True)
class ConfigRow:
    config: ModelConfig
    created_at: datetime
    deleted_at: datetime | None
    command_id: str | None


@dataclass(frozen=True, slots=True)
class CommandResultRow:
    command_id: str
    command: str
    domain: str
    scope: str
    status: str  # ok | error
    result: dict[str, Any]
    error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OnlineScore:
    """One running score the stream recorded (``id`` orders rows written at the same time)."""

    id: int
    score: float
    recorded_at: datetime


class NetworkRegistry:
    """Model configs, command results and the stream's online scores."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._session = sessionmaker(store.engine, expire_on_commit=False)

    # --- scores ------------------------------------------------------------------------------
    def latest_online_score(self, field: str, model_id: str, metric: str) -> OnlineScore | None:
        """The stream's most recent running score of ``model_id`` for ``field`` on ``metric``."""
        query = (
            select(ScoreHistory.id, ScoreHistory.score, ScoreHistory.recorded_at)
            .where(
                ScoreHistory.domain == DOMAIN,
                ScoreHistory.scope == field,
                ScoreHistory.model_id == model_id,
                ScoreHistory.metric == metric,
                ScoreHistory.trigger == "online",
            )
            .order_by(ScoreHistory.recorded_at.desc(), ScoreHistory.id.desc())
            .limit(1)
        )
        with self._session() as session:
            row = session.execute(query).first()
        return OnlineScore(int(row[0]), float(row[1]), row[2]) if row else None

    # --- configs -----------------------------------------------------------------------------
    def configs(self, include_deleted: bool = False) -> list[ConfigRow]:
        query = select(ModelConfigRecord).where(ModelConfigRecord.domain == DOMAIN)
        if not include_deleted:
            query = query.where(ModelConfigRecord.deleted_at.is_(None))
        with self._session() as session:
            rows = session.scalars(query.order_by(ModelConfigRecord.id)).all()
            return [
                ConfigRow(parse_config(r.config), r.created_at, r.deleted_at, r.command_id)
                for r in rows
            ]

    def live_configs(self) -> list[ModelConfig]:
        return [row.config for row in self.configs()]

    def get_config(self, config_id: str) -> ConfigRow | None:
        with self._session() as session:
            r = session.get(ModelConfigRecord, config_id)
            if r is None or r.domain != DOMAIN:
                return None
            return ConfigRow(parse_config(r.config), r.created_at, r.deleted_at, r.command_id)

    def put_config(self, config: ModelConfig, command_id: str | None = None) -> bool:
        """Store a new config; False if a live config has this id (a deleted one is revived)."""
        with self._session.begin() as session:
            row = session.get(ModelConfigRecord, config.id)
            if row is not None and row.deleted_at is None:
                return False
            if row is None:
                row = ModelConfigRecord(id=config.id, domain=DOMAIN)
                session.add(row)
            row.config = config.model_dump(mode="json")
            row.created_at = utcnow()
            row.deleted_at = None
            row.command_id = command_id
            return True

    def delete_config(self, config_id: str) -> bool:
        """Mark a live config deleted; False if there is none with this id."""
        with self._session.begin() as session:
            row = session.get(ModelConfigRecord, config_id)
            if row is None or row.deleted_at is not None:
                return False
            row.deleted_at = utcnow()
            return True

    def seed_configs(self, configs: list[ModelConfig]) -> int:
        """Store ``configs`` when the domain has none at all yet (first start); how many."""
        if self.configs(include_deleted=True):
            return 0
        return sum(self.put_config(c, command_id="default") for c in configs)

    # --- command results ---------------------------------------------------------------------
    def record_result(
        self,
        command_id: str,
        command: str,
        domain: str,
        scope: str,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        with self._session.begin() as session:
            if session.get(CommandResult, command_id) is not None:
                return
            session.add(
                CommandResult(
                    command_id=command_id,
                    command=command,
                    domain=domain,
                    scope=scope,
                    status="error" if error else "ok",
                    result=result or {},
                    error=error,
                    created_at=utcnow(),
                )
            )

    def result(self, command_id: str) -> CommandResultRow | None:
        with self._session() as session:
            r = session.get(CommandResult, command_id)
            if r is None:
                return None
            return CommandResultRow(
                r.command_id, r.command, r.domain, r.scope, r.status, dict(r.result or {}),
                r.error, r.created_at,
            )  # fmt: skip


class SqlFieldStateRepository(FieldStateRepository):
    """Field states in ``field_states``; scores in ``score_history`` (domain ``network``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._session = sessionmaker(store.engine, expire_on_commit=False)

    def get(self, field: str) -> FieldState | None:
        with self._session() as session:
            row = session.get(FieldStateRecord, field)
            return _state(row) if row else None

    def save(self, state: FieldState) -> None:
        with self._session.begin() as session:
            row = session.get(FieldStateRecord, state.field)
            if row is None:
                row = FieldStateRecord(field=state.field)
                session.add(row)
            row.state = str(state.state)
            row.metric = state.metric
            row.best_model_id = state.best_model_id
            row.baseline = state.baseline
            row.elected_at = state.elected_at
            row.jobs = list(state.jobs)
            row.lock_owner = state.lock_owner
            row.locked_at = state.locked_at
            row.next_check_at = state.next_check_at
            row.reason = state.reason
            row.updated_at = state.updated_at or utcnow()

    def all(self) -> list[FieldState]:
        with self._session() as session:
            rows = session.scalars(select(FieldStateRecord).order_by(FieldStateRecord.field))
            return [_state(r) for r in rows]

    def add_score(self, row: ScoreRow) -> None:
        self.store.add_score(
            domain=row.domain,
            scope=row.scope,
            model_id=row.model_id,
            metric=row.metric,
            score=row.score,
            trigger=row.trigger,
            baseline=row.baseline,
            recorded_at=row.recorded_at,
        )

    def scores(self, field: str, model_id: str | None = None) -> list[ScoreRow]:
        return self.store.score_history(DOMAIN, field, model_id)


def _state(row: FieldStateRecord) -> FieldState:
    return FieldState(
        field=row.field,
        state=MonitoringState(row.state),
        metric=row.metric,
        best_model_id=row.best_model_id,
        baseline=row.baseline,
        elected_at=row.elected_at,
        jobs=tuple(row.jobs or ()),
        lock_owner=row.lock_owner,
        locked_at=row.locked_at,
        next_check_at=row.next_check_at,
        reason=row.reason or "",
        updated_at=row.updated_at,
    )
