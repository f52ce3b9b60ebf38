"""A broker that lost its data, under a store that remembers: loud, and recoverable.

A fresh embedded broker keeps nothing, so the offsets stored by the worker point into data that
is gone. The worker refuses those partitions instead of skipping the new data, ``/health`` names
them, and ``millrace checkpoints reset`` makes the worker consume the new data: all of it, once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import httpx
import pytest

from millrace.broker import EmbeddedBroker
from millrace.importers.simulate import simulate_demand
from millrace.kafka import EventProducer, ensure_topics
from ml.registry.entities import StreamPosition
from ml.registry.store import Store
from streams.positions import BrokerView, judge
from tests.fixtures.broker import (
    ROOT,
    build_env,
    free_port,
    settings_from,
    wait_for_events,
    wait_for_progress,
    wait_for_start,
)

pytestmark = pytest.mark.integration


def publish(settings, seed: int, n: int) -> set[str]:
    source = simulate_demand(seed=seed, start=date(2023, 1, 1), months=12, segments=8)
    producer = EventProducer(settings)
    ids = set()
    for record in list(source.records())[:n]:
        producer.publish(settings.topic_sales, record.key, record.event)
        ids.add(record.event.event_id)
    assert producer.flush() == 0 and producer.failed == 0
    return ids


def health(port: str) -> dict | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0).json()
    except (httpx.HTTPError, ValueError):
        return None


def test_fresh_broker_under_an_old_store_is_refused_reported_and_reconciled(
    tmp_path, spawn
) -> None:
    port = free_port()
    broker = EmbeddedBroker("127.0.0.1", port, log_path=tmp_path / "broker-1.log").start()
    env = build_env(broker.bootstrap_servers, tmp_path)
    settings = settings_from(env)
    store = Store.from_url(env["DATABASE_URL"])
    try:
        ensure_topics(settings)
        first_ids = publish(settings, seed=11, n=1_000)
        worker = spawn(["streams"], env)
        wait_for_events(store, "demand", 1_000, exact=True, worker=worker)
        worker.stop()

        broker.stop()  # memory only: everything on it is gone
        broker = EmbeddedBroker("127.0.0.1", port, log_path=tmp_path / "broker-2.log").start()
        ensure_topics(settings)
        new_ids = publish(settings, seed=12, n=400)
        assert not first_ids & new_ids

        worker = spawn(["streams"], env)
        api = spawn(["api"], env)
        faults = wait_for_start(worker, lambda: store.stream.faults(env["STREAMS_APP_ID"]))
        assert {f.topic for f in faults} == {settings.topic_sales}
        assert all("broker" in f.reason for f in faults)
        report = wait_for_start(api, lambda: (h := health(env["API_PORT"])) and h)
        assert report["status"] == "degraded"
        assert "refused" in report["checks"]["streams"]
        assert "millrace checkpoints reset" in report["checks"]["streams"]
        assert (
            store.series.count_events("demand") == 1_000
        )  # nothing new was taken from a wrong place

        done = subprocess.run(
            [sys.executable, "-m", "millrace.cli", "checkpoints", "reset"]
            + ["--topic", settings.topic_sales, "--to", "earliest"],
            env={**os.environ, **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert "moved to earliest" in done.stderr
        wait_for_events(store, "demand", 1_400, exact=True, worker=worker)
        assert store.stream.faults() == []
        assert wait_for_progress(
            lambda: (h := health(env["API_PORT"])) and h["status"] == "healthy",
            lambda: (worker.progress(), api.progress()),
        )
        assert worker.alive() and api.alive()
        assert "REFUSED" in worker.output()
    finally:
        broker.stop()


def position(offset: int, fp: str | None = "1-2-3") -> StreamPosition:
    return StreamPosition("sales", 0, offset, fp)


def test_judge_resumes_after_the_stored_record_when_the_broker_still_holds_it() -> None:
    assert judge(position(9), BrokerView(0, 50, 9, "1-2-3")).seek_to == 10
    # Tansu reports the base offset of its last batch + 1 as the end: the record wins
    assert judge(position(9), BrokerView(0, 3, 9, "1-2-3")).seek_to == 10
    assert judge(position(9, None), BrokerView(0, 50, 9, "x")).seek_to == 10
    assert judge(position(-1), BrokerView(4, 50, None, None)).seek_to == 4
    assert judge(position(9), BrokerView(10, 50, None, None)).seek_to == 10


@pytest.mark.parametrize(
    ("view", "words"),
    [
        (BrokerView(0, 5, None, None), "beyond the partition's end 5"),
        (BrokerView(0, 50, 9, "9-9-9"), "not the one the store includes"),
        (BrokerView(0, 50, 12, "1-2-3"), "not the one the store includes"),
        (BrokerView(20, 50, None, None), "below the partition's start 20"),
    ],
)
def test_judge_refuses_what_the_broker_no_longer_backs(view: BrokerView, words: str) -> None:
    verdict = judge(position(9), view)
    assert verdict.seek_to is None and words in (verdict.refusal or "")
