"""Helpers for stream tests: publish simulated records, read a worker's final state."""

from __future__ import annotations

from collections import Counter
from datetime import date

from millrace.importers.simulate import simulate_demand
from millrace.kafka import EventProducer, ensure_topics
from ml.domains import get_domain
from ml.registry.store import Store
from ml.streaming import PartitionProcessor, statistics_rows
from tests.fixtures.broker import deliver, settings_from


def events(months: int = 48, segments: int = 20) -> list:
    """Simulated contracts (x2 drift on some segments from 2024) in publication order."""
    source = simulate_demand(
        seed=5,
        start=date(2021, 1, 1),
        months=months,
        segments=segments,
        trend=0.0,
        base_rate=60.0,
        drift_at=date(2024, 1, 1),
    )
    return list(source.records())


def publish(env: dict, records: list) -> Store:
    settings = settings_from(env)
    ensure_topics(settings)
    producer = EventProducer(settings)
    for record in records:
        producer.publish(settings.topic_sales, record.key, record.event)
    assert deliver(producer) == 0 and producer.failed == 0
    return Store.from_url(env["DATABASE_URL"])


def expected_counts(records: list) -> Counter:
    """Events per (series, month) that ``records`` must add up to, counted once each."""
    domain = get_domain("demand")
    counts: Counter = Counter()
    for record in records:
        for delta in domain.observe(record.event):
            counts[(delta.series_key, delta.period_start)] += delta.n_events
    return counts


def stored_counts(store: Store) -> Counter:
    """Events per (series, month) in the store."""
    rows = store.series.observations("demand")
    return Counter({(r.series_key, r.period_start): r.n_events for r in rows})


def final_state(store: Store, consumer: str) -> dict:
    rows = store.series.observations("demand")
    observations = {
        (r.series_key, r.period_start): (r.n_events, {k: v.count for k, v in r.fields.items()})
        for r in rows
    }
    # float sums of prices: the same values added in another grouping differ in the last bits
    sums = {(r.series_key, r.period_start, k): v.total for r in rows for k, v in r.fields.items()}
    states = {
        tp: PartitionProcessor.loads(c.state.blob)
        for tp, c in store.stream.checkpoints(consumer).items()
        if c.state
    }
    last = max(p.book.closed_through for p in states.values())
    # the statistics rows are the stored states' statistics (written in the same transaction)
    stored_stats = {}
    for (topic, partition), processor in states.items():
        rows = store.stream.statistics(consumer, topic)
        stored = {(r.scope, r.name): r.value for r in rows if r.partition == partition}
        assert stored == statistics_rows(processor), f"statistics rows of {topic}[{partition}]"
        stored_stats[partition] = {
            scope: v for (scope, name), v in stored.items() if name == "fields"
        }
    return {
        "observations": observations,
        "sums": sums,
        "metrics": {tp[1]: p.forecaster.metrics() for tp, p in states.items()},
        "drift_stats": {
            tp[1]: {k: m.stats()["fields"] for k, m in p.monitors.items()}
            for tp, p in states.items()
        },
        "stored_stats": stored_stats,
        "drift_events": sorted(
            e.event_id for e in store.monitoring.drift_events("demand", limit=10_000)
        ),
        "forecasts": sorted(
            (f.series_key, f.period_start, round(f.value, 9))
            for key in {k for k, _ in observations}
            for f in store.series.forecasts("demand", key)
            if f.period_start > last
        ),
    }
