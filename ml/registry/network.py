"""The SQL backend of :class:`ml.network.state.FieldStateRepository` (the in-memory one is the
reference): field states through :class:`~ml.registry.stores.network.NetworkStore`, scores
through :class:`~ml.registry.stores.monitoring.MonitoringStore` (domain ``network``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ml.network.state import DOMAIN, FieldState, FieldStateRepository
from ml.registry.entities import ScoreRow

if TYPE_CHECKING:
    from ml.registry.store import Store

__all__ = ["SqlFieldStateRepository"]


class SqlFieldStateRepository(FieldStateRepository):
    """Field states in ``field_states``; scores in ``score_history`` (domain ``network``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, field: str) -> FieldState | None:
        return self.store.network.field_state(field)

    def save(self, state: FieldState) -> None:
        self.store.network.save_field_state(state)

    def all(self) -> list[FieldState]:
        return self.store.network.field_states()

    def add_score(self, row: ScoreRow) -> None:
        self.store.monitoring.add_score(
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
        return self.store.monitoring.score_history(DOMAIN, field, model_id)
