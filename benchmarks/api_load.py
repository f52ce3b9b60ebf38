"""API latency under load: one ``millrace api`` process (one uvicorn worker) on loopback.

Setup: the dealership contracts (``../shared/data/vehicle/sgivu_contracts/contracts_36m.csv``)
are folded into a fresh SQLite store and one training job makes the live version; the embedded
broker runs for the API's subscriber and health check.

Load: an open-loop generator (aiohttp, one event loop) sends requests on a fixed schedule at
each rate for ``--seconds``; latency is measured from each request's *scheduled* send time, so
a stalled server cannot hide its queueing (no coordinated omission). The client shares the
2 cores with the server, which is part of what is measured.

Reports, per endpoint (``GET /v1/ml/models/latest``, ``POST /v1/ml/predict``): p50 / p99 and
errors at each rate, the highest rate whose p99 stays under 10 ms, and p50/p99 at 500 req/s.

    python benchmarks/api_load.py [--seconds 8] [--rates 100,250,500,750,1000,1500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from millrace.broker import EmbeddedBroker  # noqa: E402
from millrace.importers.dealership import DealershipSource  # noqa: E402
from millrace.kafka import ensure_topics  # noqa: E402
from millrace.settings import load_settings  # noqa: E402
from ml.domains import get_domain  # noqa: E402
from ml.registry.store import Store  # noqa: E402
from ml.training.runner import TrainingRunner  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "vehicle" / "sgivu_contracts" / "contracts_36m.csv"
KEY = "bench-key"
GOAL_MS = 10.0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(workdir: Path) -> tuple[str, str]:
    """Store with the contracts and one live version; returns (database url, model dir)."""
    url = f"sqlite:///{workdir / 'bench.db'}"
    store = Store.from_url(url)
    domain = get_domain("demand")
    deltas = [d for r in DealershipSource(DATA).records() for d in domain.observe(r.event)]
    store.apply_observations(deltas)
    outcome = TrainingRunner(store, workdir / "models").run(
        store.create_job("demand", "global", "manual")
    )
    print(f"trained {outcome.version} ({outcome.status}, promoted={outcome.promoted})")
    return url, str(workdir / "models")


async def run_rate(
    url: str, method: str, body: dict | None, rate: float, seconds: float
) -> dict[str, float | int]:
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=256)
    headers = {"X-Internal-Service-Key": KEY}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(scheduled: float) -> None:
            nonlocal errors
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                async with session.request(method, url, json=body) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - scheduled)

        start = time.perf_counter() + 0.2
        await asyncio.gather(*(one(start + i / rate) for i in range(total)))
        elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {
        "rate": rate,
        "requests": total,
        "achieved_per_s": round(total / elapsed, 1),
        "errors": errors,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rates", default="100,250,500,750,1000,1500")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/api_load.json")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        db_url, model_dir = prepare(workdir)
        broker = EmbeddedBroker("127.0.0.1", free_port(), log_path=workdir / "broker.log")
        broker.start()
        port = free_port()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "DATABASE_URL": db_url,
            "MODEL_DIR": model_dir,
            "API_PORT": str(port),
            "INTERNAL_SERVICE_KEY": KEY,
        }
        ensure_topics(load_settings(kafka_bootstrap_servers=broker.bootstrap_servers))
        log = open(workdir / "api.log", "wb")  # noqa: SIM115
        api = subprocess.Popen(
            [sys.executable, "-m", "millrace.cli", "api"], env=env, cwd=ROOT, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            headers = {"X-Internal-Service-Key": KEY}
            segment = httpx.get(base + "/v1/ml/segments", headers=headers).json()["items"][0]
            predict_body = {k: segment[k] for k in ("vehicle_type", "brand", "model", "line")}
            endpoints = {
                "GET /v1/ml/models/latest": ("GET", base + "/v1/ml/models/latest", None),
                "POST /v1/ml/predict": ("POST", base + "/v1/ml/predict", predict_body),
            }
            results: dict[str, dict] = {}
            for name, (method, url, body) in endpoints.items():
                asyncio.run(run_rate(url, method, body, 200, 2))  # warm-up
                runs = []
                for rate in rates:
                    row = asyncio.run(run_rate(url, method, body, rate, args.seconds))
                    print(name, row)
                    runs.append(row)
                ok = [r["rate"] for r in runs if r["p99_ms"] < GOAL_MS and r["errors"] == 0]
                at_500 = next((r for r in runs if r["rate"] == 500), None)
                results[name] = {
                    "runs": runs,
                    "highest_rate_with_p99_under_10ms": max(ok) if ok else None,
                    "p50_ms_at_500": at_500["p50_ms"] if at_500 else None,
                    "p99_ms_at_500": at_500["p99_ms"] if at_500 else None,
                }
        finally:
            api.terminate()
            api.wait(20)
            broker.stop()

    out = {
        "benchmark": "api_load",
        "server": "millrace api (one uvicorn worker), SQLite store, dealership contracts model",
        "client": "open-loop aiohttp on the same machine; latency from the scheduled send time",
        "seconds_per_rate": args.seconds,
        "rates_tried": rates,
        "endpoints": results,
        "goal": "predict p99 < 10 ms at 500 req/s",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "runs"}
                      for k, v in results.items()}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
