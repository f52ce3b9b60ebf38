"""Network stream throughput of one streams worker vs a bare Faust loop vs a raw aiokafka
consumer, the method of ``ingest_throughput.py`` on the network topic.

Same broker (embedded Tansu), topic, partitions and events: the first ``--events`` Irish 5G
measurements in timestamp order (``../shared/data/cellular/...``). The worker does everything
it does in production: validation, dedupe, dead letters, per-cell windows, the default online
configs (linear + forest per field, predict-then-learn per closed window), forecasts, running
scores, one store transaction per batch with offsets and processor state. Rates are measured
from the first consumed event to the last (group-join time excluded), and so is each process's
CPU time (all its threads) per event: the bare Faust loop's is Faust's own per-message cost, the
worker's minus it what the worker adds. Each of ``--rounds`` rounds (default 3) runs all three
on a fresh broker and store; the figures are the medians, ``worker_vs_bare_faust`` the median
of the rounds' ratios (bare Faust's rate alone moves by a third between rounds on this machine).

    .venv/bin/python benchmarks/network_throughput.py [--events 100000] [--batch-size 500]
    .venv/bin/python benchmarks/network_throughput.py --shape sparse [--cells 800 --windows 120]

``--no-models`` deletes every model config before the worker starts: no online model, forecast
or drift statistic, so the worker only validates, dedupes, folds observations and commits them
with its positions (what the models' work adds to).

``--shape sparse`` replaces the Irish data with a deterministic synthetic stream of the shape
where every event closes a window: ``--cells`` cells x ``--windows`` consecutive 60 s windows
(the default configs' window), ONE measurement per cell per window (800 x 120: the shape of
800 cells with 120 daily values, on the configs' time scale). Cell ``c`` measures window ``t``
at ``2026-01-01T00:00:00Z + 60 t + (c mod 50)`` seconds with ``rsrp`` and ``dl_bitrate`` from a
per-cell level, a slow sine and noise of ``random.Random(c)``; events are published in time
order (cell order within a window); ``--events`` keeps the first N.

Every run also measures the *processor alone*, in this process, before the broker starts: the
same events split into ``--partitions`` partitions by key (crc32 of the cell id), in batches of
``--batch-size`` events, each partition's ``NetworkProcessor.process`` plus its pickled state
(what the worker checkpoints) per batch; no broker, store or Faust. It depends on the machine's
load much less than the ratios (a single process, timed alone) and is reported as
``processor_only_events_per_s``.

Writes ``benchmarks/results/network_throughput.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ingest_throughput import bare_faust, millrace_worker, raw_aiokafka  # noqa: E402

from millrace.broker import EmbeddedBroker  # noqa: E402
from millrace.importers.base import Record  # noqa: E402
from millrace.importers.irish5g import Irish5GSource  # noqa: E402
from millrace.kafka import EventProducer, encode_event, ensure_topics  # noqa: E402
from millrace.settings import load_settings  # noqa: E402
from ml.network.configs import DEFAULT_CONFIGS  # noqa: E402
from ml.registry.store import Store  # noqa: E402
from schemas.events import NetworkMeasurementEvent, deterministic_id  # noqa: E402
from tests.fixtures.broker import free_port  # noqa: E402

DATA = ROOT.parent / "shared/data/cellular/irish_5g_raca2020/irish_5g_all_traces.csv.gz"


SPARSE_START = datetime(2026, 1, 1, tzinfo=UTC)
SPARSE_WINDOW_SECONDS = 60


def sparse_records(cells: int, windows: int) -> list[Record]:
    """One measurement per cell per window, time order (see the module doc)."""
    rngs = [random.Random(c) for c in range(cells)]
    levels = [(rng.uniform(-110, -80), rng.uniform(2_000, 60_000)) for rng in rngs]
    out = []
    for t in range(windows):
        for c in range(cells):
            rng, (rsrp, rate) = rngs[c], levels[c]
            wave = math.sin(t / 12 + c)
            cell_id = f"sparse-{c:04d}"
            event = NetworkMeasurementEvent(
                event_id=deterministic_id("bench-sparse", c, t),
                occurred_at=SPARSE_START + timedelta(seconds=SPARSE_WINDOW_SECONDS * t + c % 50),
                cell_id=cell_id,
                rsrp=round(rsrp + 4 * wave + rng.gauss(0, 2), 1),
                dl_bitrate=round(max(0.0, rate * (1 + 0.3 * wave) + rng.gauss(0, rate / 10))),
            )
            out.append(Record("topic_network", cell_id, event))
    return out


def processor_only(records: list[Record], partitions: int, batch_size: int) -> dict[str, float]:
    """Events/s of the network processors alone (see the module doc), with the seconds spent
    processing and pickling states."""
    from ml.network.processor import NetworkProcessor

    processors = [NetworkProcessor() for _ in range(partitions)]
    batches = []
    for start in range(0, len(records), batch_size):
        parts: dict[int, list] = {}
        for r in records[start : start + batch_size]:
            parts.setdefault(zlib.crc32(r.key.encode()) % partitions, []).append(r.event)
        batches.append(parts)
    processing = pickling = 0.0
    for parts in batches:
        for p, events in sorted(parts.items()):
            t0 = time.perf_counter()
            processors[p].process(events)
            t1 = time.perf_counter()
            processors[p].state()
            pickling += time.perf_counter() - t1
            processing += t1 - t0
    return {
        "events_per_s": len(records) / (processing + pickling),
        "process_seconds": processing,
        "state_seconds": pickling,
    }


def measure(records: list[Record], args: argparse.Namespace) -> dict[str, Any]:
    """One round on a fresh broker and store: raw aiokafka, bare Faust, then the worker, each
    over all of ``records`` published to a new topic."""
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
        if args.no_models:  # every stored config deleted: the live set is empty
            registry = Store.from_url(env["DATABASE_URL"], upgrade=True).network
            for config in DEFAULT_CONFIGS:
                registry.put_config(config)
                registry.delete_config(config.id)
        raw = asyncio.run(raw_aiokafka(broker.bootstrap_servers, settings.topic_network, total))
        bare = bare_faust(broker.bootstrap_servers, settings.topic_network, total)
        worker = millrace_worker(env, total, domain="network")
    print(
        f"  raw {raw:,.0f}  bare Faust {bare.events_per_s:,.0f} ev/s"
        f" ({bare.cpu_us_per_event:.0f} us CPU/event)  worker {worker.events_per_s:,.0f} ev/s"
        f" ({worker.cpu_us_per_event:.0f} us CPU/event)  ratio"
        f" {worker.events_per_s / bare.events_per_s:.3f}",
        flush=True,
    )
    return {"raw": raw, "bare_faust": bare, "worker": worker}


def _ratio(round_: dict[str, Any]) -> float:
    return round_["worker"].events_per_s / round_["bare_faust"].events_per_s


def _commit() -> str:
    """The checked-out commit (with ``+changes`` when the code differs from it; the results
    files are left out: a run writes them)."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    status = ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!*/results/*"]
    dirty = subprocess.run(status, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return f"{head}+changes" if dirty else head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="first N events")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=500, help="STREAMS_BATCH_SIZE")
    parser.add_argument("--shape", choices=("irish", "sparse"), default="irish")
    parser.add_argument("--cells", type=int, default=800, help="sparse: cells")
    parser.add_argument("--windows", type=int, default=120, help="sparse: windows per cell")
    parser.add_argument(
        "--no-models",
        action="store_true",
        help="the worker without online models (no forecasts, no drift): what the rest costs",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, fresh broker each")
    parser.add_argument(
        "--out", default=None, help="default results/network_throughput[_sparse][_no_models]"
    )
    args = parser.parse_args()
    if args.shape == "sparse":
        records = sparse_records(args.cells, args.windows)[: args.events]
        data = (
            f"synthetic sparse: {args.cells} cells x {args.windows} windows of 60 s, one "
            "measurement per cell per window (rsrp, dl_bitrate), first N in time order"
        )
    else:
        records = list(islice(Irish5GSource(DATA, by_time=True).records(), args.events))
        data = "Irish 5G measurements, first N in timestamp order"
    name = "network_throughput" + ("_sparse" if args.shape == "sparse" else "")
    name += "_no_models" if args.no_models else ""
    out = args.out or str(ROOT / f"benchmarks/results/{name}.json")

    alone = processor_only(records, args.partitions, args.batch_size)
    rounds = [measure(records, args) for _ in range(args.rounds)]
    median = statistics.median
    bare_cpu = median(r["bare_faust"].cpu_us_per_event for r in rounds)
    worker_cpu = median(r["worker"].cpu_us_per_event for r in rounds)
    result = {
        "benchmark": "network_throughput",
        "events": len(records),
        "shape": args.shape,
        "data": data,
        "partitions": args.partitions,
        "batch_size": args.batch_size,
        "online_configs": "none (--no-models: every config deleted)"
        if args.no_models
        else "defaults: river_linear + river_forest for dl_bitrate and rsrp "
        "(NETWORK_TREE_MIN_MEASUREMENTS default: forests skip once-measured windows)",
        "rounds": args.rounds,
        "raw_aiokafka_events_per_s": round(median(r["raw"] for r in rounds)),
        "bare_faust_events_per_s": round(median(r["bare_faust"].events_per_s for r in rounds)),
        "millrace_worker_events_per_s": round(median(r["worker"].events_per_s for r in rounds)),
        "worker_vs_bare_faust": round(median(_ratio(r) for r in rounds), 3),
        "worker_vs_bare_faust_per_round": [round(_ratio(r), 3) for r in rounds],
        "cpu_us_per_event": {
            "what": "CPU seconds of each process (all threads) from its first consumed event "
            "to the last, per event; median of the rounds",
            "bare_faust": round(bare_cpu, 1),
            "worker": round(worker_cpu, 1),
            "worker_minus_bare_faust": round(worker_cpu - bare_cpu, 1),
        },
        "per_round": [
            {
                "raw_aiokafka_events_per_s": round(r["raw"]),
                "bare_faust_events_per_s": round(r["bare_faust"].events_per_s),
                "bare_faust_cpu_us_per_event": round(r["bare_faust"].cpu_us_per_event, 1),
                "millrace_worker_events_per_s": round(r["worker"].events_per_s),
                "worker_cpu_us_per_event": round(r["worker"].cpu_us_per_event, 1),
            }
            for r in rounds
        ],
        "processor_only_events_per_s": round(alone["events_per_s"]),
        "processor_only_seconds": {
            "process": round(alone["process_seconds"], 2),
            "state_pickling": round(alone["state_seconds"], 2),
        },
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "store": "sqlite",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([".venv/bin/python benchmarks/network_throughput.py", *sys.argv[1:]]),
        "code": _commit(),
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
