"""Network stream throughput of one streams worker vs a bare Faust loop vs a raw aiokafka
consumer, the method of ``ingest_throughput.py`` on the network topic.

Same broker (embedded Tansu), topic, partitions and events: the first ``--events`` Irish 5G
measurements in timestamp order (``../shared/data/cellular/...``). The worker does everything
it does in production: validation, dedupe, dead letters, per-cell windows, the default online
configs (linear + forest per field, predict-then-learn per closed window), forecasts, running
scores, one store transaction per batch with offsets and processor state. Rates are measured
from the first consumed event to the last (group-join time excluded).

    .venv/bin/python benchmarks/network_throughput.py [--events 100000] [--batch-size 500]

Writes ``benchmarks/results/network_throughput.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ingest_throughput import bare_faust, millrace_worker, raw_aiokafka  # noqa: E402

from millrace.broker import EmbeddedBroker  # noqa: E402
from millrace.importers.irish5g import Irish5GSource  # noqa: E402
from millrace.kafka import EventProducer, encode_event, ensure_topics  # noqa: E402
from millrace.settings import load_settings  # noqa: E402
from tests.fixtures.broker import free_port  # noqa: E402

DATA = ROOT.parent / "shared/data/cellular/irish_5g_raca2020/irish_5g_all_traces.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=500, help="STREAMS_BATCH_SIZE")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/network_throughput.json"))
    args = parser.parse_args()
    records = list(islice(Irish5GSource(DATA, by_time=True).records(), args.events))

    with EmbeddedBroker("127.0.0.1", free_port()) as broker, tempfile.TemporaryDirectory() as tmp:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "TOPIC_NETWORK": "bench.network",
            "TOPIC_PARTITIONS": str(args.partitions),
            "STREAMS_APP_ID": "bench-network-worker",
            "BROKER_SESSION_TIMEOUT_SECONDS": "4",
            "BROKER_REBALANCE_TIMEOUT_SECONDS": "4",
            "STREAMS_BATCH_SIZE": str(args.batch_size),
        }
        settings = load_settings(**{k.lower(): v for k, v in env.items()})
        ensure_topics(settings)
        producer = EventProducer(settings)
        for r in records:
            producer.publish(settings.topic_network, r.key, encode_event(r.event))
        producer.flush()
        total = len(records)
        raw = asyncio.run(raw_aiokafka(broker.bootstrap_servers, settings.topic_network, total))
        bare = bare_faust(broker.bootstrap_servers, settings.topic_network, total)
        worker = millrace_worker(env, total, domain="network")

    result = {
        "benchmark": "network_throughput",
        "events": total,
        "data": "Irish 5G measurements, first N in timestamp order",
        "partitions": args.partitions,
        "batch_size": args.batch_size,
        "online_configs": "defaults: river_linear + river_forest for dl_bitrate and rsrp",
        "raw_aiokafka_events_per_s": round(raw),
        "bare_faust_events_per_s": round(bare),
        "millrace_worker_events_per_s": round(worker),
        "worker_vs_bare_faust": round(worker / bare, 3),
        "store": "sqlite",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
