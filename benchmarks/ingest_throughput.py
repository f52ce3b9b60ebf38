"""Ingest throughput of one streams worker vs a bare Faust loop vs a raw aiokafka consumer.

Same broker (embedded Tansu), same topic and partitions, same N sale events. Each rate is
measured from the first consumed event to the last (group-join time excluded); each figure is
the median of ``--repeat`` rounds on a fresh broker. Usage:

    .venv/bin/python benchmarks/ingest_throughput.py [--events 100000] [--partitions 4]
        [--batch-size 500] [--data factory|simulated] [--repeat 3]

Writes ``benchmarks/results/ingest_throughput.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from itertools import islice
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from millrace.broker import EmbeddedBroker  # noqa: E402
from millrace.importers.simulate import simulate_demand  # noqa: E402
from millrace.kafka import EventProducer, encode_event, ensure_topics  # noqa: E402
from millrace.settings import load_settings  # noqa: E402
from ml.registry.store import Store  # noqa: E402
from tests.factories import sale  # noqa: E402
from tests.fixtures.broker import free_port  # noqa: E402

DATA = {
    "factory": "tests.factories.sale: 4 segments cycling through 12 months (mostly late events)",
    "simulated": "simulated contracts, 24 segments, time-ordered (months close as they go)",
}


async def raw_aiokafka(bootstrap: str, topic: str, total: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="bench-raw",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
    )
    await consumer.start()
    n, t0 = 0, 0.0
    try:
        while n < total:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                if n == 0:
                    t0 = time.perf_counter()
                for record in records:
                    orjson.loads(record.value)
                n += len(records)
    finally:
        await consumer.stop()
    return n / (time.perf_counter() - t0)


@dataclass(frozen=True)
class Run:
    """One consumer process over the same events: its rate and the CPU time (all its threads)
    it spent per event, both from its first consumed event to the last."""

    events_per_s: float
    cpu_us_per_event: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads; Linux)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_faust(bootstrap: str, topic: str, total: int) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bare.json"
        proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "bare_faust.py"),
                bootstrap,
                topic,
                str(total),
                str(out),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 600
            while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.1)
            result = orjson.loads(out.read_bytes())
        finally:
            proc.send_signal(2)
            proc.wait(30)
    return Run(result["events"] / result["seconds"], 1e6 * result["cpu_seconds"] / result["events"])


def millrace_worker(env: dict[str, str], total: int, domain: str = "demand") -> Run:
    """A ``millrace streams`` process folding ``total`` events of ``domain``: its rate and CPU
    per event from the first stored event to the last (the store is polled every 50 ms)."""
    store = Store.from_url(env["DATABASE_URL"], upgrade=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "millrace.cli", "streams", "--loglevel", "warning"],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        first_n, t0, cpu0 = 0, 0.0, 0.0
        while True:
            n = store.series.count_events(domain)
            if n and not t0:
                first_n, t0, cpu0 = n, time.perf_counter(), cpu_seconds(proc.pid)
            if n >= total:
                seconds, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
                return Run((n - first_n) / seconds, 1e6 * cpu / (n - first_n))
            if proc.poll() is not None:
                raise RuntimeError("worker exited")
            time.sleep(0.05)
    finally:
        proc.send_signal(2)
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=500, help="STREAMS_BATCH_SIZE")
    parser.add_argument("--data", choices=sorted(DATA), default="factory")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, fresh broker each")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/ingest_throughput.json"))
    args = parser.parse_args()

    events = payloads(args.data, args.events)
    runs = [measure(args, events) for _ in range(args.repeat)]
    raw = statistics.median(r["raw"] for r in runs)
    bare = statistics.median(r["bare"] for r in runs)
    worker = statistics.median(r["worker"] for r in runs)
    result = {
        "benchmark": "ingest_throughput",
        "events": args.events,
        "data": DATA[args.data],
        "partitions": args.partitions,
        "batch_size": args.batch_size,
        "repeats": args.repeat,
        "raw_aiokafka_events_per_s": round(raw),
        "bare_faust_events_per_s": round(bare),
        "millrace_worker_events_per_s": round(worker),
        "worker_vs_bare_faust": round(worker / bare, 3),
        "worker_vs_bare_faust_per_repeat": [round(r["worker"] / r["bare"], 3) for r in runs],
        "runs": [{k: round(v) for k, v in r.items()} for r in runs],
        "store": "sqlite",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def payloads(data: str, total: int) -> list[tuple[str, bytes]]:
    """(key, JSON value) of ``total`` sale events of the chosen data set."""
    if data == "factory":
        return [(f"k{i % 64}", orjson.dumps(sale(i, months=12))) for i in range(total)]
    months = 24
    while True:
        source = simulate_demand(
            seed=5, start=date(2015, 1, 1), months=months, segments=24, base_rate=60.0
        )
        if source.estimated_total >= total or months > 1200:
            break
        months *= 2
    return [(r.key, encode_event(r.event)) for r in islice(source.records(), total)]


def measure(args: argparse.Namespace, events: list[tuple[str, bytes]]) -> dict[str, float]:
    """One round on a fresh broker: raw aiokafka, bare Faust, the worker (events/s each)."""
    with EmbeddedBroker("127.0.0.1", free_port()) as broker, tempfile.TemporaryDirectory() as tmp:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "TOPIC_SALES": "bench.sales",
            "TOPIC_PARTITIONS": str(args.partitions),
            "STREAMS_APP_ID": "bench-worker",
            "BROKER_SESSION_TIMEOUT_SECONDS": "4",
            "STREAMS_BATCH_SIZE": str(args.batch_size),
            "BROKER_REBALANCE_TIMEOUT_SECONDS": "4",
        }
        settings = load_settings(**{k.lower(): v for k, v in env.items()})
        ensure_topics(settings)
        producer = EventProducer(settings)
        for key, value in events:
            producer.publish(settings.topic_sales, key, value)
        producer.flush()

        total = len(events)
        raw = asyncio.run(raw_aiokafka(broker.bootstrap_servers, settings.topic_sales, total))
        bare = bare_faust(broker.bootstrap_servers, settings.topic_sales, total).events_per_s
        worker = millrace_worker(env, total).events_per_s
    print(f"  raw {raw:,.0f}  bare Faust {bare:,.0f}  worker {worker:,.0f} events/s")
    return {"raw": raw, "bare": bare, "worker": worker}


if __name__ == "__main__":
    main()
