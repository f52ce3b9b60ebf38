"""A domain the processes never heard of: ``tests.toy_domain.ToyDomain``, registered only through
``EXTRA_DOMAINS``, runs in the real worker (``millrace streams``) and the real trainer
(``millrace trainer``): its events are validated, stored as observations or dead-lettered, and a
retrain request for it becomes a job and a version. Nothing in ``streams/`` nor ``millrace/``
names a domain."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from millrace.kafka import EventProducer, ensure_topics
from millrace.settings import SettingsError, load_settings
from ml.registry.store import Store
from schemas.events import RetrainRequest
from tests.factories import fresh
from tests.fixtures.broker import (
    read_json,
    read_topic,
    settings_from,
    wait_for_events,
    wait_for_job,
)
from tests.toy_domain import ToyDomain

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
TOY = "tests.toy_domain:ToyDomain"


def reading(i: int, **overrides: object) -> dict:
    """A valid toy reading: three sensors, one reading per sensor per day over 20 days."""
    at = datetime(2025, 3, 1, 12, tzinfo=UTC) + timedelta(days=i // 3)
    body = {
        "event_id": f"00000000-0000-4000-8000-{i:012d}",
        "occurred_at": at.isoformat(),
        "sensor": f"s-{i % 3}",
        "value": 10.0 + (i % 3),
    }
    return {**body, **overrides}


def test_processes_never_name_a_domain() -> None:
    pattern = re.compile(
        r"ml\.(network|demand)|ml\.domains\.(network|demand)|NetworkDomain|DemandDomain"
        r"|[\"'](network|demand)[\"']"
    )
    sources = [*ROOT.joinpath("streams").rglob("*.py"), ROOT / "millrace" / "trainer.py"]
    sources.append(ROOT / "millrace" / "domain_hooks.py")
    sources += [ROOT / "api" / "live.py", ROOT / "api" / "models.py"]
    named = {
        f"{path.relative_to(ROOT)}:{n}": line.strip()
        for path in sources
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    }
    assert named == {}


@pytest.mark.parametrize(
    "spec", ["tests.nothing:ToyDomain", "tests.toy_domain", "json:JSONDecoder"]
)
def test_a_bad_extra_domain_stops_at_start_naming_the_setting(spec: str) -> None:
    with pytest.raises(SettingsError, match="EXTRA_DOMAINS"):
        load_settings(_env_file=None, extra_domains=spec)


def test_toy_domain_through_worker_and_trainer(make_env, spawn) -> None:
    env = make_env(MIN_TRAINING_MONTHS="2")
    settings = settings_from(env)  # this process does not register the toy domain
    env["EXTRA_DOMAINS"] = TOY  # the subprocesses do, from their settings
    ensure_topics(settings)
    topic = ToyDomain().topic(settings)
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    for future in admin.create_topics(
        [NewTopic(topic, settings.topic_partitions, settings.topic_replication_factor)]
    ).values():
        future.result(15)
    store = Store.from_url(env["DATABASE_URL"])
    worker = spawn(["streams"], env)
    trainer = spawn(["trainer"], env)

    producer = EventProducer(settings)
    valid = [reading(i) for i in range(60)]
    bad = [
        b"{not json",
        orjson.dumps(reading(1000, value="NaN")),
        orjson.dumps(reading(1001, sensor="Bad Sensor!")),
        orjson.dumps({k: v for k, v in reading(1002).items() if k != "sensor"}),
    ]
    for i, body in enumerate(valid):
        producer.publish(topic, body["sensor"], orjson.dumps(body))
        if i % 15 == 0:
            producer.publish(topic, "bad", bad[i // 15])
    assert producer.flush() == 0

    # validated and stored as observations: one per sensor per day
    wait_for_events(store, "toy", 60, worker=worker)
    rows = store.series.observations("toy")
    assert len(rows) == 60 and {r.series_key for r in rows} == {"s-0", "s-1", "s-2"}
    assert all(r.n_events == 1 and r.fields["value"].count == 1 for r in rows)
    assert {r.series_key: r.fields["value"].total for r in rows if r.period_start.day == 1} == {
        "s-0": 10.0,
        "s-1": 11.0,
        "s-2": 12.0,
    }
    assert store.series.count_events("toy") == 60

    # the bad ones dead-lettered with their reason
    letters = read_topic(
        settings.bootstrap_servers, settings.topic_dead_letter, settings.topic_partitions, 4, 30
    )
    records = [orjson.loads(m.value()) for m in letters]
    assert len(records) == 4
    assert all(r["reason"] and r["source_topic"] == topic for r in records)

    # a retrain request for the toy domain: job -> version (mean beats the zero baseline)
    request = RetrainRequest(**fresh(), domain="toy", requested_by="test")
    producer.publish(settings.topic_retrain_requests, "toy/global", request)
    producer.flush()
    job = wait_for_job(store, request.event_id, trainer=trainer)
    assert job.status == "completed", job.error
    version = store.models.get_version("toy", "global", job.version)
    assert version.algorithm == "toy-mean" and version.status == "active"
    assert set(version.metrics["candidates"]) == {"toy-zero", "toy-mean"}
    [event] = read_json(settings.bootstrap_servers, settings.topic_model_updated, 4, 1, 30)
    assert (event["domain"], event["version"]) == ("toy", job.version)
    assert worker.alive() and trainer.alive()
