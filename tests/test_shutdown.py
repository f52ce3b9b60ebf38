"""SIGTERM ends every process within SHUTDOWN_TIMEOUT_SECONDS, even with the broker or the store
already gone, and losing nothing: a restart stores every event exactly once."""

from __future__ import annotations

import time
from datetime import date

import httpx
import pytest

from millrace.broker import EmbeddedBroker
from millrace.importers.simulate import simulate_demand
from millrace.kafka import EventProducer, ensure_topics
from ml.registry.store import Store
from tests.fixtures.broker import build_env, free_port, settings_from, wait_for_progress
from tests.fixtures.postgres import create_database
from tests.stream_checks import expected_counts, stored_counts

pytestmark = pytest.mark.integration

BOUND = 5.0
#: slack over the bound for process exit and the test's own polling (not machine speed:
#: the watchdog is a timer, it needs no CPU to fire)
SLACK = 5.0


def start_all(spawn, env: dict) -> list:
    procs = [spawn([name], env) for name in ("streams", "trainer", "api")]
    url = f"http://127.0.0.1:{env['API_PORT']}/health"

    def up() -> bool:
        for proc in procs:
            assert proc.alive(), f"{proc.log.name} exited:\n{proc.output()[-3000:]}"
        try:
            return httpx.get(url, timeout=2).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    wait_for_progress(up, lambda: tuple(p.progress() for p in procs))
    return procs


def sigterm_all(procs: list) -> dict[str, float]:
    """Send SIGTERM to each process at once; seconds each took to exit."""
    started = time.monotonic()
    for proc in procs:
        proc.handle.terminate()
    took = {}
    for proc in procs:
        proc.handle.wait(BOUND + SLACK + 30)  # generous: the assertion below is the verdict
        took[proc.log.name] = time.monotonic() - started
    return took


def publish(settings, n: int) -> list:
    source = simulate_demand(seed=21, start=date(2023, 1, 1), months=12, segments=8)
    records = list(source.records())[:n]
    producer = EventProducer(settings)
    for record in records:
        producer.publish(settings.topic_sales, record.key, record.event)
    assert producer.flush() == 0
    return records


def test_sigterm_with_the_broker_gone_ends_every_process_in_time(tmp_path, spawn) -> None:
    broker = EmbeddedBroker("127.0.0.1", free_port(), log_path=tmp_path / "broker.log").start()
    env = build_env(broker.bootstrap_servers, tmp_path, SHUTDOWN_TIMEOUT_SECONDS=str(BOUND))
    try:
        ensure_topics(settings_from(env))
        procs = start_all(spawn, env)
        time.sleep(2)
    finally:
        broker.stop()
    took = sigterm_all(procs)
    assert all(t < BOUND + SLACK for t in took.values()), took


def test_sigterm_with_the_store_gone_ends_in_time_and_a_restart_loses_nothing(
    make_env, spawn, own_postgres
) -> None:
    url = create_database(own_postgres.admin_url, "sigterm")
    env = make_env(DATABASE_URL=url, SHUTDOWN_TIMEOUT_SECONDS=str(BOUND))
    settings = settings_from(env)
    ensure_topics(settings)
    store = Store.from_url(url)
    procs = start_all(spawn, env)
    records = publish(settings, 3_000)
    wait_for_progress(
        lambda: store.series.count_events("demand") > 0,
        lambda: tuple(p.progress() for p in procs),
    )
    own_postgres.stop()
    time.sleep(1)
    took = sigterm_all(procs)
    assert all(t < BOUND + SLACK for t in took.values()), took
    own_postgres.start()
    spawn(["streams"], env)
    wait_for_progress(
        lambda: store.series.count_events("demand") == 3_000,
        progress=lambda: store.series.count_events("demand"),
    )
    assert stored_counts(store) == expected_counts(records)
