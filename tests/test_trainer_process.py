"""The trainer process on the real broker: request -> job -> version -> activation ->
model-updated event; coalescing; commands; dead letters."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import joblib
import pytest

from millrace.kafka import EventProducer, ensure_topics
from ml.registry.store import Store
from schemas.events import ModelCommand, RetrainRequest, deterministic_id
from tests.factories import fresh
from tests.fixtures.broker import (
    read_json,
    settings_from,
    wait_for_exit,
    wait_for_job,
    wait_for_progress,
)
from tests.training_data import seed_demand

pytestmark = pytest.mark.integration


def updates(settings, expect: int, timeout: float = 30.0) -> list[dict]:
    """The model-updated events published so far (at least ``expect``)."""
    return read_json(settings.bootstrap_servers, settings.topic_model_updated, 4, expect, timeout)


@pytest.fixture(params=["sqlite", "postgresql"])
def trained(request, make_env, spawn):
    env = make_env()
    if request.param == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("fresh_postgres_url")
    settings = settings_from(env)
    ensure_topics(settings)
    store = Store.from_url(env["DATABASE_URL"])
    seed_demand(store)
    proc = spawn(["trainer"], env)
    return env, settings, store, proc, EventProducer(settings)


def test_request_yields_job_version_artifact_activation_and_event(trained) -> None:
    env, settings, store, proc, producer = trained
    request = RetrainRequest(**fresh(), domain="demand", requested_by="test")
    producer.publish(settings.topic_retrain_requests, "demand/global", request)
    producer.flush()
    job = wait_for_job(store, request.event_id, trainer=proc)
    assert job.status == "completed", job.error
    version = store.models.get_version("demand", "global", job.version)
    assert version.status == "active" and Path(version.artifact_path).is_file()
    assert store.models.active_version("demand") == job.version
    [event] = updates(settings, 1)
    assert event["version"] == job.version and event["domain"] == "demand"
    assert event["metrics"]["mae"] == version.metrics["mae"]
    assert proc.alive()


def test_hundred_requests_for_one_scope_run_one_job(trained) -> None:
    env, settings, store, proc, producer = trained
    now = datetime.now(UTC)
    ids = []
    for i in range(100):
        req = RetrainRequest(**fresh(now), domain="demand", evidence={"i": i})  # same instant
        ids.append(req.event_id)
        producer.publish(settings.topic_retrain_requests, "demand/global", req)
    producer.flush()

    def coalesced() -> int:
        return sum(len(j.request_ids) for j in store.jobs.list_jobs(domain="demand"))

    wait_for_progress(lambda: coalesced() == 100, lambda: (coalesced(), proc.progress()))
    jobs = store.jobs.list_jobs(domain="demand")
    assert len(jobs) == 1
    assert sorted(jobs[0].request_ids) == sorted(ids)
    wait_for_job(store, jobs[0].id, lambda j: j.status == "completed", trainer=proc)


def test_bad_dates_fail_with_reason_and_commands_roll_back(trained) -> None:
    env, settings, store, proc, producer = trained
    bad = RetrainRequest(
        **fresh(), domain="demand", start_date=date(2023, 5, 1), end_date=date(2023, 1, 1)
    )
    producer.publish(settings.topic_retrain_requests, "demand/global", bad)
    producer.publish(settings.topic_retrain_requests, "demand/global", b"{not json")
    producer.flush()
    job = wait_for_job(store, bad.event_id, trainer=proc)
    assert (job.status, job.error) == ("failed", "end_date must be after start_date")

    first = RetrainRequest(**fresh(), domain="demand")
    producer.publish(settings.topic_retrain_requests, "demand/global", first)
    producer.flush()
    v1 = wait_for_job(store, first.event_id, lambda j: j.version, trainer=proc).version
    # a second version (kept even though not promoted) to roll forward to
    second = RetrainRequest(**fresh(), domain="demand")
    producer.publish(settings.topic_retrain_requests, "demand/global", second)
    producer.flush()
    v2 = wait_for_job(store, second.event_id, lambda j: j.version, trainer=proc).version
    assert store.models.active_version("demand") == v1

    cmd = ModelCommand(
        command="activate",
        domain="demand",
        version=v2,
        requested_by="ops",
        event_id=deterministic_id("cmd", v2),
        occurred_at=datetime.now(UTC),
    )
    producer.publish(settings.topic_model_commands, "demand/global", cmd)
    producer.publish(settings.topic_model_commands, "demand/global", cmd)  # replayed: no-op
    producer.flush()
    wait_for_progress(lambda: store.models.active_version("demand") == v2, proc.progress)
    back = ModelCommand(**fresh(), command="rollback", domain="demand", requested_by="ops")
    producer.publish(settings.topic_model_commands, "demand/global", back)
    producer.flush()
    wait_for_progress(lambda: store.models.active_version("demand") == v1, proc.progress)
    history = store.models.activations("demand")
    assert [a.version for a in history] == [v1, v2, v1]
    assert [a.actor for a in history] == ["trainer", "ops", "ops"]
    between = history[1].activated_at
    assert store.models.live_at("demand", "global", between) == v2
    assert store.models.live_at("demand", "global", history[0].activated_at) == v1
    events = updates(settings, 3)
    assert [e["version"] for e in events[-2:]] == [v2, v1]
    assert proc.alive()


def test_cli_retrain_wait_and_models_list(trained, spawn) -> None:
    env, settings, store, proc, producer = trained
    # the test, not the CLI's own deadline, decides how long the trainer may work
    retrain = spawn(["retrain", "--wait", "--timeout", "3600"], env)
    assert wait_for_exit(retrain, proc.progress) == 0, retrain.output()
    version = store.models.active_version("demand")
    assert version and version in retrain.output() and "ACTIVE" in retrain.output()
    listing = spawn(["models", "list"], env)
    assert wait_for_exit(listing) == 0
    assert version in listing.output() and "active" in listing.output()
    unknown = spawn(["models", "activate", "v9.9.9-20990101"], env)
    assert wait_for_exit(unknown) == 2
    assert "unknown version" in unknown.output()


def test_sigkill_mid_job_then_restart_recovers(trained, spawn) -> None:
    env, settings, store, proc, producer = trained
    request = RetrainRequest(**fresh(), domain="demand")
    producer.publish(settings.topic_retrain_requests, "demand/global", request)
    producer.flush()
    wait_for_job(
        store, request.event_id, lambda j: j.status == "running", interval=0.01, trainer=proc
    )
    proc.kill()  # SIGKILL while the job trains
    assert store.jobs.get_job(request.event_id).status == "running"
    assert store.models.active_version("demand") is None  # nothing partial became active
    restarted = spawn(["trainer"], env)
    job = wait_for_job(store, request.event_id, trainer=restarted)
    assert job.status == "completed", job.error
    active = store.models.list_versions(domain="demand", status="active")
    assert len(active) == 1 and active[0].version == job.version
    assert Path(active[0].artifact_path).is_file()
    assert joblib.load(active[0].artifact_path).algorithm == active[0].algorithm
    assert restarted.alive()
