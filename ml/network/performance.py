"""Performance per output field: evaluate every model, elect the best, monitor the best.

* :meth:`PerformanceTracker.evaluate` scores every model of the field on one metric (``rmse``,
  ``mae``, ``mape`` or ``r2``), elects the best (lowest error; highest R²; ties go to the
  earlier model in the scorer's order), records the winner's score as the field's *baseline*,
  and appends every score to the history with trigger ``evaluate``.
* :meth:`PerformanceTracker.set_best` overrides the best model without scoring anything; the
  baseline becomes that model's latest recorded score on the field's metric (None without one).
* :meth:`PerformanceTracker.monitor` re-scores the best model only (trigger ``monitor`` or
  ``auto_monitor``), records it with the baseline, and never moves ``best`` or the baseline.
* :meth:`PerformanceTracker.history`: the field's scores, oldest first.

How a model is scored (on which recent windows, by which artifact) is the
:class:`ModelScorer`'s business; state and history live in a
:class:`~ml.network.state.FieldStateRepository`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ml.network.state import DOMAIN, FieldState, FieldStateRepository
from ml.registry.entities import ScoreRow

__all__ = [
    "METRICS",
    "Election",
    "EvaluationError",
    "ModelScorer",
    "MonitorResult",
    "NoBestModel",
    "NotElected",
    "PerformanceTracker",
    "UnknownField",
    "UnknownModel",
    "better",
]

#: Metrics a field can be evaluated on; R² is the only one where higher is better.
METRICS = ("rmse", "mae", "mape", "r2")


class UnknownField(LookupError):
    """The field has no models (API: 404)."""


class UnknownModel(LookupError):
    """The model does not exist or is not a model of this field (API: 404)."""


class NotElected(LookupError):
    """No best model was elected for the field yet (API: 404 naming the field)."""


class NoBestModel(ValueError):
    """An operation needs a best model and the field has none (API: 422)."""


class EvaluationError(RuntimeError):
    """No model of the field could be scored."""


class ModelScorer(ABC):
    """The models of each field and how to score one of them now."""

    @abstractmethod
    def models(self, field: str) -> list[str]:
        """Model ids of ``field`` (e.g. the ids of the configs forecasting it)."""

    @abstractmethod
    def score(self, field: str, model_id: str, metric: str) -> float:
        """The model's current score on ``metric`` (raises when it cannot be scored)."""


@dataclass(frozen=True, slots=True)
class Election:
    """Outcome of an evaluation."""

    field: str
    metric: str
    best_model_id: str
    baseline: float
    scores: dict[str, float]
    #: models that could not be scored, with the reason
    failed: dict[str, str]
    elected_at: datetime


@dataclass(frozen=True, slots=True)
class MonitorResult:
    """A re-score of the best model against the field's baseline."""

    field: str
    model_id: str
    metric: str
    score: float
    baseline: float | None
    trigger: str
    recorded_at: datetime


def _check_metric(metric: str) -> str:
    name = metric.lower()
    if name not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    return name


def better(a: float, b: float, metric: str) -> bool:
    """Whether score ``a`` is strictly better than ``b`` on ``metric``."""
    return a > b if _check_metric(metric) == "r2" else a < b


class PerformanceTracker:
    """Election, override, monitoring and history of every field's models."""

    def __init__(
        self,
        repository: FieldStateRepository,
        scorer: ModelScorer,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.repository = repository
        self.scorer = scorer
        self.clock = clock

    # --- reading -----------------------------------------------------------------------------
    def models(self, field: str) -> list[str]:
        models = self.scorer.models(field)
        if not models:
            raise UnknownField(f"no models forecast the field {field!r}")
        return models

    def state(self, field: str) -> FieldState:
        """The field's state (a fresh MONITORING one before anything happened)."""
        self.models(field)
        return self.repository.get(field) or FieldState(field)

    def best(self, field: str) -> FieldState:
        """The field's state with its elected best model (:class:`NotElected` otherwise)."""
        state = self.state(field)
        if state.best_model_id is None:
            raise NotElected(f"no best model elected for the field {field!r} yet")
        return state

    def history(self, field: str, model_id: str | None = None) -> list[ScoreRow]:
        """Scores of the field (or of one of its models), oldest first."""
        self.models(field)
        return self.repository.scores(field, model_id)

    # --- commands ----------------------------------------------------------------------------
    def evaluate(self, field: str, metric: str = "rmse", trigger: str = "evaluate") -> Election:
        """Score every model of ``field`` on ``metric``, elect the best, record the baseline."""
        metric = _check_metric(metric)
        models = self.models(field)
        scores: dict[str, float] = {}
        failed: dict[str, str] = {}
        for model_id in models:
            try:
                value = float(self.scorer.score(field, model_id, metric))
            except Exception as exc:  # noqa: BLE001 - one model failing does not stop the rest
                failed[model_id] = f"{type(exc).__name__}: {exc}"
                continue
            if math.isnan(value):
                failed[model_id] = "score is NaN"
                continue
            scores[model_id] = value
        if not scores:
            raise EvaluationError(f"no model of {field!r} could be scored: {failed}")
        best = next(iter(scores))
        for model_id, value in scores.items():
            if better(value, scores[best], metric):
                best = model_id
        at = self.clock()
        baseline = scores[best]
        for model_id, value in scores.items():
            self.repository.add_score(
                ScoreRow(DOMAIN, field, model_id, metric, value, baseline, trigger, at)
            )
        state = replace(
            self.state(field),
            metric=metric,
            best_model_id=best,
            baseline=baseline,
            elected_at=at,
            updated_at=at,
        )
        self.repository.save(state)
        return Election(field, metric, best, baseline, scores, failed, at)

    def set_best(self, field: str, model_id: str) -> FieldState:
        """Make ``model_id`` the best without scoring; its latest recorded score on the
        field's metric becomes the baseline (None when it has none)."""
        if model_id not in self.models(field):
            raise UnknownModel(f"model {model_id!r} is not a model of the field {field!r}")
        state = self.state(field)
        recorded = [
            r
            for r in self.repository.scores(field, model_id)
            if r.metric == state.metric and r.trigger != "online"
        ]
        at = self.clock()
        state = replace(
            state,
            best_model_id=model_id,
            baseline=recorded[-1].score if recorded else None,
            elected_at=at,
            updated_at=at,
        )
        self.repository.save(state)
        return state

    def monitor(self, field: str, trigger: str = "monitor") -> MonitorResult:
        """Re-score the best model only; ``best`` and the baseline never move."""
        if trigger not in ("monitor", "auto_monitor"):
            raise ValueError(f"monitor trigger must be monitor or auto_monitor, not {trigger!r}")
        state = self.state(field)
        if state.best_model_id is None:
            raise NoBestModel(f"the field {field!r} has no best model to monitor")
        value = float(self.scorer.score(field, state.best_model_id, state.metric))
        at = self.clock()
        self.repository.add_score(
            ScoreRow(
                DOMAIN, field, state.best_model_id, state.metric, value, state.baseline, trigger, at
            )
        )
        return MonitorResult(
            field, state.best_model_id, state.metric, value, state.baseline, trigger, at
        )
