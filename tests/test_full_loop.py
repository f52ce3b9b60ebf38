"""The closed loop on the real broker: injected drift on the sales stream -> drift events ->
retrain request -> trainer job -> new active version -> model-updated event.

The streams worker stores every event and raises the drift events of every drifted segment
before the trainer starts: a version promoted mid-stream changes the stream's drift reference,
so the remaining segments might not drift against it. The trainer then reads the retrain
requests already on the topic. Every wait is on the progress of the processes doing the work,
never on a wall-clock deadline; the elapsed time is printed, not asserted.

The simulated history ends now: catch-up mode (``CATCH_UP_LAG_SECONDS``) holds the retrain
requests of a replay of the past, and its last days (within the lag) release them, one per
scope. Nothing from the future is sent."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest

from millrace.importers.simulate import simulate_demand
from millrace.kafka import EventProducer, ensure_topics
from ml.periods import add_months
from ml.registry.store import Store
from tests.fixtures.broker import (
    deliver,
    read_json,
    settings_from,
    wait_for_events,
    wait_for_progress,
)

pytestmark = pytest.mark.integration


def test_drift_to_new_active_version_end_to_end(make_env, spawn) -> None:
    env = make_env()
    settings = settings_from(env)
    ensure_topics(settings)
    store = Store.from_url(env["DATABASE_URL"])
    streams = spawn(["streams"], env)
    now = datetime.now(UTC)
    start = add_months(date(now.year, now.month, 1), -35).date()
    source = simulate_demand(
        seed=1,
        start=start,
        months=36,
        segments=8,
        trend=0.0,
        base_rate=60.0,
        drift_at=add_months(start, 30).date(),
        drift_factor=2.0,
    )
    records = [r for r in source.records() if r.event.occurred_at <= now]
    producer = EventProducer(settings)
    started = time.monotonic()
    for record in records:
        producer.publish(settings.topic_sales, record.key, record.event)
    assert deliver(producer) == 0

    wait_for_events(store, "demand", len(records), exact=True, worker=streams)

    def drifted_scopes() -> set[str]:
        return {e.scope for e in store.monitoring.drift_events("demand")}

    # stored with the events that raise them, so they are all there by now; the wait only
    # covers a worker still writing them
    drifted = set(source.drifted_segments)
    wait_for_progress(lambda: drifted <= drifted_scopes(), lambda: len(drifted_scopes()))

    trainer = spawn(["trainer"], env)

    def completed() -> object:
        jobs = store.jobs.list_jobs(domain="demand")
        return next((j for j in jobs if j.status == "completed"), None)

    def work() -> tuple:
        jobs = store.jobs.list_jobs(domain="demand")
        return trainer.progress(), [(j.status, j.finished_at, j.version) for j in jobs]

    job = wait_for_progress(completed, work)
    assert job.trigger == "drift" and job.scope == "global"
    assert set(job.request_ids)  # the stream's request(s), coalesced into this job
    assert store.models.active_version("demand") == job.version

    got = read_json(settings.bootstrap_servers, settings.topic_model_updated, 4, 1)
    elapsed = time.monotonic() - started
    assert got[0]["version"] == job.version and got[0]["domain"] == "demand"
    print(f"drift -> new active version -> model-updated in {elapsed:.1f} s")
