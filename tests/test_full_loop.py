"""The closed loop on the real broker: injected drift on the sales stream -> drift events ->
retrain request -> trainer job -> new active version -> model-updated event, in bounded time."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest

from millrace.importers.simulate import simulate_demand
from millrace.kafka import EventProducer, ensure_topics
from ml.periods import add_months
from ml.registry.store import Store
from tests.fixtures.broker import read_json, settings_from, wait_until

pytestmark = pytest.mark.integration

#: the bound this test holds the loop to, from the first published event
LOOP_SECONDS = 120


def test_drift_to_new_active_version_end_to_end(make_env, spawn) -> None:
    env = make_env()
    settings = settings_from(env)
    ensure_topics(settings)
    store = Store.from_url(env["DATABASE_URL"])
    spawn(["streams"], env)
    spawn(["trainer"], env)
    # the history ends now (catch-up mode holds the requests of a replay of the past until the
    # stream has caught up: its last days release them); nothing from the future is sent
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
    producer = EventProducer(settings)
    started = time.monotonic()
    for record in source.records():
        if record.event.occurred_at <= now:
            producer.publish(settings.topic_sales, record.key, record.event)
    producer.flush()

    drifted = set(source.drifted_segments)
    wait_until(
        lambda: drifted <= {e.scope for e in store.monitoring.drift_events("demand")}, LOOP_SECONDS
    )
    job = wait_until(
        lambda: next(
            (j for j in store.jobs.list_jobs(domain="demand") if j.status == "completed"), None
        ),
        LOOP_SECONDS - (time.monotonic() - started),
    )
    assert job.trigger == "drift" and job.scope == "global"
    assert set(job.request_ids)  # the stream's request(s), coalesced into this job
    assert store.models.active_version("demand") == job.version

    got = read_json(settings.bootstrap_servers, settings.topic_model_updated, 4, 1)
    elapsed = time.monotonic() - started
    assert got[0]["version"] == job.version and got[0]["domain"] == "demand"
    assert elapsed < LOOP_SECONDS
    print(f"drift -> new active version -> model-updated in {elapsed:.1f} s")
