"""Seed a store with simulated demand observations (for trainer tests)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from millrace.importers.simulate import simulate_demand, simulate_network
from ml.domains import get_domain
from ml.network.configs import DEFAULT_CONFIGS
from ml.network.domain import NetworkDomain
from ml.observations import combine
from ml.registry.store import Store
from ml.training.runner import JobOutcome, TrainingRunner


def seed_demand(store: Store, *, months: int = 30, segments: int = 8, seed: int = 3) -> int:
    """Fold ``months`` of simulated contracts into the store; return the number of events."""
    domain = get_domain("demand")
    source = simulate_demand(seed=seed, start=date(2022, 1, 1), months=months, segments=segments)
    deltas = [d for record in source.records() for d in domain.observe(record.event)]
    store.stream.apply_observations(deltas)
    return store.series.count_events("demand")


def seed_network(
    store: Store, model_dir: Path, *, seed: int, start: datetime, minutes: int,
    model: str = "rsrp-lightgbm",
) -> JobOutcome:  # fmt: skip
    """Simulated measurements of 3 cells over ``minutes`` folded into ``store`` (1-minute
    windows), the default configs, and a first version of ``model`` trained and live."""
    source = simulate_network(seed=seed, start=start, seconds=minutes * 60, cells=3)
    domain = NetworkDomain(60)
    store.stream.apply_observations(
        list(combine(d for r in source.records() for d in domain.observe(r.event)).values())
    )
    store.network.seed_configs(list(DEFAULT_CONFIGS))
    outcome = TrainingRunner(store, model_dir, min_periods=12).run(
        store.jobs.create_job("network", model, "manual")
    )
    assert outcome.status == "completed", outcome.reason
    if not outcome.promoted:
        store.models.record_activation("network", model, outcome.version, reason="t", actor="t")
    return outcome
