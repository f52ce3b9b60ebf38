"""The per-field monitoring state machine: degradation boundaries, retraining every model,
re-election, all jobs failing, online trigger, stale locks, next check time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ml.network.monitoring import FieldMonitor, JobGateway
from ml.network.performance import PerformanceTracker
from ml.network.state import InMemoryFieldStateRepository, MonitoringState
from ml.triggers import is_degraded
from tests.test_network_performance import Scorer

M, R, E = MonitoringState.MONITORING, MonitoringState.RETRAINING, MonitoringState.EVALUATING


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Jobs(JobGateway):
    def __init__(self) -> None:
        self.submitted: list[tuple[str, str, str]] = []
        self.triggers: list[str] = []
        self.statuses: dict[str, str] = {}

    def submit(
        self, field: str, model_id: str, reason: str, at: datetime, trigger: str = "degradation"
    ) -> str:
        job_id = f"job-{len(self.submitted) + 1}"
        self.submitted.append((field, model_id, reason))
        self.triggers.append(trigger)
        self.statuses[job_id] = "queued"
        return job_id

    def status(self, job_id: str) -> str:
        return self.statuses.get(job_id, "unknown")


MODELS = {"dl_bitrate": ["persistence", "linear", "lightgbm"]}


def scores(persistence: float, linear: float, lightgbm: float) -> dict:
    return {
        ("dl_bitrate", "persistence", "rmse"): persistence,
        ("dl_bitrate", "linear", "rmse"): linear,
        ("dl_bitrate", "lightgbm", "rmse"): lightgbm,
    }


@pytest.fixture
def world():
    clock = Clock()
    repo = InMemoryFieldStateRepository()
    scorer = Scorer(MODELS, scores(30.0, 20.0, 25.0))
    tracker = PerformanceTracker(repo, scorer, clock)
    jobs = Jobs()
    monitor = FieldMonitor(tracker, jobs, factor=1.5, interval=timedelta(seconds=300),
                           owner="me", clock=clock)  # fmt: skip
    tracker.evaluate("dl_bitrate", "rmse")  # linear elected, baseline 20
    return monitor, scorer, jobs, clock


# --- the degradation rule ----------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["rmse", "mae", "mape"])
def test_error_metrics_degrade_strictly_above_baseline_times_factor(metric: str) -> None:
    assert not is_degraded(1.5, 1.0, metric)  # exactly 1.5 x: not degraded
    assert is_degraded(1.51, 1.0, metric)
    assert not is_degraded(30.0, 20.0, metric)
    assert is_degraded(30.2, 20.0, metric)
    assert not is_degraded(0.0, 0.0, metric) and is_degraded(1e-9, 0.0, metric)


def test_r2_degrades_strictly_below_baseline_over_factor() -> None:
    assert not is_degraded(0.4, 0.6, "r2")  # exactly 0.6 / 1.5
    assert is_degraded(0.39, 0.6, "r2")
    assert not is_degraded(0.9, 0.6, "r2")
    # a baseline <= 0: "worse by the factor" is below baseline x factor
    assert not is_degraded(-0.2, -0.2, "r2") and not is_degraded(-0.3, -0.2, "r2")
    assert is_degraded(-0.31, -0.2, "r2")


def test_is_degraded_validates_its_inputs() -> None:
    with pytest.raises(ValueError):
        is_degraded(1.0, 1.0, "accuracy")
    with pytest.raises(ValueError):
        is_degraded(1.0, 1.0, "rmse", factor=0.9)
    with pytest.raises(ValueError):
        is_degraded(float("nan"), 1.0, "rmse")


# --- checks ------------------------------------------------------------------------------------
def test_score_exactly_at_the_limit_does_not_retrain(world) -> None:
    monitor, scorer, jobs, _ = world
    scorer.scores[("dl_bitrate", "linear", "rmse")] = 30.0  # 1.5 x 20
    assert monitor.check("dl_bitrate") is False
    assert monitor.status("dl_bitrate").state is M
    assert jobs.submitted == []
    assert monitor.tracker.history("dl_bitrate")[-1].trigger == "auto_monitor"


def test_score_just_past_the_limit_retrains_every_model_of_the_field(world) -> None:
    monitor, scorer, jobs, _ = world
    scorer.scores[("dl_bitrate", "linear", "rmse")] = 30.2  # 1.51 x 20
    assert monitor.check("dl_bitrate") is True
    status = monitor.status("dl_bitrate")
    assert status.state is R
    assert [m for _, m, _ in jobs.submitted] == ["persistence", "linear", "lightgbm"]
    assert status.active_jobs == ("job-1", "job-2", "job-3")
    assert "rmse 30.2 of linear worse than baseline 20 x 1.5" in status.reason
    state = monitor.tracker.state("dl_bitrate")
    assert state.lock_owner == "me"
    # a second check while retraining neither monitors nor submits again
    assert monitor.check("dl_bitrate") is False and len(jobs.submitted) == 3


def test_injected_degradation_goes_monitoring_retraining_evaluating_monitoring(world) -> None:
    monitor, scorer, jobs, clock = world
    seen = []
    save = monitor.repository.save
    monitor.repository.save = lambda s: (seen.append(s.state), save(s))[1]  # type: ignore

    scorer.scores[("dl_bitrate", "linear", "rmse")] = 50.0  # injected degradation
    assert monitor.check("dl_bitrate")
    jobs.statuses["job-1"] = "completed"
    jobs.statuses["job-2"] = "running"
    assert monitor.poll() == [] and monitor.status("dl_bitrate").state is R
    assert monitor.status("dl_bitrate").active_jobs == ("job-2", "job-3")
    jobs.statuses.update({"job-2": "completed", "job-3": "failed"})
    scorer.scores.update(scores(30.0, 24.0, 18.0))  # retrained models
    clock.advance(60)
    assert monitor.job_finished("job-3") is True

    status = monitor.status("dl_bitrate")
    assert status.state is M and status.active_jobs == ()
    assert (status.best_model_id, status.baseline) == ("lightgbm", 18.0)  # new election
    assert status.next_check_at == clock.now + timedelta(seconds=300)
    assert monitor.tracker.state("dl_bitrate").lock_owner is None
    dedup = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
    assert dedup[-4:] == [M, R, E, M]
    triggers = [r.trigger for r in monitor.tracker.history("dl_bitrate")]
    assert triggers == ["evaluate"] * 3 + ["auto_monitor"] + ["evaluate"] * 3


def test_the_streams_drift_retrains_every_model_with_trigger_drift(world) -> None:
    """The stream's drift request (taken by the trainer's hooks) uses the same machine."""
    monitor, scorer, jobs, _ = world
    seen = []
    save = monitor.repository.save
    monitor.repository.save = lambda s: (seen.append(s.state), save(s))[1]  # type: ignore
    assert monitor.retrain("dl_bitrate", "drift: 3 of 8 active cells changed", trigger="drift")
    assert jobs.triggers == ["drift"] * 3
    assert monitor.status("dl_bitrate").state is R
    assert monitor.status("dl_bitrate").reason.startswith("drift:")
    # a second drift request while retraining is ignored (no new jobs)
    assert monitor.retrain("dl_bitrate", "drift again", trigger="drift") is False
    assert len(jobs.submitted) == 3
    jobs.statuses.update({"job-1": "completed", "job-2": "completed", "job-3": "completed"})
    assert monitor.poll() == ["dl_bitrate"]
    assert monitor.status("dl_bitrate").state is M
    assert monitor.status("dl_bitrate").reason.startswith("elected ")
    dedup = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
    assert dedup[-3:] == [R, E, M]


def test_all_jobs_failing_returns_to_monitoring_with_the_old_election(world) -> None:
    monitor, scorer, jobs, _ = world
    scorer.scores[("dl_bitrate", "linear", "rmse")] = 50.0
    monitor.check("dl_bitrate")
    jobs.statuses.update({"job-1": "failed", "job-2": "cancelled", "job-3": "failed"})
    assert monitor.poll() == ["dl_bitrate"]
    status = monitor.status("dl_bitrate")
    assert status.state is M
    assert (status.best_model_id, status.baseline) == ("linear", 20.0)
    assert "all 3 retraining jobs failed" in status.reason
    assert monitor.tracker.state("dl_bitrate").lock_owner is None
    # monitoring goes on: the next check can retrain again
    assert monitor.check("dl_bitrate") is True


def test_evaluation_failing_after_retraining_keeps_the_previous_election(world) -> None:
    monitor, scorer, jobs, _ = world
    scorer.scores[("dl_bitrate", "linear", "rmse")] = 50.0
    monitor.check("dl_bitrate")
    for model in MODELS["dl_bitrate"]:
        scorer.scores[("dl_bitrate", model, "rmse")] = RuntimeError("no data")
    jobs.statuses.update({"job-1": "completed", "job-2": "completed", "job-3": "completed"})
    monitor.poll()
    status = monitor.status("dl_bitrate")
    assert status.state is M and status.best_model_id == "linear"
    assert status.reason.startswith("evaluation failed")


def test_no_check_before_an_election_and_next_check_from_the_interval() -> None:
    clock = Clock()
    tracker = PerformanceTracker(
        InMemoryFieldStateRepository(), Scorer(MODELS, scores(1, 1, 1)), clock
    )
    monitor = FieldMonitor(tracker, Jobs(), interval=timedelta(seconds=120), clock=clock)
    assert monitor.check("dl_bitrate") is False
    assert monitor.status("dl_bitrate").next_check_at == clock.now + timedelta(seconds=120)
    assert monitor.status("dl_bitrate").interval_seconds == 120.0
    assert monitor.status("dl_bitrate").factor == 1.5


def test_check_due_runs_only_fields_whose_time_has_come(world) -> None:
    monitor, scorer, _, clock = world
    monitor.check("dl_bitrate")
    scorer.scores[("dl_bitrate", "linear", "rmse")] = 50.0
    clock.advance(299)
    assert monitor.check_due(["dl_bitrate"]) == []
    assert monitor.status("dl_bitrate").state is M
    clock.advance(1)
    assert monitor.check_due(["dl_bitrate"]) == ["dl_bitrate"]


def test_the_online_score_of_the_best_model_triggers_at_once(world) -> None:
    monitor, _, jobs, _ = world
    assert not monitor.on_online_score("dl_bitrate", "lightgbm", "rmse", 99.0)  # not the best
    assert not monitor.on_online_score("dl_bitrate", "linear", "mae", 99.0)  # other metric
    assert not monitor.on_online_score("dl_bitrate", "linear", "rmse", 30.0)  # not degraded
    assert monitor.on_online_score("dl_bitrate", "linear", "rmse", 30.01)
    assert monitor.status("dl_bitrate").state is R and len(jobs.submitted) == 3
    assert monitor.status("dl_bitrate").reason.startswith("online rmse")


def test_stale_locks_are_cleared_at_start_and_interrupted_fields_resume(world) -> None:
    monitor, scorer, jobs, _ = world
    scorer.scores[("dl_bitrate", "linear", "rmse")] = 50.0
    crashed = FieldMonitor(monitor.tracker, jobs, owner="old-process", clock=monitor.clock)
    crashed.check("dl_bitrate")
    assert monitor.tracker.state("dl_bitrate").lock_owner == "old-process"
    # jobs still running: the field keeps RETRAINING, the lock is taken over
    assert monitor.start() == ["dl_bitrate"]
    state = monitor.tracker.state("dl_bitrate")
    assert (state.state, state.lock_owner) == (R, "me")
    # the jobs were lost with the crash (unknown to the job store): back to MONITORING
    jobs.statuses.clear()
    assert monitor.start() == []
    assert monitor.status("dl_bitrate").state is M
    assert monitor.tracker.state("dl_bitrate").lock_owner is None


def test_a_lock_left_in_monitoring_is_cleared_and_evaluating_resumes(world) -> None:
    monitor, scorer, _, _ = world
    repo = monitor.repository
    repo.save(replace(repo.get("dl_bitrate"), lock_owner="ghost", locked_at=monitor.clock()))
    assert monitor.retrain("dl_bitrate", "manual") is False  # locked
    assert monitor.start() == ["dl_bitrate"]
    assert monitor.tracker.state("dl_bitrate").lock_owner is None
    scorer.scores.update(scores(5.0, 20.0, 25.0))
    repo.save(replace(repo.get("dl_bitrate"), state=E))  # crashed while evaluating
    monitor.start()
    status = monitor.status("dl_bitrate")
    assert (status.state, status.best_model_id, status.baseline) == (M, "persistence", 5.0)


def test_settings_are_read_with_defaults() -> None:
    class Settings:
        monitoring_interval_seconds = 60

    tracker = PerformanceTracker(InMemoryFieldStateRepository(), Scorer(MODELS, {}))
    monitor = FieldMonitor.from_settings(Settings(), tracker, Jobs(), owner="x")
    assert (monitor.factor, monitor.interval) == (1.5, timedelta(seconds=60))
