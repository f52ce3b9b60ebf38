"""A store that goes away loses nothing: real PostgreSQL stopped under a real worker.

The worker pauses, retries its commit with backoff and never acknowledges past what is stored;
when PostgreSQL returns, every event is counted exactly once, with no restart by hand. A worker
SIGKILLed while the store is down waits for the store when it starts again and resumes from the
stored offsets.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, date, datetime

import pytest

from millrace.importers.simulate import simulate_demand
from millrace.kafka import EventProducer, ensure_topics
from millrace.settings import Settings
from ml.registry.store import Store
from schemas.events import RetrainRequest
from tests.fixtures.broker import settings_from, wait_for_job, wait_for_progress, wait_for_start
from tests.fixtures.postgres import create_database
from tests.stream_checks import expected_counts, stored_counts
from tests.training_data import seed_demand

pytestmark = pytest.mark.integration


def records(n: int) -> list:
    source = simulate_demand(seed=11, start=date(2022, 1, 1), months=24, segments=20, base_rate=60)
    out = list(source.records())[:n]
    assert len(out) == n
    return out


class Replay(threading.Thread):
    """Publishes records at a steady rate in the background."""

    def __init__(self, settings, recs: list, rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.recs, self.rate = settings, recs, rate
        self.producer = EventProducer(settings)

    def run(self) -> None:
        started = time.monotonic()
        for i, record in enumerate(self.recs):
            self.producer.publish(self.settings.topic_sales, record.key, record.event)
            if i % 200 == 0:
                ahead = i / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        assert self.producer.flush() == 0 and self.producer.failed == 0


def count(store: Store) -> int:
    try:
        return store.series.count_events("demand")
    except Exception:  # noqa: BLE001 - the store is down: no progress to see
        return -1


def on_own_postgres(make_env, server, name: str, retry_max: str) -> tuple[dict, Settings, Store]:
    """Environment, settings and store of a test whose database lives on ``server``."""
    url = create_database(server.admin_url, name)
    env = make_env(DATABASE_URL=url, STORE_RETRY_MAX_SECONDS=retry_max)
    settings = settings_from(env)
    ensure_topics(settings)
    return env, settings, Store.from_url(url)


def test_postgres_stopped_8_s_then_60_s_during_a_replay_loses_nothing(
    make_env, spawn, own_postgres
) -> None:
    env, settings, store = on_own_postgres(make_env, own_postgres, "outage", "2")
    recs = records(60_000)
    worker = spawn(["streams"], env)
    replay = Replay(settings, recs, rate=1500)
    replay.start()
    wait_for_progress(lambda: count(store) > 2_000, lambda: (count(store), worker.progress()))
    own_postgres.stop()
    time.sleep(8)
    own_postgres.start()
    before = count(store)
    wait_for_progress(
        lambda: count(store) > before + 2_000, lambda: (count(store), worker.progress())
    )
    own_postgres.stop()
    time.sleep(60)
    own_postgres.start()
    replay.join()
    wait_for_progress(lambda: count(store) == 60_000, lambda: (count(store), worker.progress()))
    assert stored_counts(store) == expected_counts(recs)
    assert worker.alive(), worker.output()[-3000:]
    log = worker.output()
    assert "store unavailable during" in log  # it did wait, it did not crash
    assert "Traceback" not in log, log[-5000:]


def test_worker_killed_while_postgres_is_down_resumes_from_the_store(
    make_env, spawn, own_postgres
) -> None:
    env, settings, store = on_own_postgres(make_env, own_postgres, "killed", "1")
    recs = records(20_000)
    first = spawn(["streams"], env)
    replay = Replay(settings, recs, rate=4000)
    replay.start()
    wait_for_progress(lambda: count(store) > 2_000, lambda: (count(store), first.progress()))
    own_postgres.stop()
    time.sleep(2)
    first.kill()
    second = spawn(["streams"], env)  # starts while the store is still down: it waits
    replay.join()
    wait_for_start(second, lambda: "store unreachable at start" in second.output())
    own_postgres.start()
    wait_for_progress(lambda: count(store) == 20_000, lambda: (count(store), second.progress()))
    assert stored_counts(store) == expected_counts(recs)
    assert second.alive(), second.output()[-3000:]


def test_trainer_waits_for_postgres_and_runs_each_request_once(
    make_env, spawn, own_postgres
) -> None:
    env, settings, store = on_own_postgres(make_env, own_postgres, "trainer", "1")
    seed_demand(store)
    trainer = spawn(["trainer"], env)
    wait_for_start(trainer, lambda: "trainer consuming" in trainer.output())
    own_postgres.stop()
    producer = EventProducer(settings)
    request = RetrainRequest(
        event_id=str(uuid.uuid4()),
        occurred_at=datetime.now(UTC),
        domain="demand",
        requested_by="test",
    )
    producer.publish(settings.topic_retrain_requests, "demand/global", request)
    assert producer.flush() == 0
    wait_for_progress(lambda: "store unavailable during" in trainer.output(), trainer.progress)
    own_postgres.start()
    job = wait_for_job(store, request.event_id, trainer=trainer)
    assert job.status == "completed", job.error
    assert [j.id for j in store.jobs.list_jobs(domain="demand")] == [request.event_id]
    assert store.models.active_version("demand") == job.version
    assert trainer.alive(), trainer.output()[-3000:]
