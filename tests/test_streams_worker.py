"""The streams worker against a real broker: valid events become observations, bad ones go to
the dead-letter topic with a reason, and the worker keeps consuming."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from millrace.kafka import EventProducer, ensure_topics
from ml.periods import month_start
from ml.registry.store import Store
from schemas.events import SaleContractEvent
from tests.factories import invalid_payloads, sale
from tests.fixtures.broker import read_topic, settings_from, wait_for_events

pytestmark = pytest.mark.integration


def test_valid_events_stored_invalid_dead_lettered_worker_keeps_going(make_env, spawn) -> None:
    env = make_env(MAX_EVENT_BYTES="4096")
    settings = settings_from(env)
    ensure_topics(settings)
    store = Store.from_url(env["DATABASE_URL"])
    worker = spawn(["streams"], env)

    producer = EventProducer(settings)
    valid = [sale(i) for i in range(1000)]
    bad = invalid_payloads(4096)
    bad = (bad * 5)[:50]
    assert len({payload for _, payload in bad}) >= 6  # at least six different kinds of bad input
    for i, body in enumerate(valid):
        producer.publish(settings.topic_sales, f"seg-{i % 7}", orjson.dumps(body))
        if i % 20 == 0 and bad:
            producer.publish(settings.topic_sales, "bad", bad.pop()[1])
    while bad:
        producer.publish(settings.topic_sales, "bad", bad.pop()[1])
    assert producer.flush() == 0

    wait_for_events(store, "demand", 1000)

    expected: Counter[tuple[str, object]] = Counter()
    for body in valid:
        event = SaleContractEvent.model_validate(body)
        field = "sales" if event.contract_type == "SALE" else "purchases"
        expected[(event.segment_key, month_start(event.occurred_at), field)] += 1
    stored: Counter[tuple[str, object]] = Counter()
    for row in store.series.observations("demand"):
        for field in ("sales", "purchases"):
            if field in row.fields:
                stored[(row.series_key, row.period_start, field)] += row.fields[field].count
    assert stored == expected
    assert store.series.count_events("demand") == 1000

    letters = read_topic(
        settings.bootstrap_servers,
        settings.topic_dead_letter,
        settings.topic_partitions,
        50,
        settle=1.0,
    )
    records = [orjson.loads(m.value()) for m in letters]
    assert len(records) == 50
    assert all(r["reason"] and r["source_topic"] == settings.topic_sales for r in records)
    assert len({r["error_type"] for r in records}) >= 4
    assert len({r["event_id"] for r in records}) == 50

    # still consuming afterwards
    for i in range(1000, 1010):
        producer.publish(settings.topic_sales, "late", orjson.dumps(sale(i)))
    producer.flush()
    wait_for_events(store, "demand", 1010, exact=True)

    # a publisher re-sends five processed events: refused as duplicates, not counted again
    for i in range(5):
        producer.publish(settings.topic_sales, "again", orjson.dumps(sale(i)))
    producer.flush()
    letters = read_topic(
        settings.bootstrap_servers,
        settings.topic_dead_letter,
        settings.topic_partitions,
        55,
        settle=1.0,
    )
    kinds = Counter(orjson.loads(m.value())["error_type"] for m in letters)
    assert len(letters) == 55 and kinds["duplicate"] == 5
    assert store.series.count_events("demand") == 1010
    assert worker.alive(), worker.output()[-3000:]


def test_network_measurements_become_per_cell_windows(make_env, spawn) -> None:
    env = make_env(NETWORK_WINDOW_SECONDS="60")
    settings = settings_from(env)
    ensure_topics(settings)
    store = Store.from_url(env["DATABASE_URL"])
    spawn(["streams"], env)
    producer = EventProducer(settings)
    for i in range(300):  # 2 cells x 150 s -> windows of 60 s; RSRQ missing on odd seconds
        cell = f"cell-{i % 2}"
        body = {
            "event_id": f"net-{i}",
            "cell_id": cell,
            "occurred_at": f"2020-01-01T00:0{(i // 2) // 60}:{(i // 2) % 60:02d}Z",
            "rsrp": -90.0 - i % 5,
            "dl_bitrate": 1000.0 + i,
            "rsrq": None if i % 4 >= 2 else -10.0,
            "network_mode": "5G",
        }
        producer.publish(settings.topic_network, cell, orjson.dumps(body))
    producer.flush()
    wait_for_events(store, "network", 300, exact=True)
    rows = store.series.observations("network")
    assert {r.series_key for r in rows} == {"cell-0", "cell-1"}
    assert sorted({r.period_start.minute for r in rows}) == [0, 1, 2]
    first = next(r for r in rows if r.series_key == "cell-0" and r.period_start.minute == 0)
    assert first.n_events == 60
    assert first.fields["rsrp"].count == 60
    assert first.fields["rsrq"].count == 30  # missing stays missing, never zero
    assert first.fields["rsrq"].min == -10.0
