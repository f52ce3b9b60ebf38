"""Network drift through the real processes: an injected shift (``simulate_network`` with
``drift_at``, as ``millrace simulate --domain network --drift-at``) published to the broker, the
streams worker detects it per cell and per field, publishes exactly one drift retrain request per
field, the trainer retrains every model of each field (RETRAINING) and elects again (EVALUATING,
then MONITORING with the new election), and ``GET /v1/ml/drift?domain=network`` shows the
statistics and events, filtered by field and cell.

8 cells, one measurement per cell per second for an hour (28,800 events), half the cells lose
10 dB of RSRP and half their downlink bitrate from minute 38; one partition. Waits are
progress-based (a stall fails, a slow machine does not)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from millrace.importers.simulate import simulate_network
from millrace.kafka import EventProducer, encode_event
from tests.api_server import start_api
from tests.fixtures.broker import read_json, settings_from, wait_for_progress, wait_for_start

pytestmark = pytest.mark.integration

#: the simulated hour ended an hour ago: within the catch-up lag, so requests go out at once
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
FIELDS = ("dl_bitrate", "rsrp")


def test_injected_shift_through_the_worker_retrains_each_field_once(
    kafka: str, tmp_path: Path, spawn
) -> None:
    source = simulate_network(
        seed=11, start=START, seconds=3600, cells=8, drift_at=START + timedelta(minutes=38),
        drift_cells=0.5,
    )  # fmt: skip
    drifted = set(source.drifted_cells)
    server = start_api(kafka, tmp_path, None, TOPIC_PARTITIONS="1")
    try:
        env, store = server.env, server.store
        settings = settings_from(env)
        trainer = spawn(["trainer"], env)
        wait_for_start(trainer, lambda: store.network.live_configs())  # default configs seeded
        spawn(["streams"], env)
        producer = EventProducer(settings)
        records = list(source.records())
        for r in records:
            producer.publish(settings.topic_network, r.key, encode_event(r.event))
        assert producer.flush() == 0 and producer.failed == 0

        def field_events() -> set[str]:
            events = store.monitoring.drift_events(domain="network", limit=1000)
            return {e.scope for e in events if e.scope.startswith("*|")}

        def stored() -> tuple[int, int]:
            return store.series.count_events("network"), len(
                store.monitoring.drift_events(domain="network", limit=1000)
            )

        wait_for_progress(lambda: field_events() == {f"*|{f}" for f in FIELDS}, stored, 90)

        # each field: RETRAINING for the drift, then evaluated and back to MONITORING
        seen: dict[str, list[str]] = {f: [] for f in FIELDS}
        reasons: dict[str, list[str]] = {f: [] for f in FIELDS}

        def cycled() -> bool:
            for f in FIELDS:
                status = server.get(f"/v1/ml/performance/{f}/status").json()
                if not seen[f] or seen[f][-1] != status["state"]:
                    seen[f].append(status["state"])
                    reasons[f].append(status["reason"])
            return all("RETRAINING" in s and s[-1] == "MONITORING" for s in seen.values())

        wait_for_progress(cycled, lambda: (seen, stored()), 120, interval=0.1)
        for f in FIELDS:
            retraining = reasons[f][seen[f].index("RETRAINING")]
            assert retraining.startswith("drift:"), reasons[f]
            assert reasons[f][-1].startswith("elected "), reasons[f]  # EVALUATING ran
            status = server.get(f"/v1/ml/performance/{f}/status").json()
            assert status["best_model_id"].startswith(f"{f}-") and status["active_jobs"] == []
            history = server.get(f"/v1/ml/performance/{f}/history").json()
            assert "evaluate" in {h["trigger"] for h in history}
        jobs = server.get("/v1/ml/training/jobs", params={"domain": "network"}).json()["items"]
        assert {j["scope"] for j in jobs if j["trigger"] == "drift"} == {
            c.id for c in store.network.live_configs()
        }

        # exactly one drift request per field on the retrain topic (the rest are the models')
        messages = read_json(kafka, settings.topic_retrain_requests, 1, expect=2 + len(jobs))
        drift_requests = [m for m in messages if m["requested_by"] == "network-drift"]
        assert sorted(m["scope"] for m in drift_requests) == sorted(FIELDS)
        assert all(m["reason"] == "drift" for m in drift_requests)

        # the API: statistics and events, by field and by cell
        report = server.get("/v1/ml/drift", params={"domain": "network", "field": "rsrp"})
        assert report.status_code == 200, report.text
        body = report.json()
        assert set(body["statistics"]) == {"rsrp"}
        drift_stats = body["statistics"]["rsrp"]["drift"]["0"]
        assert drift_stats["field_detections"] == 1 and drift_stats["cells"] == 8
        scopes = {e["scope"] for e in body["events"]}
        assert "*|rsrp" in scopes and all(s.endswith("|rsrp") for s in scopes)
        assert {s.split("|")[0] for s in scopes} - {"*"} <= {f"SIM-{i:03d}" for i in range(8)}
        cell = sorted(drifted)[0]
        by_cell = server.get("/v1/ml/drift", params={"domain": "network", "cell": cell}).json()
        assert by_cell["events"] and all(
            e["scope"].startswith(f"{cell}|") for e in by_cell["events"]
        )
        assert all(e["evidence"]["cell_id"] == cell for e in by_cell["events"])
        for params, code in (
            ({"domain": "network", "field": "a|b"}, 422),
            ({"domain": "network", "field": "bogus"}, 404),
            ({"domain": "demand", "cell": cell}, 400),
        ):
            bad = server.get("/v1/ml/drift", params=params)
            assert bad.status_code == code and bad.json()["detail"], (params, bad.text)
    finally:
        server.proc.stop()
