"""The prediction log without a server: the store (append, last N, latencies, retention), the
API's buffered recorder (no I/O on record, batches on flush, kept when the store fails) and the
latency figures computed from the log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from api.prediction_log import PredictionRecorder
from api.telemetry import latency_summary
from millrace.settings import Settings
from ml.registry.entities import PredictionRow
from ml.registry.store import Store

T0 = datetime(2026, 11, 28, 12, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.from_url(f"sqlite:///{tmp_path / 'log.db'}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def either_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return Store.from_url(f"sqlite:///{tmp_path / 'log.db'}")
    return Store.from_url(request.getfixturevalue("fresh_postgres_url"))


def _row(i: int, version: str = "v1", at: datetime = T0) -> PredictionRow:
    return PredictionRow("demand", "predict", version, {"brand": f"B{i}"},
                         {"predictions": [i]}, float(i), at + timedelta(seconds=i))  # fmt: skip


def test_store_keeps_order_reads_the_last_n_and_applies_retention(either_store: Store) -> None:
    store = either_store
    assert store.predictions.add_many([_row(i) for i in range(10)]) == 10
    last = store.predictions.recent(3)
    assert [r.inputs["brand"] for r in last] == ["B9", "B8", "B7"]
    assert last[0].output == {"predictions": [9]} and last[0].served_at == T0 + timedelta(seconds=9)
    latencies = store.predictions.latencies(4)
    assert [ms for _, ms, _ in latencies] == [6.0, 7.0, 8.0, 9.0]  # oldest first
    assert store.predictions.prune(max_rows=6) == 4
    assert store.predictions.count() == 6
    assert store.predictions.recent(100)[-1].inputs["brand"] == "B4"
    # by age: rows served more than 30 s before "now" go
    deleted = store.predictions.prune(max_age=timedelta(seconds=30), now=T0 + timedelta(seconds=37))
    assert deleted == 3 and store.predictions.count() == 3


class Body(BaseModel):
    brand: str
    horizon_months: int = 6


def test_recorder_buffers_then_flushes_in_one_batch(store: Store) -> None:
    recorder = PredictionRecorder(store, Settings(_env_file=None))
    body = Body(brand="TOYOTA")
    for i in range(5):
        recorder.record("demand", "predict", "v1", body, {"segment": "CAR|TOYOTA"}, 0.001 * i)
    assert recorder.pending() == 5 and store.predictions.count() == 0  # nothing written yet
    assert asyncio.run(recorder.flush()) == 5
    assert recorder.pending() == 0
    rows = store.predictions.recent(5)
    assert rows[0].inputs == {"brand": "TOYOTA", "horizon_months": 6}
    assert rows[0].latency_ms == pytest.approx(4.0) and rows[0].model_version == "v1"


class BrokenLog:
    def __init__(self) -> None:
        self.fail = True

    def add_many(self, rows: list) -> int:
        if self.fail:
            raise OSError("database is locked")
        return len(rows)

    def prune(self, *args: object) -> int:
        return 0


def test_a_failed_flush_keeps_the_predictions_and_drops_only_past_the_buffer(store) -> None:
    settings = Settings(_env_file=None, prediction_log_buffer=100)
    dropped: list[int] = []
    recorder = PredictionRecorder(store, settings, on_drop=dropped.append)
    broken = BrokenLog()
    store.predictions = broken  # type: ignore[assignment]
    for i in range(60):
        recorder.record("demand", "predict", "v1", {"i": i}, {}, 0.001)
    assert asyncio.run(recorder.flush()) == 0 and recorder.pending() == 60
    for i in range(60, 120):
        recorder.record("demand", "predict", "v1", {"i": i}, {}, 0.001)
    assert recorder.pending() == 100 and recorder.dropped == 20 and sum(dropped) == 20
    broken.fail = False
    assert asyncio.run(recorder.flush()) == 100


def test_latency_summary_overall_and_by_version() -> None:
    items = [(float(i), float(i + 1), "v1" if i < 5 else "v2") for i in range(10)]
    overall, by_version = latency_summary(items)
    assert overall.count == 10 and overall.avg_ms == pytest.approx(5.5)
    assert overall.rate_per_s == pytest.approx(1.0)
    assert by_version["v1"].count == 5 and by_version["v2"].avg_ms == pytest.approx(8.0)
    empty, none = latency_summary([])
    assert empty.count == 0 and empty.p99_ms is None and none == {}


class FailingWorker:
    """A worker whose process is unreachable (as a pool that broke)."""

    def call(self, fn: object, *args: object) -> int:
        raise OSError("the worker died")


def test_with_a_worker_the_rows_are_written_by_its_process_and_kept_when_it_fails(
    store: Store,
) -> None:
    """The app's book worker writes the log on its own store: the serving process's store is
    never used for it (here it would raise), retention runs there too, and a failed hand-over
    keeps the batch in memory as a failed store write does."""
    from api.books import BookBuilder

    worker = BookBuilder(store)
    assert worker.in_process  # a SQLite file: the worker process opens it itself
    settings = Settings(_env_file=None, prediction_log_max_rows=3)
    recorder = PredictionRecorder(store, settings, worker=worker)
    own_log = store.predictions
    store.predictions = BrokenLog()  # type: ignore[assignment] - the serving process's store
    try:
        body = Body(brand="TOYOTA")
        for i in range(5):
            recorder.record("demand", "predict", "v1", body, {"segment": "CAR|TOYOTA"}, 0.001 * i)
        assert asyncio.run(recorder.flush()) == 5 and recorder.pending() == 0
        assert own_log.count() == 3  # written, then pruned to the retention, by the worker
        rows = own_log.recent(3)
        assert rows[0].inputs == {"brand": "TOYOTA", "horizon_months": 6}
        assert rows[0].latency_ms == pytest.approx(4.0)
    finally:
        worker.close()
    failing = PredictionRecorder(store, settings, worker=FailingWorker())  # type: ignore[arg-type]
    failing.record("demand", "predict", "v1", body, {}, 0.001)
    assert asyncio.run(failing.flush()) == 0 and failing.pending() == 1
