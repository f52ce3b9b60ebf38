"""The network domain's records: model configs, per-field performance states and the results
of published commands (scores live in ``score_history``, see :class:`MonitoringStore`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ml.registry import entities as e
from ml.registry.db import Database
from ml.registry.models import CommandResult, FieldStateRecord, ModelConfigRecord, utcnow

if TYPE_CHECKING:
    from ml.network.configs import ModelConfig
    from ml.network.state import FieldState

__all__ = ["NetworkStore"]

#: the domain whose configs these are (``ml.network.state.DOMAIN``)
DOMAIN = "network"


class NetworkStore:
    """Model configs, field states and command results."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- configs -----------------------------------------------------------------------------
    def configs(self, include_deleted: bool = False) -> list[e.ConfigRow]:
        query = select(ModelConfigRecord).where(ModelConfigRecord.domain == DOMAIN)
        if not include_deleted:
            query = query.where(ModelConfigRecord.deleted_at.is_(None))
        with self._db.session() as session:
            return [r.to_entity() for r in session.scalars(query.order_by(ModelConfigRecord.id))]

    def live_configs(self) -> list[ModelConfig]:
        return [row.config for row in self.configs()]

    def get_config(self, config_id: str) -> e.ConfigRow | None:
        with self._db.session() as session:
            r = session.get(ModelConfigRecord, config_id)
            if r is None or r.domain != DOMAIN:
                return None
            return r.to_entity()

    def put_config(self, config: ModelConfig, command_id: str | None = None) -> bool:
        """Store a new config; False if a live config has this id (a deleted one is revived)."""
        with self._db.session.begin() as session:
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
        with self._db.session.begin() as session:
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

    # --- field states ------------------------------------------------------------------------
    def field_state(self, field: str) -> FieldState | None:
        with self._db.session() as session:
            row = session.get(FieldStateRecord, field)
            return row.to_entity() if row else None

    def save_field_state(self, state: FieldState) -> None:
        with self._db.session.begin() as session:
            row = session.get(FieldStateRecord, state.field)
            if row is None:
                row = FieldStateRecord(field=state.field)
                session.add(row)
            row.update_from(state)

    def field_states(self) -> list[FieldState]:
        with self._db.session() as session:
            rows = session.scalars(select(FieldStateRecord).order_by(FieldStateRecord.field))
            return [r.to_entity() for r in rows]

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
        with self._db.session.begin() as session:
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

    def result(self, command_id: str) -> e.CommandResultRow | None:
        with self._db.session() as session:
            r = session.get(CommandResult, command_id)
            return r.to_entity() if r else None
