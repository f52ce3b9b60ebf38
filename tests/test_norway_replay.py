"""Replay of the Norway by-make file through the real streams worker on the session broker: in
the default suite a slice (the file's first 4 months: 150 count events, 42,594 cars), and the
whole file (4,367 count events, 1,347,234 cars, 121 months) as the ``acceptance`` run
(``make acceptance``). The importer publishes one SALE event per make-month with its
``quantity``; the same replay as one event per car is checked for equal observations and
forecasts (``test_count_feed_and_unit_feed_store_the_same``).

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
from ml.periods import month_start, next_month
from ml.registry.store import Store
from ml.streaming import PartitionProcessor
from schemas.events import SaleContractEvent
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
    total: int  # cars (the sum of the quantities)
    events: int  # SALE count events (one per make-month)
    months: int
    rejected: int  # rows whose make is NA
    enough: int  # makes with MIN_HISTORY+ months before the last month
    #: also publish UNIT_MAKES as one event per car under the market UNIT_MARKET
    units: bool = False


#: makes whose cars the slice also publishes one by one (market UNIT_MARKET): the worker must
#: store exactly the observations of their count events
UNIT_MAKES = ("TOYOTA", "VOLVO", "SUZUKI")
UNIT_MARKET = "UNITS"


SLICE = Replay(
    through=(2007, 4), total=42_594, events=150, months=4, rejected=2, enough=33, units=True
)
WHOLE = Replay(through=None, total=1_347_234, events=4_367, months=121, rejected=10, enough=50)


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


def unit_events(count: SaleContractEvent) -> list[SaleContractEvent]:
    """The cars of a count event one by one (quantity 1) under UNIT_MARKET, spread over the
    month."""
    start = month_start(count.occurred_at)
    length = next_month(start) - start
    return [
        count.model_copy(
            update={
                "event_id": f"{count.event_id}/{i}",
                "occurred_at": start + length * (i + 0.5) / count.quantity,
                "quantity": 1,
                "market": UNIT_MARKET,
            }
        )
        for i in range(count.quantity)
    ]


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

    units: list[SaleContractEvent] = []

    def payloads() -> Iterator[tuple[bytes, bytes]]:
        for item in NorwaySource(path):
            if isinstance(item, Record):
                yield item.key.encode(), encode_event(item.event)
            else:
                rejected.append(item)

    def with_units() -> Iterator[tuple[bytes, bytes]]:
        """The count events and UNIT_MAKES' cars one by one, merged in event-time order."""
        events: list[SaleContractEvent] = []
        for item in NorwaySource(path):
            if isinstance(item, Record):
                events.append(item.event)
                if item.event.brand.upper() in UNIT_MAKES:
                    units.extend(unit_events(item.event))
            else:
                rejected.append(item)
        for event in sorted(events + units, key=lambda e: e.occurred_at):
            yield event.segment_key.encode(), encode_event(event)

    sent = publish(settings, with_units() if replay.units else payloads())
    assert sent == replay.events + len(units)
    assert (len(units) > 5_000) == replay.units
    assert len(rejected) == replay.rejected
    assert all("missing make" in r.reason for r in rejected)
    published = time.monotonic()
    # fails only when the worker stops storing events, however slow the machine
    wait_for_events(store, "demand", TOTAL + len(units), stall=120, interval=1)
    done = time.monotonic()
    print(
        f"\nNorway by make ({MONTHS} months): {replay.events:,} count events ({TOTAL:,} cars) "
        f"+ {len(units):,} unit events "
        f"serialized and published in {published - started:.1f} s, all in the store after "
        f"{done - started:.1f} s"
    )

    # every month, every make: exactly the file's quantity, nothing counted twice
    rows = store.series.observations("demand")
    by_car = {
        (r.series_key.removeprefix(UNIT_MARKET + "|"), r.period_start): r
        for r in rows
        if r.series_key.startswith(UNIT_MARKET + "|")
    }
    rows = [r for r in rows if not r.series_key.startswith(UNIT_MARKET + "|")]
    stored = {(r.series_key, r.period_start): r.n_events for r in rows}
    assert stored == dict(expected)
    # a count event stores exactly what its cars one by one store
    assert len(by_car) == (3 * MONTHS if replay.units else 0)
    for r in rows:
        if (car := by_car.get((r.series_key, r.period_start))) is not None:
            assert (car.n_events, car.fields) == (r.n_events, r.fields), r.series_key
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
    if replay.units:  # the same cars, one by one: forecast from their own history too
        enough += [f"{UNIT_MARKET}|{key}" for key in enough if key.split("|")[1] in UNIT_MAKES]
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
