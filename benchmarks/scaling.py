"""Scale-out: drain rate of 1 streams worker vs 2 workers in one consumer group.

For each run: a fresh 4-partition topic on the embedded broker (Tansu), a fresh SQLite store and
consumer group; the workers start on the empty topic and the script waits until the group's
assignment covers the 4 partitions (split 2 + 2 with two workers, read from Faust's assignment
log), so group joins and rebalances are not timed. Then the same simulated contracts are
published as fast as the producer goes (each segment's events to one partition, the segments
placed so that the partitions carry equal loads), and the drain rate is measured from the
first event in the store to the last. Usage:

    .venv/bin/python benchmarks/scaling.py [--events 200000] [--partitions 4]

Rates are the medians of ``--repeat`` rounds (each: 1 worker, then 2). Writes
``benchmarks/results/scaling.json``. Note the machine's cores: the workers, the broker
and this script share them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ingest_throughput import cpu_seconds  # noqa: E402

from millrace.broker import EmbeddedBroker  # noqa: E402
from millrace.importers.simulate import simulate_demand  # noqa: E402
from millrace.kafka import encode_event, ensure_topics  # noqa: E402
from millrace.settings import load_settings  # noqa: E402
from ml.registry.store import Store  # noqa: E402
from tests.fixtures.broker import free_port  # noqa: E402

GOAL_RATIO = 1.7


def contracts(total: int, seed: int = 5) -> list[tuple[bytes, bytes]]:
    """``total`` simulated contracts (120 segments, time-ordered) as (key, JSON value).

    Many segments (keys) spread the events evenly over the partitions, so a split of the
    partitions is a split of the work."""
    months = 24
    while True:
        source = simulate_demand(
            seed=seed, start=date(2015, 1, 1), months=months, segments=120, base_rate=20.0
        )
        if source.estimated_total >= total or months > 1200:
            break
        months *= 2
    out = []
    for record in source.records():
        out.append((record.key.encode(), encode_event(record.event)))
        if len(out) == total:
            return out
    raise SystemExit(f"the simulator made only {len(out)} events")


def balanced_partitions(events: list[tuple[bytes, bytes]], partitions: int) -> dict[bytes, int]:
    """A partition per key (all of a segment's events stay in one partition) such that the
    partitions carry about equal numbers of events: the busiest keys first, each to the least
    loaded partition. Hashing 120 keys of uneven volume gave 34k..69k events per partition."""
    volume = Counter(key for key, _ in events)
    load = [0] * partitions
    placed: dict[bytes, int] = {}
    for key, n in volume.most_common():
        target = load.index(min(load))
        placed[key] = target
        load[target] += n
    return placed


def assignment(log: str, topic: str) -> set[int]:
    """Partitions of ``topic`` in a worker's latest assignment table (Faust's info log)."""
    found = re.findall(rf"\| {re.escape(topic)}\s+\| \{{([^}}]*)\}}", log)
    parts: set[int] = set()
    if found:
        for piece in found[-1].split(","):
            lo, _, hi = piece.strip().partition("-")
            parts.update(range(int(lo), int(hi or lo) + 1))
    return parts


def drain(bootstrap: str, workers: int, events: list, partitions: int, batch: int | None) -> dict:
    """Start ``workers`` workers, wait for the split, publish ``events``, time the drain."""
    tag = f"w{workers}-{int(time.time())}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "DATABASE_URL": f"sqlite:///{tmp}/scale.db",
            "TOPIC_SALES": f"bench.sales.{tag}",
            "TOPIC_PARTITIONS": str(partitions),
            "STREAMS_APP_ID": f"bench-scaling-{tag}",
            "BROKER_SESSION_TIMEOUT_SECONDS": "4",
            "BROKER_REBALANCE_TIMEOUT_SECONDS": "4",
        }
        if batch:
            env["STREAMS_BATCH_SIZE"] = str(batch)
        settings = load_settings(**{k.lower(): v for k, v in env.items()})
        ensure_topics(settings)
        store = Store.from_url(env["DATABASE_URL"], upgrade=True)
        logs = [Path(tmp) / f"worker-{i}.log" for i in range(workers)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "millrace.cli", "streams", "--loglevel", "info"],
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                cwd=ROOT,
                stdout=open(log, "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            for log in logs
        ]
        try:
            deadline = time.monotonic() + 120
            while True:
                parts = [assignment(log.read_text(errors="replace"), settings.topic_sales)
                         for log in logs]  # fmt: skip
                split = all(parts) and sum(map(len, parts)) == partitions
                if split and set().union(*parts) == set(range(partitions)):
                    break
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise SystemExit(f"{workers} worker(s) did not get the partitions: {parts}")
                time.sleep(0.2)
            print(f"  {workers} worker(s) assigned {[sorted(p) for p in parts]}; publishing")
            producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
            placed = balanced_partitions(events, partitions)
            for key, value in events:
                while True:
                    try:
                        producer.produce(
                            settings.topic_sales, value=value, key=key, partition=placed[key]
                        )
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.flush(60)
            first_n, t0 = 0, 0.0
            deadline = time.monotonic() + 900
            while True:
                n = store.series.count_events("demand")
                if n and not t0:
                    first_n, t0 = n, time.perf_counter()
                    cpu0 = [cpu_seconds(p.pid) for p in procs]
                if n >= len(events):
                    seconds = time.perf_counter() - t0
                    busy = [cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True)]
                    break
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise SystemExit(f"drain with {workers} worker(s) stalled at {n} events")
                time.sleep(0.05)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGINT)
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        store.close()
    rate = (len(events) - first_n) / seconds
    cores = [round(b / seconds, 2) for b in busy]
    print(f"  {workers} worker(s): {rate:,.0f} events/s ({seconds:.1f} s), cores busy {cores}")
    return {
        "workers": workers,
        "events_per_s": round(rate),
        "seconds": round(seconds, 2),
        "worker_cpu_cores_busy": cores,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, help="STREAMS_BATCH_SIZE (default: setting)")
    parser.add_argument("--repeat", type=int, default=3, help="1-then-2-worker rounds (median)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/scaling.json"))
    args = parser.parse_args()

    print(f"simulating {args.events:,} contracts ...")
    events = contracts(args.events)
    with EmbeddedBroker("127.0.0.1", free_port()) as broker:
        runs = [
            drain(broker.bootstrap_servers, n, events, args.partitions, args.batch_size)
            for _ in range(args.repeat)
            for n in (1, 2)
        ]
    one = statistics.median(r["events_per_s"] for r in runs if r["workers"] == 1)
    two = statistics.median(r["events_per_s"] for r in runs if r["workers"] == 2)
    ratios = [
        b["events_per_s"] / a["events_per_s"] for a, b in zip(runs[::2], runs[1::2], strict=True)
    ]
    ratio = two / one
    batch = args.batch_size or load_settings().streams_batch_size
    result = {
        "benchmark": "scaling",
        "events": args.events,
        "partitions": args.partitions,
        "batch_size": batch,
        "repeats": args.repeat,
        "one_worker_events_per_s": round(one),
        "two_workers_events_per_s": round(two),
        "two_vs_one": round(ratio, 3),
        "two_vs_one_per_repeat": [round(r, 3) for r in ratios],
        "goal_ratio": GOAL_RATIO,
        "goal_met": ratio >= GOAL_RATIO,
        "runs": runs,
        "store": "sqlite (one file shared by the workers)",
        "note": (
            "workers, broker and this script share the machine's cores; "
            "worker_cpu_cores_busy = CPU seconds per second of each worker while draining"
        ),
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


if __name__ == "__main__":
    main()
