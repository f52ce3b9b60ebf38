"""Seed a store with simulated demand observations (for trainer tests)."""

from __future__ import annotations

from datetime import date

from millrace.importers.simulate import simulate_demand
from ml.domains import get_domain
from ml.registry.store import Store


def seed_demand(store: Store, *, months: int = 30, segments: int = 8, seed: int = 3) -> int:
    """Fold ``months`` of simulated contracts into the store; return the number of events."""
    domain = get_domain("demand")
    source = simulate_demand(seed=seed, start=date(2022, 1, 1), months=months, segments=segments)
    deltas = [d for record in source.records() for d in domain.observe(record.event)]
    store.stream.apply_observations(deltas)
    return store.series.count_events("demand")
