"""Replay of the Norway by-make file through the real streams worker on the session broker: in
the default suite a slice (the file's first 4 months, 42,594 SALE events), and the whole file
(1,347,234 SALE events, 121 months) as the ``acceptance`` run (``make acceptance``).

Checked: every month of the file is in the store with exactly the file's quantity per make (the
rows whose make is ``NA`` are rejected by the importer), every partition's monthly book closed
every month the watermark passed (all but the last month, which no later event can close),
online forecasts of the next months exist for every make with enough history, and the running
metrics of the online model are recorded per close and per make.

Speed: the events are serialized and published in chunks with confluent-kafka's batch producer
while the worker already consumes; the worker runs with 5,000-event batches.
"""

from __future__ import annotations

import csv
import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pytest
from confluent_kafka import Producer

from millrace.importers.base import Record, Rejected
from millrace.importers.norway import NorwaySource
from millrace.kafka import encode_event, ensure_topics
from ml.demand.processor import ONLINE_MODEL
from ml.registry.store import Store
from ml.streaming import PartitionProcessor
from tests.fixtures.broker import settings_from, wait_for_events

pytestmark = pytest.mark.integration

BY_MAKE = "vehicle/norway_ofv/norway_new_car_sales_by_make.csv"
HORIZON = 6
#: months a make needs before the forecaster uses its own history (``min_history``)
MIN_HISTORY = 3
CHUNK = 20_000


class Replay(NamedTuple):
    """What a replay of the file (or of its first months) must show."""

    #: last (year, month) replayed; ``None``: the whole file
    through: tuple[int, int] | None
    total: int  # SALE events
    months: int
    rejected: int  # rows whose make is NA
    enough: int  # makes with MIN_HISTORY+ months before the last month


SLICE = Replay(through=(2007, 4), total=42_594, months=4, rejected=2, enough=33)
WHOLE = Replay(through=None, total=1_347_234, months=121, rejected=10, enough=50)


def slice_file(path: Path, through: tuple[int, int], out: Path) -> Path:
    """The rows of ``path`` up to the month ``through`` (inclusive), byte for byte."""
    with open(path, encoding="utf-8-sig", newline="") as src:
        lines = src.readlines()
    with open(out, "w", encoding="utf-8", newline="") as dst:
        dst.write(lines[0])
        for line in lines[1:]:
            year, month = next(csv.reader([line]))[:2]
            if (int(year), int(month)) <= through:
                dst.write(line)
    return out


