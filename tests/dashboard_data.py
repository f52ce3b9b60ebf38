"""A store with something on every dashboard page, built from the tests' own seeders (no
stream run): a trained demand version and a second activation, the network registry of
``test_api_network`` (configs, a trained version, an election, score history), drift events
over time with the retrain job they asked for, dead letters of several types, and stream
positions behind real records on the broker (so consumer lag is real)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from confluent_kafka import Producer

from ml.demand.processor import ONLINE_MODEL
from ml.registry.entities import DeadLetterRow, ForecastRow, StatisticsChange
from ml.registry.store import Store
from tests.api_server import train_first_version
from tests.factories import sale
from tests.store_helpers import add_drift_event, upsert_forecasts
from tests.test_api_network import prepare as prepare_network

__all__ = ["prepare_dashboard", "fill_topics"]

NOW = datetime.now(UTC).replace(microsecond=0)


def prepare_dashboard(
    consumer: str, topic: str, partitions: int = 4
) -> Callable[[Store, Path], None]:
    """The ``prepare`` of :func:`tests.api_server.start_api` for a stream ``consumer`` of the
    sales ``topic`` (give both to the API's environment too)."""
    return lambda store, model_dir: _prepare(store, model_dir, consumer, topic, partitions)


def _prepare(store: Store, model_dir: Path, consumer: str, topic: str, partitions: int) -> None:
    version = train_first_version(store, model_dir)
    store.models.record_activation("demand", "global", version, reason="operator check",
                                   actor="ops@example.com")  # fmt: skip
    prepare_network(store, model_dir)
    segment = store.series.observations("demand")[0].series_key
    # what the stream stores at each month close: the online model's next months
    upsert_forecasts(store, [
        ForecastRow("demand", segment, ONLINE_MODEL, datetime(2024, 7 + i, 1, tzinfo=UTC),
                    30.0 + i, 22.0 + i, 38.0 + i, None)
        for i in range(6)
    ])  # fmt: skip
    for i, (scope, detector, value) in enumerate(
        [
            (segment, "adwin", 3.5),
            (segment, "page_hinkley", 4.1),
            ("global", "input_mean", 2.2),
            ("cell-1|rsrp", "level", 6.0),
        ]
    ):
        add_drift_event(
            store,
            event_id=f"drift-{i}",
            domain="network" if "|rsrp" in scope else "demand",
            scope=scope,
            detector=detector,
            statistic="abs_error",
            value=value,
            threshold=3.0,
            model_version=version,
            occurred_at=NOW - timedelta(hours=30 - 7 * i),
            evidence={"window": 12, "mean_before": 4.0, "mean_after": 4.0 + value},
        )
    job = store.jobs.create_job("demand", "global", "drift", request_ids=["req-0", "req-1"])
    store.jobs.update_job(
        job.id,
        status="failed",
        error="Insufficient training data (drill)",
        created_at=NOW - timedelta(hours=21),
        started_at=NOW - timedelta(hours=21),
        finished_at=NOW - timedelta(hours=20),
    )
    dead = [
        ("invalid_json", "Expecting value: line 1 column 1"),
        ("schema_violation", "brand: Field required"),
        ("schema_violation", "sale_price: Input should be greater than 0"),
        ("future_timestamp", "occurred_at is 75 years ahead"),
    ]
    store.stream.apply_observations(
        [],
        dead_letters=[
            DeadLetterRow(
                f"dl-{i}",
                consumer,
                topic,
                i % 2,
                100 + i,
                None,
                kind,
                reason,
                "{not json",
                9,
                NOW - timedelta(minutes=i),
            )
            for i, (kind, reason) in enumerate(dead)
        ],  # fmt: skip
    )
    stats = {(segment, "n"): 12, (segment, "fields"): {"sales": {"mean": 4.2, "std": 1.1}},
             ("global", "recent_mae"): 1.5}  # fmt: skip
    for partition in range(partitions):
        key = (consumer, topic, partition)
        change = StatisticsChange("demand", stats, replace=True)
        store.stream.apply_observations([], {key: 2 + partition}, statistics={key: change})


def fill_topics(kafka: str, topic: str, partitions: int = 4, per_partition: int = 12) -> None:
    """Real records on each partition of ``topic`` (the stored positions lag behind)."""
    producer = Producer({"bootstrap.servers": kafka})
    for partition in range(partitions):
        for i in range(per_partition):
            producer.produce(topic, orjson.dumps(sale(i)), partition=partition)
            # one record per batch: the embedded broker's end offset counts a batch as one
            assert producer.flush(30) == 0
