"""The network batch trainer: training set per field from stored windows, time-ordered split,
persistence first, LightGBM, online replay; the existing TrainingRunner runs it."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from millrace.importers.simulate import simulate_network
from ml.metrics import score
from ml.network.configs import ModelConfig
from ml.network.domain import NetworkDomain
from ml.network.training import (
    NetworkTrainer,
    Persistence,
    torch_available,
    windows_from_observations,
)
from ml.observations import combine
from ml.training.errors import ExtraNotInstalled, TrainingDataError, UnknownScope

START = datetime(2024, 3, 1, tzinfo=UTC)


def observations(minutes: int = 90, cells: int = 4, seed: int = 1, window: int = 60) -> list:
    source = simulate_network(seed=seed, start=START, seconds=minutes * 60, cells=cells)
    domain = NetworkDomain(window)
    return list(combine(d for r in source.records() for d in domain.observe(r.event)).values())


@pytest.fixture(scope="module")
def obs() -> list:
    return observations()


def test_for_scope_takes_a_config_id_or_a_field() -> None:
    by_id = NetworkTrainer.for_scope("rsrp-river_linear")
    assert (by_id.config.id, by_id.field, by_id.architectures) == (
        "rsrp-river_linear",
        "rsrp",
        ["river_linear"],
    )
    by_field = NetworkTrainer.for_scope("dl_bitrate")
    assert by_field.config.id == "dl_bitrate-lightgbm"
    expected = ["lightgbm"] + (["ann", "lstm"] if torch_available() else [])
    assert [str(a) for a in by_field.architectures] == expected
    algorithms = [c.algorithm for c in by_field.candidates()]
    assert algorithms == ["persistence", *expected]  # the baseline first
    with pytest.raises(UnknownScope, match="Unknown scope: network/snr"):
        NetworkTrainer.for_scope("snr")


def test_windows_merge_stored_windows_exactly(obs: list) -> None:
    one = {(c, i): m for c, i, m in windows_from_observations(obs, 60, 60)}
    five = {(c, i): m for c, i, m in windows_from_observations(obs, 300, 60)}
    cell = "SIM-000"
    first = min(i for c, i in five if c == cell)
    minutes = [m for (c, i), m in one.items() if c == cell and i // 5 == first]
    counts = [
        r.fields["rsrp"].count
        for r in obs
        if r.series_key == cell and int(r.period_start.timestamp()) // 300 == first
    ]
    expected = sum(m["rsrp"] * n for m, n in zip(minutes, counts, strict=True)) / sum(counts)
    assert five[(cell, first)]["rsrp"] == pytest.approx(expected)
    with pytest.raises(TrainingDataError, match="not a multiple"):
        windows_from_observations(obs, 90, 60)


def test_training_set_is_split_in_time_80_20(obs: list) -> None:
    data = NetworkTrainer.for_scope("rsrp").training_set_from(obs)
    periods = sorted(set(data.train["target"]) | set(data.test["target"]))
    assert data.train["target"].max() < data.test["target"].min()
    assert len(set(data.test["target"])) == round(len(periods) * 0.2)
    assert data.target == "rsrp" and data.segments == 4
    assert data.info["cold_rows"] == 4  # each cell's first window
    assert not data.train.isna().any().any()  # missing values imputed explicitly
    assert data.scale == pytest.approx(np.mean(np.abs(data.train["rsrp"] - data.train["last"])))
    fixed = NetworkTrainer.for_scope("rsrp").training_set_from(obs, test_periods=10)
    assert fixed.test["target"].nunique() == 10


def test_too_little_data_fails_with_a_clear_reason() -> None:
    trainer = NetworkTrainer.for_scope("rsrp")
    with pytest.raises(TrainingDataError, match="No network observations"):
        trainer.training_set_from([])
    with pytest.raises(TrainingDataError, match="Insufficient training data. Minimum 20 windows"):
        trainer.training_set_from(observations(minutes=10))
    with pytest.raises(TrainingDataError, match="Minimum 500 windows"):
        trainer.training_set_from(observations(minutes=30), min_periods=500)


@pytest.mark.parametrize("scope", ["rsrp", "rsrp-river_linear", "dl_bitrate-river_forest"])
def test_candidates_fit_predict_pickle_and_beat_nothing_by_construction(obs, scope) -> None:
    trainer = NetworkTrainer.for_scope(scope)
    data = trainer.training_set_from(obs)
    results = {}
    for candidate in trainer.candidates():
        candidate.fit(data.train)
        predicted = candidate.predict(data.test)
        assert predicted.shape == (len(data.test),) and np.isfinite(predicted).all()
        restored = pickle.loads(pickle.dumps(candidate))
        assert np.allclose(restored.predict(data.test), predicted)
        results[candidate.algorithm] = score(data.y_test, predicted)
    assert isinstance(trainer.candidates()[0], Persistence)
    persistence = results["persistence"]
    assert persistence["mae"] == pytest.approx(
        np.mean(np.abs(data.test[data.target] - data.test["last"]))
    )
    # the simulated rsrp is an AR(1) around each cell's mean: learners beat persistence
    if trainer.field == "rsrp":
        best = min(v["rmse"] for k, v in results.items() if k != "persistence")
        assert best < persistence["rmse"]


def test_a_neural_architecture_without_torch_fails_the_job_clearly(monkeypatch) -> None:
    import ml.network.training as training

    monkeypatch.setattr(training, "torch_available", lambda: False)
    config = ModelConfig(
        id="x-ann", architecture="ann", input_fields=("rsrp",), output_fields=("rsrp",)
    )
    trainer = NetworkTrainer.for_scope("x-ann", [config])
    needs = r"Extra not installed: architecture ann \(PyTorch\) needs the optional extra 'torch'"
    with pytest.raises(ExtraNotInstalled, match=needs):
        trainer.candidates()
    assert [str(a) for a in NetworkTrainer.for_scope("rsrp").architectures] == ["lightgbm"]


def test_the_existing_training_runner_runs_a_network_job(tmp_path: Path, monkeypatch) -> None:
    from ml.registry.store import Store
    from ml.training.runner import TrainingRunner

    store = Store.from_url(f"sqlite:///{tmp_path / 'net.db'}")
    try:
        store.stream.apply_observations(observations(minutes=120, cells=3, seed=4))
        # the domain hands out the trainer of the job's scope (default configs: none stored)
        runner = TrainingRunner(store, tmp_path / "models", min_periods=12)
        outcome = runner.run(store.jobs.create_job("network", "rsrp", "manual"))
        assert outcome.status == "completed", outcome.reason
        algorithms = [c.algorithm for c in outcome.candidates]
        assert algorithms[:2] == ["persistence", "lightgbm"]
        version = store.models.get_version("network", "rsrp", outcome.version)
        assert version.test_samples > 0 and version.segments_covered == 3
        assert set(outcome.metrics) >= {"mae", "rmse", "mape", "r2"}
    finally:
        store.close()


def test_dates_limit_the_training_set(tmp_path: Path) -> None:
    class FakeSeries:
        def __init__(self) -> None:
            self.calls = []

        def observations(self, domain, start=None, end=None):
            self.calls.append((domain, start, end))
            return observations(minutes=60)

    class FakeStore:
        def __init__(self) -> None:
            self.series = FakeSeries()
            self.calls = self.series.calls

    fake = FakeStore()
    day = START.date()
    NetworkTrainer.for_scope("rsrp").training_set(fake, day, day + timedelta(days=1), 12)
    assert fake.calls == [("network", START, START + timedelta(days=1))]
    with pytest.raises(TrainingDataError, match="end_date must be after start_date"):
        NetworkTrainer.for_scope("rsrp").training_set(fake, day, day, 12)
