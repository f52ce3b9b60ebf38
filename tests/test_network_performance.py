"""Per-field performance: evaluate and elect, set-best, monitor, score history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ml.network.performance import (
    EvaluationError,
    ModelScorer,
    NoBestModel,
    NotElected,
    PerformanceTracker,
    UnknownField,
    UnknownModel,
    better,
)
from ml.network.state import FieldState, InMemoryFieldStateRepository, MonitoringState
from ml.registry.entities import ScoreRow


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class Scorer(ModelScorer):
    """Scores per (field, model, metric); an Exception value is raised."""

    def __init__(self, models: dict[str, list[str]], scores: dict) -> None:
        self._models = models
        self.scores = scores
        self.calls: list[tuple[str, str, str]] = []

    def models(self, field: str) -> list[str]:
        return list(self._models.get(field, []))

    def score(self, field: str, model_id: str, metric: str) -> float:
        self.calls.append((field, model_id, metric))
        value = self.scores[(field, model_id, metric)]
        if isinstance(value, Exception):
            raise value
        return value


MODELS = {"dl_bitrate": ["persistence", "linear", "lightgbm"], "rsrp": ["linear"]}
SCORES = {
    ("dl_bitrate", "persistence", "rmse"): 30.0,
    ("dl_bitrate", "linear", "rmse"): 20.0,
    ("dl_bitrate", "lightgbm", "rmse"): 25.0,
    ("dl_bitrate", "persistence", "r2"): 0.2,
    ("dl_bitrate", "linear", "r2"): 0.5,
    ("dl_bitrate", "lightgbm", "r2"): 0.6,
    ("dl_bitrate", "persistence", "mape"): 0.3,
    ("dl_bitrate", "linear", "mape"): 0.3,
    ("dl_bitrate", "lightgbm", "mape"): 0.4,
}


@pytest.fixture
def tracker() -> PerformanceTracker:
    return PerformanceTracker(InMemoryFieldStateRepository(), Scorer(MODELS, dict(SCORES)), Clock())


def test_better_knows_the_direction_of_each_metric() -> None:
    assert better(1.0, 2.0, "rmse") and better(1.0, 2.0, "MAE") and better(0.1, 0.2, "mape")
    assert better(0.9, 0.5, "r2") and not better(0.5, 0.5, "r2")
    with pytest.raises(ValueError, match="unknown metric"):
        better(1, 2, "smape")


def test_evaluate_scores_every_model_elects_the_lowest_error_and_records_the_baseline(
    tracker: PerformanceTracker,
) -> None:
    election = tracker.evaluate("dl_bitrate", "rmse")
    assert election.best_model_id == "linear"
    assert election.baseline == 20.0
    assert election.scores == {"persistence": 30.0, "linear": 20.0, "lightgbm": 25.0}
    state = tracker.best("dl_bitrate")
    assert (state.best_model_id, state.baseline, state.metric) == ("linear", 20.0, "rmse")
    assert state.elected_at == election.elected_at
    history = tracker.history("dl_bitrate")
    assert [(r.model_id, r.score, r.trigger, r.baseline) for r in history] == [
        ("persistence", 30.0, "evaluate", 20.0),
        ("linear", 20.0, "evaluate", 20.0),
        ("lightgbm", 25.0, "evaluate", 20.0),
    ]
    assert all(isinstance(r, ScoreRow) and r.domain == "network" for r in history)


def test_r2_elects_the_highest(tracker: PerformanceTracker) -> None:
    assert tracker.evaluate("dl_bitrate", "r2").best_model_id == "lightgbm"


def test_ties_go_to_the_earlier_model(tracker: PerformanceTracker) -> None:
    assert tracker.evaluate("dl_bitrate", "mape").best_model_id == "persistence"


def test_a_model_that_cannot_be_scored_is_skipped_and_reported(tracker) -> None:
    tracker.scorer.scores[("dl_bitrate", "linear", "rmse")] = RuntimeError("no artifact")
    election = tracker.evaluate("dl_bitrate", "rmse")
    assert election.best_model_id == "lightgbm"
    assert election.failed == {"linear": "RuntimeError: no artifact"}
    for model in MODELS["dl_bitrate"]:
        tracker.scorer.scores[("dl_bitrate", model, "rmse")] = RuntimeError("down")
    with pytest.raises(EvaluationError):
        tracker.evaluate("dl_bitrate", "rmse")
    assert tracker.best("dl_bitrate").best_model_id == "lightgbm"  # previous election kept


def test_unknown_metric_and_field(tracker: PerformanceTracker) -> None:
    with pytest.raises(ValueError, match="rmse, mae, mape, r2"):
        tracker.evaluate("dl_bitrate", "accuracy")
    with pytest.raises(UnknownField, match="'snr'"):
        tracker.evaluate("snr")
    with pytest.raises(UnknownField):
        tracker.history("snr")


def test_best_before_any_election_names_the_field(tracker: PerformanceTracker) -> None:
    with pytest.raises(NotElected, match="'dl_bitrate'"):
        tracker.best("dl_bitrate")


def test_set_best_overrides_without_scoring(tracker: PerformanceTracker) -> None:
    tracker.evaluate("dl_bitrate", "rmse")
    calls = len(tracker.scorer.calls)
    state = tracker.set_best("dl_bitrate", "lightgbm")
    assert len(tracker.scorer.calls) == calls
    assert (state.best_model_id, state.baseline) == ("lightgbm", 25.0)  # its latest score
    assert tracker.best("dl_bitrate").best_model_id == "lightgbm"
    assert len(tracker.history("dl_bitrate")) == 3  # nothing recorded


def test_set_best_without_a_recorded_score_has_no_baseline(tracker) -> None:
    state = tracker.set_best("dl_bitrate", "lightgbm")
    assert (state.best_model_id, state.baseline) == ("lightgbm", None)


def test_set_best_refuses_unknown_models_and_models_of_another_field(tracker) -> None:
    with pytest.raises(UnknownModel):
        tracker.set_best("dl_bitrate", "nope")
    with pytest.raises(UnknownModel):
        tracker.set_best("rsrp", "lightgbm")


def test_monitor_rescores_only_the_best_and_never_moves_best_or_baseline(tracker) -> None:
    with pytest.raises(NoBestModel):
        tracker.monitor("dl_bitrate")
    tracker.evaluate("dl_bitrate", "rmse")
    tracker.scorer.scores[("dl_bitrate", "linear", "rmse")] = 99.0  # much worse now
    tracker.scorer.calls.clear()
    result = tracker.monitor("dl_bitrate")
    assert tracker.scorer.calls == [("dl_bitrate", "linear", "rmse")]
    assert (result.model_id, result.score, result.baseline) == ("linear", 99.0, 20.0)
    state = tracker.best("dl_bitrate")
    assert (state.best_model_id, state.baseline) == ("linear", 20.0)
    auto = tracker.monitor("dl_bitrate", trigger="auto_monitor")
    assert auto.trigger == "auto_monitor"
    with pytest.raises(ValueError):
        tracker.monitor("dl_bitrate", trigger="evaluate")


def test_history_is_oldest_first_with_triggers_and_filters_by_model(tracker) -> None:
    tracker.evaluate("dl_bitrate", "rmse")
    tracker.monitor("dl_bitrate")
    tracker.monitor("dl_bitrate", trigger="auto_monitor")
    tracker.evaluate("dl_bitrate", "rmse")
    history = tracker.history("dl_bitrate")
    assert [r.trigger for r in history] == ["evaluate"] * 3 + ["monitor", "auto_monitor"] + [
        "evaluate"
    ] * 3
    assert [r.recorded_at for r in history] == sorted(r.recorded_at for r in history)
    linear = tracker.history("dl_bitrate", model_id="linear")
    assert [r.trigger for r in linear] == ["evaluate", "monitor", "auto_monitor", "evaluate"]
    assert tracker.history("rsrp") == []


def test_the_in_memory_repository_keeps_plain_frozen_states() -> None:
    repo = InMemoryFieldStateRepository()
    assert repo.get("rsrp") is None
    repo.save(FieldState("rsrp", best_model_id="x"))
    repo.save(FieldState("dl_bitrate"))
    assert [s.field for s in repo.all()] == ["dl_bitrate", "rsrp"]
    assert repo.get("rsrp").state is MonitoringState.MONITORING
    with pytest.raises(AttributeError):
        repo.get("rsrp").best_model_id = "y"  # type: ignore[misc]
    with pytest.raises(ValueError, match="trigger"):
        at = datetime(2024, 1, 1, tzinfo=UTC)
        repo.add_score(ScoreRow("network", "rsrp", "x", "rmse", 1.0, None, "manual", at))
