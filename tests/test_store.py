"""The registry store on SQLite and on a real PostgreSQL server: same code, same results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from ml.aggregates import FieldStats
from ml.observations import ObservationDelta
from ml.registry.db import current_revision, make_engine, upgrade
from ml.registry.entities import ForecastRow, ProcessorState, StatisticsChange, StoredCheckpoint
from ml.registry.errors import StaleCheckpoint
from ml.registry.models import Base
from ml.registry.store import Store
from tests.store_helpers import add_drift_event, observation_totals, open_job, upsert_forecasts

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nested' / 'store.db'}"
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture
def store(store_url: str):
    store = Store.from_url(store_url)
    yield store
    store.close()


def delta(series: str, month: int, sales: int, price: float = 100.0) -> ObservationDelta:
    fields = {
        "sales": FieldStats(sales, float(sales), float(sales), 1.0, 1.0),
        "sale_price": FieldStats.of(price),
    }
    return ObservationDelta("demand", series, T0.replace(month=month), sales, fields)


def test_upgrade_is_idempotent_and_matches_models(store_url: str) -> None:
    upgrade(store_url)
    upgrade(store_url)
    assert current_revision(store_url) == "0010"
    store = Store.from_url(store_url, upgrade=False)
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    store.close()


def test_upgrade_from_0004_keeps_checkpoints_as_state_version_1(store_url: str) -> None:
    """A database of revision 0004 (states without versions) upgrades in place: its stored
    states become version 1, the format the processors had then."""
    upgrade(store_url, "0004")
    engine = make_engine(store_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                'INSERT INTO stream_checkpoints (consumer, topic, partition, "offset", state,'
                " updated_at) VALUES ('c', 'sales', 0, 7, :blob, :at), "
                "('c', 'sales', 1, 3, NULL, :at)"
            ),
            {"blob": b"\x00state", "at": T0},
        )
    engine.dispose()
    upgrade(store_url)
    assert current_revision(store_url) == "0010"
    store = Store.from_url(store_url, upgrade=False)
    assert store.stream.checkpoints("c") == {
        ("sales", 0): StoredCheckpoint("sales", 0, 7, ProcessorState(1, b"\x00state")),
        ("sales", 1): StoredCheckpoint("sales", 1, 3, None),
    }
    assert store.stream.statistics("c", "sales") == []
    store.close()


def test_observations_merge_across_batches(store: Store) -> None:
    store.stream.apply_observations(
        [delta("A", 1, 2, 10.0), delta("A", 1, 3, 30.0), delta("B", 2, 1)], {("c", "sales", 0): 5}
    )
    store.stream.apply_observations([delta("A", 1, 1, 50.0)], {("c", "sales", 0): 9})
    rows = {(r.series_key, r.period_start.month): r for r in store.series.observations("demand")}
    a = rows[("A", 1)]
    assert a.n_events == 6 and a.fields["sales"].count == 6
    assert a.fields["sale_price"].count == 3 and a.fields["sale_price"].max == 50.0
    assert a.period_start == T0 and a.period_start.tzinfo is not None
    assert observation_totals(store, "demand") == {"A": 6, "B": 1}
    assert store.series.count_events("demand") == 7
    assert store.stream.checkpoints("c") == {("sales", 0): StoredCheckpoint("sales", 0, 9, None)}
    [stats] = store.series.observation_stats()
    assert stats["events"] == 7 and stats["series"] == 2
    assert stats["latest_period"] == T0.replace(month=2)


def test_large_counts_do_not_overflow_n_events(store: Store) -> None:
    """Count events (quantity up to 10 million each) add up past 32 bits in one segment-month."""
    big = 3_000_000_000
    store.stream.apply_observations([delta("A", 1, big)], {("c", "sales", 0): 1})
    store.stream.apply_observations([delta("A", 1, big)], {("c", "sales", 0): 2})
    (row,) = store.series.observations("demand")
    assert row.n_events == 2 * big == row.fields["sales"].count
    assert store.series.count_events("demand") == 2 * big


def test_observations_and_checkpoint_commit_together_or_not_at_all(store: Store) -> None:
    with pytest.raises(ValueError):
        store.stream.apply_observations([delta("A", 1, 4)], {("c", "sales", 0): -1})
    assert store.series.count_events("demand") == 0
    assert store.stream.checkpoints("c") == {}


def test_checkpoint_state_round_trip(store: Store) -> None:
    key = ("c", "network", 3)
    store.stream.apply_observations([], {key: 41}, {key: ProcessorState(2, b"\x00state")})
    store.stream.apply_observations([], {key: 42})
    [stored] = store.stream.checkpoints("c").values()
    assert stored == StoredCheckpoint("network", 3, 42, ProcessorState(2, b"\x00state"))


def test_statistics_rows_change_with_the_batch(store: Store) -> None:
    key = ("c", "sales", 0)
    full = {("A", "n"): 1, ("A", "fields"): {"x": 1.5}, ("global", "mae"): float("nan")}
    change = StatisticsChange("demand", full, replace=True)
    store.stream.apply_observations([], {key: 1}, statistics={key: change})
    rows = store.stream.statistics("c", "sales")
    assert {(r.scope, r.name): r.value for r in rows} == {
        ("A", "n"): 1,
        ("A", "fields"): {"x": 1.5},
        ("global", "mae"): None,  # non-finite floats are stored as null
    }
    assert {r.domain for r in rows} == {"demand"} and {r.partition for r in rows} == {0}
    # changed rows upserted, removed ones deleted; a fenced batch that fails writes nothing
    change = StatisticsChange(
        "demand", {("A", "n"): 2, ("B", "n"): 1}, frozenset({("A", "fields")})
    )
    with pytest.raises(StaleCheckpoint):
        store.stream.apply_observations([], {key: 2}, statistics={key: change}, expected={key: 0})
    assert len(store.stream.statistics("c", "sales")) == 3
    store.stream.apply_observations([], {key: 2}, statistics={key: change}, expected={key: 1})
    rows = store.stream.statistics("c", "sales")
    assert {(r.scope, r.name): r.value for r in rows} == {
        ("A", "n"): 2,
        ("B", "n"): 1,
        ("global", "mae"): None,
    }
    # a replacement drops what it does not name, of this partition only
    other = ("c", "sales", 1)
    store.stream.apply_observations(
        [],
        {other: 5},
        statistics={other: StatisticsChange("demand", {("C", "n"): 1}, replace=True)},
    )
    store.stream.apply_observations(
        [], {key: 3}, statistics={key: StatisticsChange("demand", {("A", "n"): 3}, replace=True)}
    )
    rows = store.stream.statistics("c", "sales")
    assert [(r.partition, r.scope, r.name, r.value) for r in rows] == [
        (0, "A", "n", 3),
        (1, "C", "n", 1),
    ]
    assert store.stream.statistics("c", "network") == []


def test_versions_activations_and_live_at(store: Store) -> None:
    for n in (1, 2, 3):
        store.models.add_version(
            domain="demand",
            scope="global",
            version=f"v1.0.{n}-20240101",
            algorithm="gbm",
            features=["lag_1"],
            metrics={"mae": float(n)},
            train_samples=80,
            test_samples=20,
            total_samples=100,
            segments_covered=5,
        )
    times = [T0 + timedelta(days=d) for d in (1, 10, 20)]
    store.models.record_activation("demand", "global", "v1.0.1-20240101", "first", at=times[0])
    store.models.record_activation("demand", "global", "v1.0.2-20240101", "better", at=times[1])
    back = store.models.record_activation(
        "demand", "global", "v1.0.1-20240101", "rollback", actor="ops", at=times[2]
    )
    assert back.previous_version == "v1.0.2-20240101"
    assert store.models.live_at("demand", "global", T0) is None
    assert (
        store.models.live_at("demand", "global", times[0] + timedelta(days=2)) == "v1.0.1-20240101"
    )
    assert (
        store.models.live_at("demand", "global", times[1] + timedelta(hours=1)) == "v1.0.2-20240101"
    )
    assert store.models.live_at("demand", "global", times[2]) == "v1.0.1-20240101"
    assert store.models.active_version("demand") == "v1.0.1-20240101"
    statuses = {v.version: v.status for v in store.models.list_versions(domain="demand")}
    assert statuses == {
        "v1.0.1-20240101": "active",
        "v1.0.2-20240101": "retired",
        "v1.0.3-20240101": "candidate",
    }
    assert [v.version for v in store.models.list_versions(status="active")] == ["v1.0.1-20240101"]
    assert len(store.models.activations("demand")) == 3
    with pytest.raises(KeyError):
        store.models.record_activation("demand", "global", "v9.9.9-20240101", "nope")


def test_job_lifecycle(store: Store) -> None:
    job = store.jobs.create_job("demand", "global", "drift", request_ids=["r1"])
    assert job.status == "queued" and open_job(store, "demand", "global").id == job.id
    store.jobs.update_job(job.id, status="running", started_at=T0)
    store.jobs.update_job(
        job.id, status="failed", finished_at=T0, error="Insufficient training data"
    )
    assert open_job(store, "demand", "global") is None
    done = store.jobs.get_job(job.id)
    assert (done.status, done.error, done.request_ids) == (
        "failed",
        "Insufficient training data",
        ["r1"],
    )
    assert [j.id for j in store.jobs.list_jobs(status="failed")] == [job.id]


def test_drift_events_dedupe_on_event_id(store: Store) -> None:
    kwargs = dict(
        event_id="d1",
        domain="demand",
        scope="global",
        detector="adwin",
        statistic="abs_error",
        value=3.5,
        occurred_at=T0,
        evidence={"n": 12},
    )
    assert add_drift_event(store, **kwargs) is True
    assert add_drift_event(store, **kwargs) is False
    [event] = store.monitoring.drift_events("demand")
    assert event.evidence == {"n": 12} and event.occurred_at == T0


def test_score_history_oldest_first(store: Store) -> None:
    for i, trigger in enumerate(["evaluate", "monitor", "auto_monitor"]):
        store.monitoring.add_score(
            domain="network",
            scope="DL_bitrate",
            model_id="m1",
            metric="rmse",
            score=1.0 + i,
            trigger=trigger,
            recorded_at=T0 + timedelta(hours=i),
        )
    history = store.monitoring.score_history("network", "DL_bitrate")
    assert [h.trigger for h in history] == ["evaluate", "monitor", "auto_monitor"]


def test_forecasts_upsert(store: Store) -> None:
    row = ForecastRow("demand", "A", "v1", T0, 10.0, 8.0, 12.0)
    upsert_forecasts(store, [row, ForecastRow("demand", "A", "v1", T0.replace(month=2), 11.0)])
    upsert_forecasts(store, [ForecastRow("demand", "A", "v1", T0, 15.0, 9.0, 20.0, "brand")])
    rows = store.series.forecasts("demand", "A")
    assert [(r.value, r.fallback_level) for r in rows] == [(15.0, "brand"), (11.0, None)]


def test_stream_writes_times_as_sqlalchemy_binds_them(store: Store) -> None:
    """The stream writes forecasts and observations with the driver's executemany; their times
    must be stored exactly as SQLAlchemy binds them (SQLite keeps text), or equality on them
    (lookups, the unique keys an upsert relies on) would miss the rows."""
    from sqlalchemy import func, select

    from ml.registry.models import Forecast, Observation

    upsert_forecasts(store, [ForecastRow("demand", "A", "v1", T0, 10.0)])
    store.stream.apply_observations([delta("A", 1, 1)], {("c", "s", 0): 1})
    with store.db.session() as session:
        forecasts = session.scalar(
            select(func.count()).select_from(Forecast).where(Forecast.period_start == T0)
        )
        observations = session.scalar(
            select(func.count()).select_from(Observation).where(Observation.period_start == T0)
        )
    assert (forecasts, observations) == (1, 1)


def test_processed_event_ids_recorded_with_the_batch(store: Store) -> None:
    store.stream.apply_observations(
        [delta("A", 1, 1)], {("c", "s", 0): 1}, event_ids=[("demand", "e1")]
    )
    assert store.stream.known_event_ids("demand", ["e1", "e2"]) == {"e1"}
    assert store.stream.known_event_ids("network", ["e1"]) == set()


def test_batch_commit_carries_corrections_drift_events_and_forecasts(store: Store) -> None:
    drift = dict(
        event_id="d9",
        domain="demand",
        scope="A",
        detector="adwin",
        statistic="abs_error",
        value=2.0,
        occurred_at=T0,
    )
    forecast = ForecastRow("demand", "A", "online", T0.replace(month=3), 5.0, 3.0, 7.0)
    key = ("demand", "A", T0)
    store.stream.apply_observations(
        [delta("A", 1, 2)],
        {("c", "s", 0): 3},
        corrections=[key, key],
        drift_events=[drift],
        forecasts=[forecast],
    )
    store.stream.apply_observations([delta("A", 1, 1)], {("c", "s", 0): 4}, drift_events=[drift])
    [row] = store.series.observations("demand")
    assert row.corrections == 2 and row.n_events == 3
    assert [d.event_id for d in store.monitoring.drift_events("demand")] == ["d9"]
    assert store.series.forecasts("demand", "A")[0].value == 5.0


def dead_letter(offset: int, error_type: str = "invalid_json", payload: str = "{not json"):
    from ml.registry.entities import DeadLetterRow

    return DeadLetterRow(
        event_id=f"dl-{offset}",
        consumer="c",
        topic="sales",
        partition=0,
        offset=offset,
        key="k",
        error_type=error_type,
        reason=f"{error_type} at {offset}",
        payload=payload,
        payload_bytes=len(payload),
        occurred_at=T0,
    )


def test_dead_letters_commit_with_their_batch_exactly_once(store: Store) -> None:
    key = ("c", "sales", 0)
    first = [dead_letter(3), dead_letter(5, "future_timestamp", "{\x00}")]
    store.stream.apply_observations([delta("A", 1, 1)], {key: 5}, dead_letters=first)
    # the same batch delivered again (after a crash before Kafka's commit) adds nothing
    store.stream.apply_observations([], {key: 5}, dead_letters=first)
    # a fenced batch that lost its partition writes none of its dead letters
    with pytest.raises(StaleCheckpoint):
        store.stream.apply_observations(
            [], {key: 9}, expected={key: 2}, dead_letters=[dead_letter(9, "oversize")]
        )
    store.stream.apply_observations([], {key: 7}, dead_letters=[dead_letter(7, "too_old")])
    counts = store.dead_letters.counts()
    assert counts.total == 3
    assert counts.by_error_type == {"invalid_json": 1, "future_timestamp": 1, "too_old": 1}
    assert counts.by_topic == {"sales": 3}
    rows = store.dead_letters.recent(limit=2)
    assert [r.offset for r in rows] == [7, 5]  # newest first
    assert rows[1].reason == "future_timestamp at 5" and rows[0].created_at is not None
    assert store.dead_letters.counts(error_type="too_old").total == 1
    assert [r.offset for r in store.dead_letters.recent(error_type="invalid_json")] == [3]
    assert "\x00" not in rows[1].payload  # PostgreSQL's text refuses NUL: replaced
