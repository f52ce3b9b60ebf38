"""``/health`` and ``/actuator/health`` over real HTTP against the running API process."""

from __future__ import annotations

from datetime import UTC

import httpx
import pytest

from tests.fixtures.broker import free_port, wait_for_start

pytestmark = pytest.mark.integration


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=3.0)
    except httpx.HTTPError:
        return None


@pytest.mark.parametrize("path", ["/health", "/actuator/health"])
def test_healthy_with_broker_and_store(make_env, spawn, path: str) -> None:
    env = make_env()
    api = spawn(["api"], env)
    resp = wait_for_start(api, lambda: _get(f"http://127.0.0.1:{env['API_PORT']}{path}"))
    assert resp.status_code == 200
    body = resp.json()
    assert body == {
        "status": "healthy",
        "service": "sgivu-ml",
        "version": body["version"],
        "model_available": False,
        "checks": {"database": "ok", "broker": "ok", "streams": "ok"},
    }


def test_degraded_but_200_when_broker_is_down(make_env, spawn) -> None:
    env = make_env(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    api = spawn(["api"], env)
    resp = wait_for_start(api, lambda: _get(f"http://127.0.0.1:{env['API_PORT']}/health"))
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("unreachable")


def test_observation_stats_over_http(make_env, spawn) -> None:
    from datetime import datetime

    from ml.aggregates import FieldStats
    from ml.observations import ObservationDelta
    from ml.registry.store import Store

    env = make_env(INTERNAL_SERVICE_KEY="health-test-key")
    store = Store.from_url(env["DATABASE_URL"])
    month = datetime(2024, 3, 1, tzinfo=UTC)
    store.stream.apply_observations(
        [
            ObservationDelta(
                "demand", "CAR|A|B|", month, 3, {"sales": FieldStats(3, 3.0, 3.0, 1.0, 1.0)}
            )
        ]
    )
    api = spawn(["api"], env)
    url = f"http://127.0.0.1:{env['API_PORT']}/v1/ml/observations/stats"
    wait_for_start(api, lambda: _get(url))
    assert httpx.get(url).status_code == 401
    resp = httpx.get(url, headers={"X-Internal-Service-Key": "health-test-key"})
    assert resp.status_code == 200
    assert resp.json() == [
        {"domain": "demand", "events": 3, "series": 1, "latest_period": "2024-03-01T00:00:00Z"}
    ]
