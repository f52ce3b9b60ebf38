"""A real streams worker on PostgreSQL fed 1,000 good sales mixed with every kind of poison:
the good ones are all stored, each poison is dead-lettered with its reason, and the worker's
agent never crashes or restarts."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from confluent_kafka import Producer

from millrace.kafka import ensure_topics
from ml.periods import month_start
from ml.registry.store import Store
from schemas.events import SaleContractEvent
from tests.factories import poison, sale
from tests.fixtures.broker import read_topic, settings_from, wait_for_events

pytestmark = pytest.mark.integration

MAX_BYTES = 65536
GOOD = 1000


class Sender:
    """A producer that remembers where each message landed (partition, offset) -> label."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 5,
                "message.max.bytes": 32_000_000,  # the 10 MB poison must reach the worker
            }
        )
        self.placed: dict[tuple[int, int], str] = {}
        self.failed: list[str] = []

    def send(self, topic: str, key: str, value: bytes, label: str) -> None:
        def delivered(err: object, msg: object) -> None:
            if err is not None:
                self.failed.append(f"{label}: {err}")
            else:
                self.placed[(msg.partition(), msg.offset())] = label  # type: ignore[attr-defined]

        self.producer.produce(topic, value=value, key=key.encode(), on_delivery=delivered)
        self.producer.poll(0)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0
        assert not self.failed, self.failed


def test_poison_is_dead_lettered_good_events_stored_worker_never_restarts(
    make_env, spawn, fresh_postgres_url
) -> None:
    env = make_env(DATABASE_URL=fresh_postgres_url, MAX_EVENT_BYTES=str(MAX_BYTES))
    settings = settings_from(env)
    ensure_topics(settings)
    store = Store.from_url(fresh_postgres_url)
    worker = spawn(["streams"], env)

    cases = poison(MAX_BYTES)
    resent = [c for c in cases if c[1] == "duplicate"]  # sent once the original is stored
    mixed = [c for c in cases if c[1] != "duplicate"]
    assert len(mixed) >= 30
    expected_kind = {kind: error_type for kind, error_type, _ in cases}

    sender = Sender(settings.bootstrap_servers)
    good = [sale(i) for i in range(GOOD)]
    every = GOOD // len(mixed)
    for i, body in enumerate(good):
        sender.send(settings.topic_sales, f"seg-{i % 7}", orjson.dumps(body), "good")
        if i % every == 0 and mixed:
            kind, _, payload = mixed.pop()
            sender.send(settings.topic_sales, f"poison-{kind}", payload, kind)
    for kind, _, payload in mixed:
        sender.send(settings.topic_sales, f"poison-{kind}", payload, kind)
    sender.flush()

    wait_for_events(store, "demand", GOOD)
    for kind, _, payload in resent:
        sender.send(settings.topic_sales, "again", payload, kind)
    sender.flush()

    letters = read_topic(
        settings.bootstrap_servers,
        settings.topic_dead_letter,
        settings.topic_partitions,
        len(cases),
        timeout=60,
        settle=2.0,
    )
    records = [orjson.loads(m.value()) for m in letters]
    by_kind = {sender.placed[(r["partition"], r["offset"])]: r for r in records}
    assert len(records) == len(cases) == len(by_kind), sorted(by_kind)
    assert "good" not in by_kind
    wrong = {
        kind: (r["error_type"], r["reason"])
        for kind, r in by_kind.items()
        if r["error_type"] != expected_kind[kind]
    }
    assert wrong == {}
    assert all(r["reason"] and r["source_topic"] == settings.topic_sales for r in records)
    assert len({r["event_id"] for r in records}) == len(records)
    kinds = Counter(r["error_type"] for r in records)
    assert set(kinds) == {
        "invalid_json",
        "schema_violation",
        "oversize",
        "too_old",
        "future_timestamp",
        "duplicate",
    }, kinds

    # every good event stored once, in its segment and month
    expected: Counter[tuple[str, object, str]] = Counter()
    for body in good:
        event = SaleContractEvent.model_validate(body)
        field = "sales" if event.contract_type == "SALE" else "purchases"
        expected[(event.segment_key, month_start(event.occurred_at), field)] += 1
    stored: Counter[tuple[str, object, str]] = Counter()
    for row in store.series.observations("demand"):
        for field in ("sales", "purchases"):
            if field in row.fields:
                stored[(row.series_key, row.period_start, field)] += row.fields[field].count
    assert stored == expected
    assert store.series.count_events("demand") == GOOD

    # the worker is still the same process, still consuming, and its agent never crashed
    sender.send(settings.topic_sales, "late", orjson.dumps(sale(GOOD)), "good")
    sender.flush()
    wait_for_events(store, "demand", GOOD + 1, exact=True)
    log = worker.output()
    assert worker.alive(), log[-3000:]
    for sign in ("Traceback", "crashed", "Restarting", "restart"):
        assert sign not in log, log[-5000:]
    store.close()
