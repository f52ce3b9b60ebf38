"""The README's run command (``millrace up``) on the embedded default: healthy, observations
arriving, and Ctrl-C stops every process it started. The waits follow the work of ``up`` and
of the processes it starts (a slow machine only takes longer); the times are printed."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from tests.fixtures.broker import free_port, wait_for_progress

pytestmark = pytest.mark.integration


def _json(url: str) -> object | None:
    try:
        resp = httpx.get(url, timeout=2.0, headers={"X-Internal-Service-Key": "run-test-key"})
        return resp.json() if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def test_up_runs_the_whole_system_on_the_embedded_default(make_env, spawn) -> None:
    env = make_env(EMBEDDED_BROKER_PORT=str(free_port()), INTERNAL_SERVICE_KEY="run-test-key")
    env.pop("KAFKA_BOOTSTRAP_SERVERS")  # the embedded default
    api = f"http://127.0.0.1:{env['API_PORT']}"
    started = time.monotonic()
    proc = spawn(["up", "--rate", "2000"], env)

    def healthy() -> object:
        assert proc.alive(), proc.output()[-3000:]
        return (b := _json(f"{api}/health")) and b["status"] == "healthy" and b

    health = wait_for_progress(healthy, proc.progress)
    assert health["checks"] == {"database": "ok", "broker": "ok", "streams": "ok"}
    print(f"healthy in {time.monotonic() - started:.1f} s")

    def arriving() -> bool:
        stats = _json(f"{api}/v1/ml/observations/stats") or []
        return any(row["domain"] == "demand" and row["events"] > 0 for row in stats)

    wait_for_progress(arriving, proc.progress)
    print(f"observations arriving after {time.monotonic() - started:.1f} s")
    assert "Millrace is up" in proc.output()

    assert proc.stop(signal.SIGINT, timeout=40) is not None
    # ``up`` waits for every process it started before it exits
    assert _json(f"{api}/health") is None
