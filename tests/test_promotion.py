"""The promotion rule, domain-free: the first version of a scope goes live whichever candidate
is best (the baseline too, ties included), a later one only if it beats the live version
re-scored on the same window; every job stores its outcome and a reason naming every
candidate with its score."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from ml.domains.base import Domain
from ml.registry.store import Store
from ml.training.base import DomainTrainer, TrainingSet
from ml.training.errors import TrainingDataError
from ml.training.runner import TrainingRunner
from tests.toy_domain import ToyReading

DAYS = [date(2026, 1, d) for d in range(1, 11)]


class Constant:
    """Predicts ``value`` everywhere (pickles: a module-level class)."""

    features: ClassVar[list[str]] = []

    def __init__(self, algorithm: str, value: float) -> None:
        self.algorithm, self.value = algorithm, value

    def fit(self, train: pd.DataFrame) -> Constant:
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return np.full(len(rows), self.value)


class FixedTrainer(DomainTrainer):
    """Ten days of a constant 10; the candidates are what the test says."""

    metric = "mae"
    baseline = "last_value"

    def __init__(self, candidates: list[Constant], fail: str = "") -> None:
        self._candidates, self._fail = candidates, fail

    def training_set(
        self,
        store: Any,
        start: date | None,
        end: date | None,
        min_periods: int,
        test_periods: int | None = None,
    ) -> TrainingSet:
        if self._fail:
            raise TrainingDataError(self._fail)
        frame = pd.DataFrame({"day": DAYS, "value": [10.0] * len(DAYS)})
        return TrainingSet(frame[:8], frame[8:].reset_index(drop=True), "value", None,
                           DAYS[:8], DAYS[8:], 1)  # fmt: skip

    def candidates(self) -> list[Constant]:
        # the baseline is not first on purpose: its name comes from the trainer
        return [Constant(c.algorithm, c.value) for c in self._candidates]


class Fixed(Domain):
    name: ClassVar[str] = "fixed"
    topic_setting: ClassVar[str] = ""
    event_model: ClassVar[type] = ToyReading

    def __init__(self) -> None:
        self.next: FixedTrainer = FixedTrainer([])

    def key(self, event: Any) -> str:
        return "k"

    def observe(self, event: Any) -> list:
        return []

    def trainer(self, scope: str = "global", store: object | None = None) -> DomainTrainer:
        return self.next


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Store, Fixed, TrainingRunner]:
    store = Store.from_url(f"sqlite:///{tmp_path / 'promotion.db'}")
    domain = Fixed()
    runner = TrainingRunner(
        store,
        tmp_path / "models",
        clock=lambda: datetime(2026, 11, 22, 12, tzinfo=UTC),
        domains={"fixed": domain},
    )
    return store, domain, runner


def run(store: Store, runner: TrainingRunner, scope: str = "global"):
    job = store.jobs.create_job("fixed", scope, "manual")
    return runner.run(job), job.id


def test_the_first_version_goes_live_even_when_the_baseline_is_best(setup) -> None:
    store, domain, runner = setup
    domain.next = FixedTrainer([Constant("wild", 30.0), Constant("last_value", 11.0)])
    outcome, job_id = run(store, runner)
    assert outcome.status == "completed" and outcome.promoted
    version = store.models.get_version("fixed", "global", outcome.version)
    assert version.status == "active" and version.algorithm == "last_value"
    assert store.models.active_version("fixed") == outcome.version
    job = store.jobs.get_job(job_id)
    assert (job.status, job.outcome, job.error) == ("completed", "promoted", None)
    assert "first version of fixed/global" in job.reason
    assert "last_value goes live" in job.reason
    assert "wild 20, last_value 1 (baseline)" in job.reason  # every candidate, its mae
    assert job.reason == outcome.reason == version.reason


def test_a_tie_with_the_baseline_still_puts_a_first_version_live(setup) -> None:
    store, domain, runner = setup
    domain.next = FixedTrainer([Constant("last_value", 12.0), Constant("learner", 12.0)])
    outcome, job_id = run(store, runner)
    assert outcome.promoted and store.jobs.get_job(job_id).outcome == "promoted"
    # a tie goes to the earlier candidate
    assert store.models.get_version("fixed", "global", outcome.version).algorithm == "last_value"


def test_later_versions_must_beat_the_live_one_on_the_same_window(setup) -> None:
    store, domain, runner = setup
    domain.next = FixedTrainer([Constant("last_value", 12.0), Constant("learner", 13.0)])
    first, _ = run(store, runner)
    # no better: rejected, and the job says so with the figures
    same, job_id = run(store, runner)
    job = store.jobs.get_job(job_id)
    assert not same.promoted and (job.status, job.outcome) == ("completed", "rejected")
    assert f"does not beat active {first.version}" in job.reason
    assert "last_value 2 (baseline), learner 3" in job.reason
    assert store.models.get_version("fixed", "global", same.version).status == "rejected"
    assert store.models.active_version("fixed") == first.version
    # better than the live one re-scored: promoted
    domain.next = FixedTrainer([Constant("last_value", 12.0), Constant("learner", 10.5)])
    better, job_id = run(store, runner)
    job = store.jobs.get_job(job_id)
    assert better.promoted and job.outcome == "promoted"
    assert f"learner mae 0.5 beats active {first.version}" in job.reason
    assert store.models.active_version("fixed") == better.version


def test_every_scope_has_its_own_first_version(setup) -> None:
    store, domain, runner = setup
    domain.next = FixedTrainer([Constant("last_value", 12.0)])
    run(store, runner, "a")
    outcome, _ = run(store, runner, "b")
    assert outcome.promoted and store.models.active_version("fixed", "b") == outcome.version


def test_a_failed_job_has_no_outcome_and_its_reason(setup) -> None:
    store, domain, runner = setup
    domain.next = FixedTrainer([], fail="Insufficient training data.")
    outcome, job_id = run(store, runner)
    job = store.jobs.get_job(job_id)
    assert outcome.status == "failed" and job.outcome is None
    assert job.error == job.reason == "Insufficient training data."
