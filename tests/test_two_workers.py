"""Two workers in one consumer group split the partitions; when one is killed the other takes
its partitions over with their state, and the result equals a single worker's."""

from __future__ import annotations

import re

import pytest

from millrace.kafka import EventProducer
from tests.fixtures.broker import deliver, settings_from, wait_for_events, wait_for_progress
from tests.stream_checks import events, final_state, publish

pytestmark = pytest.mark.integration


def last_assignment(log: str, topic: str) -> set[int]:
    """Partitions of ``topic`` in the worker's latest assignment table (Faust's log)."""
    found = re.findall(rf"\| {re.escape(topic)}\s+\| \{{([^}}]*)\}}", log)
    if not found:
        return set()
    parts: set[int] = set()
    for piece in found[-1].split(","):
        lo, _, hi = piece.strip().partition("-")
        parts.update(range(int(lo), int(hi or lo) + 1))
    return parts


def test_partitions_split_and_state_moves_on_takeover(make_env, spawn, tmp_path) -> None:
    records = events(segments=6)
    half = len(records) // 2
    total = len(records)

    clean_env = make_env(DATABASE_URL=f"sqlite:///{tmp_path / 'one.db'}")
    clean = publish(clean_env, records)
    worker = spawn(["streams"], clean_env)
    wait_for_events(clean, "demand", total, exact=True, interval=0.5, worker=worker)
    worker.stop()

    env = make_env(DATABASE_URL=f"sqlite:///{tmp_path / 'two.db'}")
    topic = env["TOPIC_SALES"]
    store = publish(env, records[:half])
    a, b = spawn(["streams"], env), spawn(["streams"], env)

    def split() -> bool:
        pa, pb = last_assignment(a.output(), topic), last_assignment(b.output(), topic)
        return bool(pa and pb and not pa & pb and pa | pb == {0, 1, 2, 3})

    wait_for_progress(split, lambda: (a.progress(), b.progress()))
    wait_for_events(store, "demand", half, exact=True, interval=0.5, worker=b)
    a.kill()
    producer = EventProducer(settings_from(env))
    for record in records[half:]:
        producer.publish(env["TOPIC_SALES"], record.key, record.event)
    assert deliver(producer) == 0
    wait_for_events(store, "demand", total, exact=True, interval=0.5, worker=b)
    assert last_assignment(b.output(), topic) == {0, 1, 2, 3}
    b.stop()

    expected = final_state(clean, clean_env["STREAMS_APP_ID"])
    actual = final_state(store, env["STREAMS_APP_ID"])
    assert expected["drift_events"], "the replay's drift must raise drift events to compare"
    for part in (
        "observations",
        "metrics",
        "drift_stats",
        "stored_stats",
        "drift_events",
        "forecasts",
    ):
        assert actual[part] == expected[part], part
    assert actual["sums"] == pytest.approx(expected["sums"], rel=1e-12)
