"""Per-field performance and monitoring state, and the small repository that keeps it.

Entities are frozen dataclasses; a change is a new value saved with
:meth:`FieldStateRepository.save`. Scores reuse :class:`~ml.registry.entities.ScoreRow`
(``domain="network"``, ``scope`` = the output field), so the SQL implementation maps them to
the existing ``score_history`` table. :class:`InMemoryFieldStateRepository` is the reference
implementation (tests, single process); a SQL one only has to implement the five methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ml.registry.entities import SCORE_TRIGGERS, ScoreRow

__all__ = [
    "DOMAIN",
    "FieldState",
    "FieldStateRepository",
    "InMemoryFieldStateRepository",
    "MonitoringState",
]

DOMAIN = "network"


class MonitoringState(StrEnum):
    MONITORING = "MONITORING"
    RETRAINING = "RETRAINING"
    EVALUATING = "EVALUATING"


@dataclass(frozen=True, slots=True)
class FieldState:
    """Everything known about one output field's models between requests."""

    field: str
    state: MonitoringState = MonitoringState.MONITORING
    #: metric of the last election (the one ``monitor`` re-scores)
    metric: str = "rmse"
    best_model_id: str | None = None
    #: the best model's score at election (or taken over by ``set_best``)
    baseline: float | None = None
    elected_at: datetime | None = None
    #: training jobs of the current retraining (empty in MONITORING)
    jobs: tuple[str, ...] = ()
    #: who holds the field's training lock, since when (None: free)
    lock_owner: str | None = None
    locked_at: datetime | None = None
    next_check_at: datetime | None = None
    #: why the field last changed state (free text, for status pages)
    reason: str = ""
    updated_at: datetime | None = None


class FieldStateRepository(ABC):
    """Where field states and score histories live."""

    @abstractmethod
    def get(self, field: str) -> FieldState | None:
        """The field's state, None if it was never saved."""

    @abstractmethod
    def save(self, state: FieldState) -> None:
        """Insert or replace the state of ``state.field``."""

    @abstractmethod
    def all(self) -> list[FieldState]:
        """Every saved state, by field name."""

    @abstractmethod
    def add_score(self, row: ScoreRow) -> None:
        """Append a score to the history."""

    @abstractmethod
    def scores(self, field: str, model_id: str | None = None) -> list[ScoreRow]:
        """The field's score history (optionally one model's), oldest first."""


class InMemoryFieldStateRepository(FieldStateRepository):
    """Dictionaries and a list; insertion order breaks ties of ``recorded_at``."""

    def __init__(self) -> None:
        self._states: dict[str, FieldState] = {}
        self._scores: list[ScoreRow] = []

    def get(self, field: str) -> FieldState | None:
        return self._states.get(field)

    def save(self, state: FieldState) -> None:
        self._states[state.field] = state

    def all(self) -> list[FieldState]:
        return [self._states[f] for f in sorted(self._states)]

    def add_score(self, row: ScoreRow) -> None:
        if row.trigger not in SCORE_TRIGGERS:
            raise ValueError(f"unknown score trigger {row.trigger!r}")
        self._scores.append(row)

    def scores(self, field: str, model_id: str | None = None) -> list[ScoreRow]:
        rows = [
            r
            for r in self._scores
            if r.domain == DOMAIN
            and r.scope == field
            and (model_id is None or r.model_id == model_id)
        ]
        return sorted(rows, key=lambda r: r.recorded_at)  # stable: insertion order on ties
