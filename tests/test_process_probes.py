"""Metrics and probes of the streams worker and the trainer, scraped from the real processes
during a small replay with drift (one worker and one trainer serve every assertion):

- each process's ``/metrics`` has the named metrics with the expected labels, and they move;
- a streams worker stopped with SIGSTOP turns its ``/readyz`` (and ``/livez``) to 503 once its
  last poll is older than ``PROBE_HEARTBEAT_SECONDS``, its ``/metrics`` to 503, and all back to
  200 after SIGCONT;
- the sidecar serving the port ends with its process.

Every wait is on progress (the processes' work, the probe's own answer), never on a deadline;
elapsed times are printed, not asserted.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from millrace.importers.simulate import simulate_demand
from millrace.kafka import EventProducer, ensure_topics
from ml.periods import add_months
from ml.registry.store import Store
from tests.factories import invalid_payloads
from tests.fixtures.broker import (
    _descendants,
    deliver,
    free_port,
    settings_from,
    wait_for_events,
    wait_for_progress,
    wait_for_start,
)

pytestmark = pytest.mark.integration

HEARTBEAT = 3.0


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=10.0)
    except httpx.HTTPError:
        return None


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value of one scrape."""
    resp = httpx.get(url + "/metrics", timeout=10.0)
    assert resp.status_code == 200, resp.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def _series(samples: dict, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def test_metrics_move_during_a_replay_and_a_stopped_worker_is_not_ready(make_env, spawn):
    env = make_env(
        STREAMS_METRICS_PORT=str(free_port()),
        TRAINER_METRICS_PORT=str(free_port()),
        PROBE_HEARTBEAT_SECONDS=str(HEARTBEAT),
    )
    settings = settings_from(env)
    ensure_topics(settings)
    store = Store.from_url(env["DATABASE_URL"])
    streams_url = f"http://127.0.0.1:{env['STREAMS_METRICS_PORT']}"
    trainer_url = f"http://127.0.0.1:{env['TRAINER_METRICS_PORT']}"
    streams, trainer = spawn(["streams"], env), spawn(["trainer"], env)
    began = time.monotonic()

    def ready(url: str) -> httpx.Response | None:
        resp = _get(url + "/readyz")
        return resp if resp is not None and resp.status_code == 200 else None

    for proc, url in ((streams, streams_url), (trainer, trainer_url)):
        body = wait_for_start(proc, lambda u=url: ready(u)).json()
        assert body["status"] == "ready" and body["partitions"] >= 1, body
        print(f"{proc.handle.args[3]} ready after {time.monotonic() - began:.1f} s")
        assert _get(url + "/livez").status_code == 200
        assert _get(url + "/nothing").status_code == 404
        info = _series(_samples(url), "millrace_build_info")
        assert [dict(labels)["process"] for labels in info] == [proc.handle.args[3]], info

    print(f"both ready after {time.monotonic() - began:.1f} s")
    # --- a small replay that drifts, with bad input, up to now (catch-up releases the requests)
    now = datetime.now(UTC)
    start = add_months(date(now.year, now.month, 1), -35).date()
    source = simulate_demand(
        seed=1, start=start, months=36, segments=3, trend=0.0, base_rate=20.0,
        drift_at=add_months(start, 30).date(), drift_factor=2.5, drift_segments=[0, 1],
    )  # fmt: skip
    records = [r for r in source.records() if r.event.occurred_at <= now]
    bad = invalid_payloads(settings.max_event_bytes)
    producer = EventProducer(settings)
    for i, record in enumerate(records):
        producer.publish(settings.topic_sales, record.key, record.event)
        if i < len(bad):
            producer.publish(settings.topic_sales, "bad", bad[i][1])
    producer.publish(settings.topic_retrain_requests, "demand/global", b"{not a request")
    assert deliver(producer) == 0
    wait_for_events(store, "demand", len(records), exact=True, worker=streams)
    print(f"{len(records)} events stored after {time.monotonic() - began:.1f} s")

    def consumed(samples: dict) -> float:
        return _value(samples, "millrace_events_consumed_total", domain="demand") or 0.0

    expected = len(records) + len(bad)
    scraped = wait_for_progress(
        lambda: (s := _samples(streams_url)) and consumed(s) == expected and s,
        lambda: (consumed(_samples(streams_url)), streams.progress()),
    )
    letters = _series(scraped, "millrace_dead_letters_total")
    assert {dict(k)["topic"] for k in letters} == {settings.topic_sales}
    by_type = {dict(k)["error_type"]: v for k, v in letters.items()}
    assert by_type == {t: sum(1 for kind, _ in bad if kind == t) for t, _ in bad}
    commits = _value(scraped, "millrace_batch_commit_duration_seconds_count", domain="demand")
    assert commits and commits >= 1
    assert _value(scraped, "millrace_batch_commit_duration_seconds_sum", domain="demand") > 0
    drift = _series(scraped, "millrace_drift_detections_total")
    assert drift and all(dict(k)["domain"] == "demand" and dict(k)["detector"] for k in drift)
    assert sum(drift.values()) == len(store.monitoring.drift_events("demand", limit=100_000))
    published = _series(scraped, "millrace_retrain_requests_published_total")
    assert {dict(k)["reason"] for k in published} >= {"drift"}, published

    def lags() -> dict:
        return _series(_samples(streams_url), "millrace_consumer_lag_messages")

    every_partition = {
        (topic, str(p))
        for topic in (settings.topic_sales, settings.topic_network)
        for p in range(settings.topic_partitions)
    }
    # every input partition has a series (its end offset known) and all were processed
    wait_for_progress(
        lambda: (g := lags()) and set(g.values()) == {0.0} and {
            (dict(k)["topic"], dict(k)["partition"]) for k in g
        } == every_partition,
        lags,
    )  # fmt: skip

    # --- the trainer: the stream's requests became a job whose version went live
    def completed() -> object:
        return next((j for j in store.jobs.list_jobs(domain="demand") if j.finished_at), None)

    job = wait_for_progress(
        completed, lambda: (trainer.progress(), len(store.jobs.list_jobs(domain="demand")))
    )

    print(f"job {job.status} after {time.monotonic() - began:.1f} s")

    def age(samples: dict) -> float | None:
        return _value(samples, "millrace_live_model_age_seconds", domain="demand", scope="global")

    def jobs(samples: dict) -> dict[str, float]:
        found = _series(samples, "millrace_training_jobs_total")
        assert {dict(k)["domain"] for k in found} <= {"demand"}, found
        return {dict(k)["status"]: v for k, v in found.items()}

    def trainer_done() -> dict | None:
        """A scrape once the trainer is at rest: no job running, every finished job counted,
        the bad request dead-lettered, the live version's age and the lag known."""
        s = _samples(trainer_url)
        finished = [j for j in store.jobs.list_jobs(domain="demand") if j.finished_at]
        at_rest = (
            _value(s, "millrace_training_jobs_running", domain="demand") == 0.0
            and sum(jobs(s).values()) == len(finished) >= 1
            and _value(
                s, "millrace_dead_letters_total",
                topic=settings.topic_retrain_requests, error_type="schema_violation",
            ) == 1.0
        )  # fmt: skip
        return s if at_rest and age(s) and _series(s, "millrace_consumer_lag_messages") else None

    scraped = wait_for_progress(trainer_done, trainer.progress)
    received = _series(scraped, "millrace_retrain_requests_total")
    assert {dict(k)["domain"] for k in received} == {"demand"}
    assert "drift" in {dict(k)["reason"] for k in received}
    assert job.status in jobs(scraped)
    for status, count in jobs(scraped).items():
        assert status in {"completed", "failed"}
        assert count == _value(
            scraped, "millrace_training_job_duration_seconds_count", domain="demand", status=status
        )
    trainer_lag = _series(scraped, "millrace_consumer_lag_messages")
    assert {dict(k)["topic"] for k in trainer_lag} <= {
        settings.topic_retrain_requests,
        settings.topic_model_commands,
    }
    first = age(scraped)
    assert first > 0
    wait_for_progress(
        lambda: age(_samples(trainer_url)) > first, lambda: age(_samples(trainer_url))
    )

    print(f"trainer scraped after {time.monotonic() - began:.1f} s")
    # --- SIGSTOP: the sidecar answers for the stopped worker; SIGCONT: ready again
    sidecar = _sidecar_pid(streams.handle.pid)
    stopped_at = time.monotonic()
    os.kill(streams.handle.pid, signal.SIGSTOP)
    try:
        resp = wait_for_progress(
            lambda: (r := _get(streams_url + "/readyz")) and r.status_code == 503 and r,
            lambda: _get(streams_url + "/readyz").text,  # the probe's own clock moves
        )
        print(f"/readyz 503 {time.monotonic() - stopped_at:.1f} s after SIGSTOP")
        body = resp.json()
        assert body["detail"].startswith("no poll for") and body["polled_seconds_ago"] > HEARTBEAT
        # the loop's last tick may follow the last poll by up to its timer's period
        wait_for_progress(
            lambda: _get(streams_url + "/livez").status_code == 503,
            lambda: _get(streams_url + "/livez").text,  # the probe's own clock moves
        )
        assert _get(streams_url + "/metrics").status_code == 503  # the worker does not answer
    finally:
        os.kill(streams.handle.pid, signal.SIGCONT)
    resumed_at = time.monotonic()
    wait_for_progress(lambda: ready(streams_url), streams.progress)
    print(f"/readyz 200 {time.monotonic() - resumed_at:.1f} s after SIGCONT")
    assert _get(streams_url + "/livez").status_code == 200
    assert consumed(_samples(streams_url)) == expected

    # --- the sidecar ends with its worker
    streams.stop()
    wait_for_progress(lambda: not _running(sidecar), lambda: None, stall=30)


def _sidecar_pid(pid: int) -> int:
    """The worker's one child: the sidecar (``python -m millrace.probes``)."""
    children = [
        p for p in _descendants(pid) - {pid}
        if b"millrace.probes" in Path(f"/proc/{p}/cmdline").read_bytes()
    ]  # fmt: skip
    assert len(children) == 1, children
    return children[0]


def _running(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