def batched(items: Iterable, size: int) -> Iterable[list]:
    """Lists of ``size`` items (the last one shorter); ``itertools.batched`` is 3.12+."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def file_counts(path: Path) -> Counter[tuple[str, datetime]]:
    """Quantity per (series key, month) read straight from the CSV; ``NA`` makes left out."""
    counts: Counter[tuple[str, datetime]] = Counter()
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            make = row["Make"].replace("\u00a0", " ").strip()
            if make.upper() in {"", "NA"}:
                continue
            month = datetime(int(row["Year"]), int(row["Month"]), 1, tzinfo=UTC)
            if int(row["Quantity"]):
                counts[(f"CAR|{make.upper()}|ALL|", month)] += int(row["Quantity"])
    return counts


def publish(settings, payloads: Iterable[tuple[bytes, bytes]]) -> int:
    """Publish (key, value) pairs in batches of CHUNK as they come; fail on any undelivered
    one; return how many were published."""
    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "enable.idempotence": False,
        }
    )
    failed: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failed.append(str(err))

    published = 0
    for chunk in batched(payloads, CHUNK):
        batch = [{"key": k, "value": v} for k, v in chunk]
        published += len(batch)
        while batch:
            queued = producer.produce_batch(settings.topic_sales, batch, on_delivery=on_delivery)
            batch = [m for m in batch if "_error" in m]  # queue full: wait and retry those
            if batch:
                for m in batch:
                    del m["_error"]
                producer.poll(0.1)
            elif queued:
                producer.poll(0)
    assert producer.flush(120) == 0
    assert not failed, failed[:3]
    return published


@pytest.mark.parametrize(
    "replay",
    [
        pytest.param(SLICE, id="first-4-months"),
        pytest.param(WHOLE, id="whole-file", marks=pytest.mark.acceptance),
    ],
)
def test_norway_by_make_replay_closes_every_month(
    replay: Replay, make_env, spawn, shared_data: Path, tmp_path: Path
) -> None:
    path = shared_data / BY_MAKE
    if not path.is_file():
        pytest.skip(f"Norway by-make data not found at {path}")
    if replay.through:
        path = slice_file(path, replay.through, tmp_path / "by_make_slice.csv")
    TOTAL, MONTHS = replay.total, replay.months  # noqa: N806
    expected = file_counts(path)
    assert sum(expected.values()) == TOTAL

    env = make_env(STREAMS_BATCH_SIZE="5000")
    settings = settings_from(env)
    ensure_topics(settings)
    store = Store.from_url(env["DATABASE_URL"])
    spawn(["streams", "--loglevel", "warning"], env)

    # serialized chunk by chunk, so the worker consumes while the rest is being serialized
    started = time.monotonic()
    rejected: list[Rejected] = []

    def payloads() -> Iterator[tuple[bytes, bytes]]:
        for item in NorwaySource(path):
            if isinstance(item, Record):
                yield item.key.encode(), encode_event(item.event)
            else:
                rejected.append(item)

    assert publish(settings, payloads()) == TOTAL
    assert len(rejected) == replay.rejected
    assert all("missing make" in r.reason for r in rejected)
    published = time.monotonic()
    # fails only when the worker stops storing events, however slow the machine
    wait_for_events(store, "demand", TOTAL, stall=120, interval=1)
    done = time.monotonic()
    print(
        f"\nNorway by make ({MONTHS} months): {TOTAL:,} events serialized and published in "
        f"{published - started:.1f} s, all in the store after {done - started:.1f} s "
        f"({TOTAL / (done - started):,.0f} events/s end to end)"
    )

    # every month, every make: exactly the file's quantity, nothing counted twice
    rows = store.series.observations("demand")
    stored = {(r.series_key, r.period_start): r.n_events for r in rows}
    assert stored == dict(expected)
    assert len({month for _, month in stored}) == MONTHS
    last_month = max(month for _, month in stored)
    year, month = replay.through or (2017, 1)
    assert last_month == datetime(year, month, 1, tzinfo=UTC)
    closed = datetime(year - (month == 1), (month - 2) % 12 + 1, 1, tzinfo=UTC)

    # every partition's book closed every month up to the last one (nothing comes after it)
    processors = [
        PartitionProcessor.loads(c.state.blob)
        for c in store.stream.checkpoints(env["STREAMS_APP_ID"]).values()
        if c.state
    ]
    assert len(processors) == settings.topic_partitions
    assert {p.book.closed_through for p in processors} == {closed}
    assert sum(p.book.late_events for p in processors) == 0

    # forecasts of the next HORIZON months for every make with enough history
    # (the store keeps the forecasts made at earlier closes too: look at the latest ones)
    history = Counter(key for key, month in expected if month <= closed)
    enough = sorted(k for k in history if history[k] >= MIN_HISTORY)
    # whole file: 54 of the 65 makes sold in 3+ months; first 4 months: 33 of 41
    assert len(enough) >= replay.enough
    after = [datetime(year + (month + m - 1) // 12, (month + m - 1) % 12 + 1, 1, tzinfo=UTC)
             for m in range(HORIZON)]  # fmt: skip
    for key in enough:
        forecasts = [
            f
            for f in store.series.forecasts("demand", key, ONLINE_MODEL)
            if f.period_start > closed
        ]
        assert [f.period_start for f in forecasts] == after, key
        assert all(math.isfinite(f.value) and f.value >= 0 for f in forecasts), key
        assert all(f.fallback_level is None for f in forecasts), key  # its own history

    # running metrics: the partitions' global scores at every close, per-make MAE
    scores = store.monitoring.score_history("demand", "global", ONLINE_MODEL)
    by_metric = Counter(s.metric for s in scores)
    assert set(by_metric) == {"mae", "rmse", "mape", "r2"}
    # one row per metric per partition per closed month (every partition starts in 2007-01)
    assert by_metric["mae"] == (MONTHS - 1) * settings.topic_partitions
    assert all(math.isfinite(s.score) for s in scores)
    assert all(store.monitoring.score_history("demand", k, ONLINE_MODEL) for k in enough)
    for p in processors:
        assert p.forecaster.metrics()["mae"] is not None
