"""Batch training without Kafka: scores, versions, artifacts, the promotion gate, bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import joblib
import pytest

from ml.metrics import pooled_naive_mae, score
from ml.registry.store import Store
from ml.training.runner import TrainingRunner
from ml.training.versioning import load_model, next_version, write_artifact
from tests.training_data import seed_demand

TODAY = date(2026, 11, 22)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.from_url(f"sqlite:///{tmp_path / 'train.db'}")


def runner(store: Store, tmp_path: Path) -> TrainingRunner:
    return TrainingRunner(
        store, tmp_path / "models", clock=lambda: datetime(2026, 11, 22, 12, tzinfo=UTC)
    )


def test_scores_handle_zero_actuals_and_mase() -> None:
    s = score([0, 2, 4], [1, 2, 2], scale=2.0)
    assert s["mae"] == pytest.approx(1.0)
    assert s["mape"] == pytest.approx(0.25)  # zero actual excluded: (0 + 0.5) / 2
    assert s["wape"] == pytest.approx(3 / 6)
    assert s["mase"] == pytest.approx(0.5)
    assert score([0, 0], [1, 1])["mape"] is None
    assert pooled_naive_mae([[1, 2, 3]], season=12) == pytest.approx(1.0)


def test_versions() -> None:
    assert next_version(None, major=1, same_model=True, today=TODAY) == "v1.0.0-20261122"
    assert next_version("v1.0.0-20261101", major=1, same_model=True, today=TODAY) == (
        "v1.0.1-20261122"
    )
    assert next_version("v1.0.4-20261101", major=1, same_model=False, today=TODAY) == (
        "v1.1.0-20261122"
    )
    assert next_version("v1.3.4-20261101", major=2, same_model=True, today=TODAY) == (
        "v2.0.0-20261122"
    )


def test_artifact_write_is_atomic(tmp_path: Path) -> None:
    path = write_artifact({"a": 1}, tmp_path / "m" / "model_v1.pkl")
    assert joblib.load(path) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["model_v1.pkl"]


def test_first_job_promotes_then_identical_retrain_is_rejected(store: Store, tmp_path) -> None:
    seed_demand(store)
    run = runner(store, tmp_path)
    first = run.run(store.jobs.create_job("demand", "global", "manual"))
    assert first.status == "completed" and first.promoted, first.reason
    row = store.models.get_version("demand", "global", first.version)
    assert row.status == "active" and Path(row.artifact_path).exists()
    assert row.train_samples > 0 and row.test_samples > 0
    assert row.total_samples == row.train_samples + row.test_samples
    assert row.segments_covered == 8
    assert {"mae", "rmse", "mape", "r2", "wape", "mase"} <= set(row.metrics)
    second = run.run(store.jobs.create_job("demand", "global", "manual"))
    assert second.status == "completed" and not second.promoted
    assert "does not beat active" in second.reason
    assert store.models.get_version("demand", "global", second.version).status == "rejected"
    assert store.models.active_version("demand") == first.version


def test_insufficient_data_and_bad_ranges_fail_with_the_documented_reason(
    store: Store, tmp_path
) -> None:
    run = runner(store, tmp_path)
    empty = run.run(store.jobs.create_job("demand", "global", "manual"))
    assert empty.status == "failed" and "No sales observations" in empty.reason
    seed_demand(store, months=8)
    short = run.run(store.jobs.create_job("demand", "global", "manual"))
    assert short.reason == (
        "Insufficient training data. Minimum 12 months of transaction history required."
    )
    bad = store.jobs.create_job(
        "demand", "global", "manual", start_date=date(2023, 5, 1), end_date=date(2023, 1, 1)
    )
    assert run.run(bad).reason == "end_date must be after start_date"
    assert store.jobs.get_job(bad.id).status == "failed"
    assert store.jobs.get_job(bad.id).error == "end_date must be after start_date"


def test_artifacts_can_live_in_the_database(store: Store, tmp_path) -> None:
    seed_demand(store)
    run = TrainingRunner(store, tmp_path / "unused", artifacts_in_db=True)
    first = run.run(store.jobs.create_job("demand", "global", "manual"))
    row = store.models.get_version("demand", "global", first.version)
    assert first.promoted and row.artifact_path is None
    assert not (tmp_path / "unused").exists()
    assert load_model(store, "demand", "global", first.version).algorithm == row.algorithm
    second = run.run(store.jobs.create_job("demand", "global", "manual"))  # gate loads from the DB
    assert second.status == "completed" and "does not beat active" in second.reason
