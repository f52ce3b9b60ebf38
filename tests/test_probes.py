"""Probes and process metrics without a broker: the liveness / readiness verdicts on a
heartbeat, the lag arithmetic, the metric families, the API's ``/readyz`` when it is not ready,
and one sidecar serving a heartbeat over HTTP (marked integration: it starts a process)."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from millrace.metrics import StreamsMetrics, TrainerMetrics, consumer_lag
from millrace.probes import Beat, Heartbeat, liveness, readiness, serve_probes
from tests.fixtures.broker import free_port

H = 10.0


def test_liveness_starting_live_then_stalled() -> None:
    assert liveness(Beat(100.0, 0.0, 0.0, 0), 500.0, H) == (
        200,
        {"status": "starting", "started_seconds_ago": 400.0},
    )
    code, body = liveness(Beat(100.0, 190.0, 0.0, 0), 200.0, H)
    assert (code, body["status"]) == (200, "live")  # equality is still live
    code, body = liveness(Beat(100.0, 189.9, 0.0, 0), 200.0, H)
    assert (code, body["status"]) == (503, "stalled") and "PROBE_HEARTBEAT_SECONDS=10" in (
        body["detail"]
    )


@pytest.mark.parametrize(
    ("beat", "code", "why"),
    [
        (Beat(1.0, 0.0, 0.0, 0), 503, "starting"),
        (Beat(1.0, 199.0, 199.0, 0), 503, "no partition assigned"),
        (Beat(1.0, 199.0, 0.0, 4), 503, "no poll yet"),
        (Beat(1.0, 199.0, 189.0, 4), 503, "no poll for 11.0 s"),
        (Beat(1.0, 199.0, 190.0, 4), 200, None),
        (Beat(1.0, 199.0, 199.5, 1), 200, None),
    ],
)
def test_readiness_needs_partitions_and_a_recent_poll(beat, code, why) -> None:
    got, body = readiness(beat, 200.0, H)
    assert got == code
    assert body["partitions"] == beat.partitions and body["heartbeat_seconds"] == H
    if why is None:
        assert body["status"] == "ready" and "detail" not in body
    else:
        assert body["status"] == "not ready" and body["detail"].startswith(why)


def test_heartbeat_is_shared_through_its_file_descriptor() -> None:
    beat = Heartbeat()
    other = Heartbeat(beat.fd)  # what the sidecar maps
    assert other.read().loop_at == 0.0 and other.read().started_at > 0
    beat.assigned(3)
    beat.polled()
    seen = other.read()
    assert seen.partitions == 3 and seen.polled_at == seen.loop_at > 0
    beat.tick()
    assert other.read().loop_at >= seen.loop_at and other.read().polled_at == seen.polled_at


def test_consumer_lag_from_end_offsets_and_positions() -> None:
    ends = {("t", 0): 10, ("t", 1): 5, ("t", 2): None, ("t", 3): 7, ("t", 4): -1}
    positions = {("t", 0): 9, ("t", 1): 2, ("t", 9): 100}
    # 0: all processed; 1: offsets 3 and 4 left; 3: nothing processed, offsets 0-6 left
    assert consumer_lag(ends, positions) == {("t", 0): 0, ("t", 1): 2, ("t", 3): 7}


def test_streams_metrics_count_a_batch_and_drop_revoked_partitions() -> None:
    m = StreamsMetrics()
    m.batch("demand", 12, 0.02, [("sales", "invalid_json")] * 2, ["adwin"], ["drift"])
    m.batch("demand", 3, 0.01)
    get = m.registry.get_sample_value
    assert get("millrace_events_consumed_total", {"domain": "demand"}) == 15
    assert get("millrace_dead_letters_total", {"topic": "sales", "error_type": "invalid_json"}) == 2
    assert get("millrace_batch_commit_duration_seconds_count", {"domain": "demand"}) == 2
    assert get("millrace_drift_detections_total", {"domain": "demand", "detector": "adwin"}) == 1
    assert get("millrace_retrain_requests_published_total", {"domain": "demand", "reason": "drift"})
    info = {"process": "streams", "version": "0.1.0"}
    assert get("millrace_build_info", {**info, "python": __import__("platform").python_version()})
    m.set_lag({("sales", 0): 4, ("sales", 1): 0})
    m.set_lag({("sales", 1): 2})
    assert get("millrace_consumer_lag_messages", {"topic": "sales", "partition": "0"}) is None
    assert get("millrace_consumer_lag_messages", {"topic": "sales", "partition": "1"}) == 2


def test_trainer_metrics_jobs_and_the_age_of_live_versions() -> None:
    m = TrainerMetrics()
    m.job("demand", "completed", 2.5)
    m.job("demand", "failed", 0.1)
    get = m.registry.get_sample_value
    assert get("millrace_training_jobs_total", {"domain": "demand", "status": "completed"}) == 1
    assert get(
        "millrace_training_job_duration_seconds_sum", {"domain": "demand", "status": "completed"}
    ) == 2.5  # fmt: skip
    trained = datetime.now(UTC) - timedelta(hours=1)
    m.live_ages.update({("network", "dl_bitrate"): trained})
    age = get("millrace_live_model_age_seconds", {"domain": "network", "scope": "dl_bitrate"})
    assert 3600 <= age < 3600 + 60
    m.live_ages.update({})
    assert (
        get("millrace_live_model_age_seconds", {"domain": "network", "scope": "dl_bitrate"}) is None
    )


def test_api_readyz_says_what_is_missing(tmp_path: Path) -> None:
    from fastapi import FastAPI

    from api import probes
    from api.live import LiveModels
    from ml.registry.store import Store

    # the app's probe router over its real state (api.app's other routers are not needed)
    store = Store.from_url(f"sqlite:///{tmp_path / 'api.db'}", upgrade=True)
    app = FastAPI()
    app.include_router(probes.router)
    app.state.store, app.state.live = store, LiveModels(store)
    client = TestClient(app)  # no snapshot was loaded yet
    assert client.get("/livez").json() == {"status": "live"}
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["detail"] == "prediction snapshot not loaded for demand"
    assert resp.json()["checks"]["database"] == "ok"

    app.state.live.refresh_all()  # what the lifespan does first (no live version yet)
    assert client.get("/readyz").json() == {
        "status": "ready",
        "checks": {"database": "ok", "snapshots": "loaded"},
    }

    def down() -> None:
        raise ConnectionError("gone")

    store.ping = down  # type: ignore[method-assign]
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["detail"] == "the store does not answer"
    assert resp.json()["checks"]["database"] == "error: ConnectionError"


@pytest.mark.integration
def test_the_sidecar_answers_for_its_heartbeat() -> None:
    m = StreamsMetrics()
    assert serve_probes("test", "127.0.0.1", 0, m.registry, 1.0) is None  # off
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = taken.getsockname()[1]
        assert serve_probes("test", "127.0.0.1", busy, m.registry, 1.0) is None
    port = free_port()
    probes = serve_probes("test", "127.0.0.1", port, m.registry, 1.0)
    assert probes is not None
    url = f"http://127.0.0.1:{port}"
    try:
        # the socket listens before the sidecar runs: the first answer waits for it to start
        assert httpx.get(url + "/livez", timeout=60).json()["status"] == "starting"
        assert httpx.get(url + "/readyz").status_code == 503
        probes.heartbeat.assigned(2)
        probes.heartbeat.polled()
        polled = time.monotonic()
        resp = httpx.get(url + "/readyz")
        if time.monotonic() - polled < 1.0:  # answered within the heartbeat (not on a crawl)
            assert resp.status_code == 200 and resp.json()["partitions"] == 2
        m.batch("demand", 5, 0.01)
        metrics = httpx.get(url + "/metrics")
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith(
            "text/plain"
        )
        assert 'millrace_events_consumed_total{domain="demand"} 5.0' in metrics.text
        assert httpx.get(url + "/other").json()["detail"].startswith("no route /other")
        # the poll ages past the heartbeat: both probes say so, with the reason
        while time.monotonic() - polled <= 1.0:
            time.sleep(0.1)
        resp = httpx.get(url + "/readyz")
        assert resp.status_code == 503 and resp.json()["detail"].startswith("no poll for")
        assert httpx.get(url + "/livez").status_code == 503
    finally:
        probes.close()
