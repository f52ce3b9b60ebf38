"""Exactly-once effect: SIGKILL the streams worker at three random points of a 100k+ event
replay, restart it each time; the final observations, model state and drift statistics equal
those of a run without kills."""

from __future__ import annotations

import os
import random
from datetime import date

import pytest

from millrace.importers.simulate import simulate_demand
from millrace.kafka import EventProducer, ensure_topics
from ml.registry.store import Store
from ml.streaming import PartitionProcessor
from tests.fixtures.broker import settings_from, wait_until

pytestmark = pytest.mark.integration


def events() -> list:
    source = simulate_demand(
        seed=5,
        start=date(2021, 1, 1),
        months=48,
        segments=20,
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
    assert producer.flush() == 0 and producer.failed == 0
    return Store.from_url(env["DATABASE_URL"])


def final_state(store: Store, consumer: str) -> dict:
    rows = store.observations("demand")
    observations = {
        (r.series_key, r.period_start): (r.n_events, {k: v.count for k, v in r.fields.items()})
        for r in rows
    }
    # float sums of prices: the same values added in another grouping differ in the last bits
    sums = {(r.series_key, r.period_start, k): v.total for r in rows for k, v in r.fields.items()}
    states = {
        tp: PartitionProcessor.loads(blob)
        for tp, (_, blob) in store.checkpoints(consumer).items()
        if blob
    }
    last = max(p.book.closed_through for p in states.values())
    return {
        "observations": observations,
        "sums": sums,
        "metrics": {tp[1]: p.forecaster.metrics() for tp, p in states.items()},
        "drift_stats": {
            tp[1]: {k: m.stats()["fields"] for k, m in p.monitors.items()}
            for tp, p in states.items()
        },
        "drift_events": sorted(e.event_id for e in store.drift_events("demand", limit=10_000)),
        "forecasts": sorted(
            (f.series_key, f.period_start, round(f.value, 9))
            for key in {k for k, _ in observations}
            for f in store.forecasts("demand", key)
            if f.period_start > last
        ),
    }


def test_three_sigkills_leave_the_same_state_as_no_kill(make_env, spawn, tmp_path) -> None:
    records = events()
    total = len(records)
    assert total >= 100_000

    clean_env = make_env(DATABASE_URL=f"sqlite:///{tmp_path / 'clean.db'}")
    clean = publish(clean_env, records)
    worker = spawn(["streams", "--loglevel", "warning"], clean_env)
    wait_until(lambda: clean.count_events("demand") == total, 300, 0.5)
    worker.stop()

    env = make_env(DATABASE_URL=f"sqlite:///{tmp_path / 'killed.db'}")
    store = publish(env, records)
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    points = sorted(random.Random(seed).sample(range(total // 10, total * 9 // 10), 3))
    print(f"CRASH_SEED={seed} kill points {points}")
    worker = spawn(["streams", "--loglevel", "warning"], env)
    for point in points:
        wait_until(lambda p=point: store.count_events("demand") >= p, 300, 0.05)
        worker.kill()
        worker = spawn(["streams", "--loglevel", "warning"], env)
    wait_until(lambda: store.count_events("demand") == total, 300, 0.5)
    worker.stop()

    expected = final_state(clean, clean_env["STREAMS_APP_ID"])
    actual = final_state(store, env["STREAMS_APP_ID"])
    assert actual["observations"] == expected["observations"]
    assert actual["sums"] == pytest.approx(expected["sums"], rel=1e-12)
    assert actual["metrics"] == expected["metrics"]
    assert actual["drift_stats"] == expected["drift_stats"]
    assert actual["drift_events"] == expected["drift_events"]
    assert actual["forecasts"] == expected["forecasts"]
