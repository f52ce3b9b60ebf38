"""Degradation on recent performance: running scores over a sliding window of event time, per
model and partition, stored with their partition and count, merged exactly across partitions;
a change late in a long stream shows within one window (issue 12, item 4).

Unit tests of :class:`~ml.metrics.WindowedMetrics` and the merge, the network processor's
windowed scores, and the store's merge of two partitions' rows (on a SQLite file; on PostgreSQL
too in the integration run)."""

from __future__ import annotations

import json
import math
import pickle
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ml.metrics import RunningMetrics, WindowedMetrics, merge_stats
from ml.network.configs import DEFAULT_CONFIGS, parse_config
from ml.network.hooks import StoreScorer
from ml.network.performance import PerformanceTracker
from ml.network.processor import NetworkProcessor
from ml.registry.entities import ProcessorState
from ml.registry.network import SqlFieldStateRepository
from ml.registry.store import Store
from ml.streaming import ProcessorOutput, UnknownStateVersion
from ml.triggers import is_degraded
from schemas.events import NetworkMeasurementEvent

START = datetime(2024, 3, 1, tzinfo=UTC)
T0 = START.timestamp()
METRICS = ("mae", "rmse", "mape", "r2")


def points(n: int, seed: int, zeros: int = 0) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    out = [(rng.gauss(50, 10), rng.gauss(50, 12)) for _ in range(n)]
    out[:zeros] = [(0.0, rng.gauss(0, 1)) for _ in range(zeros)]  # no percentage error
    return out


def running(pairs: list[tuple[float, float]]) -> RunningMetrics:
    metrics = RunningMetrics()
    for y, p in pairs:
        metrics.update(y, p)
    return metrics


def assert_same(a: RunningMetrics, b: RunningMetrics) -> None:
    assert (a.n, a.mape_excluded) == (b.n, b.mape_excluded)
    for name in METRICS:
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-12), name


# --- merge ---------------------------------------------------------------------------------------
def test_merged_metrics_are_those_of_every_point_not_averages_of_averages() -> None:
    parts = [points(400, 1, zeros=3), points(7, 2), points(1, 3), points(120, 4, zeros=120)]
    whole = running([p for part in parts for p in part])
    merged = merge_stats(running(part).stats() for part in parts)
    assert_same(merged, whole)
    # merging into an empty one, an empty one, and pickling keep the same numbers
    assert_same(RunningMetrics().merge(whole).merge(RunningMetrics()), whole)
    assert_same(pickle.loads(pickle.dumps(merged)), whole)
    assert_same(RunningMetrics.from_stats(whole.stats()), whole)


def test_merge_of_known_numbers() -> None:
    a = running([(10.0, 9.0)] * 4)  # 4 errors of 1
    b = running([(10.0, 13.0)])  # 1 error of 3
    merged = merge_stats([a.stats(), b.stats()])
    assert merged.n == 5
    assert merged.mae == pytest.approx(7 / 5)  # not (1 + 3) / 2, not the last one (3)
    assert merged.rmse == pytest.approx(math.sqrt((4 * 1 + 9) / 5))
    assert merged.mape == pytest.approx((4 * 0.1 + 0.3) / 5)
    assert merged.r2 is None  # constant actuals
    assert merge_stats([]).n == 0 and merge_stats([]).mae is None


def test_statistics_that_are_not_running_metrics_are_refused() -> None:
    with pytest.raises(ValueError, match="not running-metrics"):
        RunningMetrics.from_stats({"n": 3})
    bad = running(points(5, 1)).stats() | {"mape_excluded": 9}
    with pytest.raises(ValueError, match="inconsistent"):
        RunningMetrics.from_stats(bad)


# --- the sliding window --------------------------------------------------------------------------
def test_window_holds_the_last_window_of_event_time_only() -> None:
    window = WindowedMetrics(3600, buckets=12)  # buckets of 300 s
    pairs = points(24 * 60, 5)
    for minute, (y, p) in enumerate(pairs):
        window.update(T0 + 60 * minute, y, p)
    now = T0 + 60 * (len(pairs) - 1)
    bucket = math.floor(now / 300)
    kept = [
        pair
        for minute, pair in enumerate(pairs)
        if math.floor((T0 + 60 * minute) / 300) > bucket - 12
    ]
    assert 55 <= len(kept) <= 60  # between window - bucket and window
    assert_same(window.metrics(), running(kept))
    assert len(window._parts) <= 12  # bounded memory
    # time passing without points empties the window; a point that left the window is dropped
    window.advance(now + 3600)
    assert window.metrics().n == 0 and window.n == 0
    window.update(now, 1.0, 2.0)
    assert window.dropped == 1 and window.n == 0
    restored = pickle.loads(pickle.dumps(window))
    assert (restored.window, restored.dropped, restored.n) == (3600.0, 1, 0)


def test_points_within_a_bucket_may_come_out_of_order() -> None:
    window = WindowedMetrics(600, buckets=2)
    window.update(T0 + 400, 10.0, 11.0)
    window.update(T0 + 200, 10.0, 13.0)  # older bucket, still in the window
    assert (window.n, window.dropped, window.metrics().mae) == (2, 0, 2.0)
    assert window.metrics(now=T0 + 700).n == 1  # the window ending then holds the newer one


def test_invalid_windows_are_refused() -> None:
    for window, buckets in ((0, 12), (-1, 12), (math.inf, 12), (60, 0)):
        with pytest.raises(ValueError):
            WindowedMetrics(window, buckets)


def test_a_late_change_in_a_long_stream_shows_within_one_window() -> None:
    """A year of hourly stationary errors, then errors 1.5 times larger: the windowed MAE (one
    day) crosses baseline x 1.1 within one window; the cumulative MAE never does."""
    rng = random.Random(7)
    day, hour = 86_400, 3600
    window, cumulative = WindowedMetrics(day), RunningMetrics()
    change = T0 + 365 * day
    t, post = T0, []
    while t < change + 2 * day:
        y = rng.gauss(100, 5)
        err = rng.gauss(0, 2) * (1.5 if t >= change else 1.0)
        if t == change:
            baseline = window.metrics().mae
            seen = None
        window.update(t, y, y + err)
        cumulative.update(y, y + err)
        if t >= change:
            post.append((y, y + err))
        if t >= change and seen is None and is_degraded(window.metrics().mae, baseline, "mae", 1.1):
            seen = t
        if t == change + day:  # one window after the change: post-change points only
            recent = window.metrics()
            assert 22 <= recent.n <= 24
            assert_same(recent, running(post[-recent.n :]))
        t += hour
    assert seen is not None and seen - change < day
    assert not is_degraded(cumulative.mae, baseline, "mae", 1.1)


# --- the network processor -----------------------------------------------------------------------
RSRP = parse_config(
    {
        "id": "rsrp-lin",
        "architecture": "river_linear",
        "input_fields": ["rsrp"],
        "output_fields": ["rsrp"],
        "window_duration_seconds": 60,
        "lookback_steps": 3,
    }
)


def measurements(
    hours: float, cells: int, seed: int, start: float = T0, noise: float = 1.0
) -> list[NetworkMeasurementEvent]:
    """One measurement per cell per minute: a stable level with Gaussian noise."""
    rng = random.Random(seed)
    out = []
    for minute in range(int(hours * 60)):
        at = datetime.fromtimestamp(start + 60 * minute, tz=UTC)
        for c in range(cells):
            cell = f"C{seed}-{c}"
            out.append(
                NetworkMeasurementEvent(
                    event_id=f"{cell}@{at.isoformat()}",
                    cell_id=cell,
                    occurred_at=at,
                    rsrp=-90.0 - 3 * c + rng.gauss(0, noise),
                )  # fmt: skip
            )
    return out


def run(processor: NetworkProcessor, events: list, batch: int = 400) -> ProcessorOutput:
    out = ProcessorOutput()
    for i in range(0, len(events), batch):
        out.extend(processor.process(events[i : i + batch]))
    return out


def test_the_processor_scores_a_late_change_within_one_window() -> None:
    """Half a day of steady cells, then noisier ones: the online score written one score window
    after the change is that of post-change points only, degraded against the pre-change
    score, while the model's cumulative metrics still look fine."""
    window = 900
    processor = NetworkProcessor(
        configs=[RSRP], score_every_seconds=60, score_window_seconds=window
    )
    change = T0 + 12 * 3600
    out = run(processor, measurements(12, 2, seed=1))
    mae = lambda rows: [r for r in rows if r["metric"] == "mae"]  # noqa: E731
    before = mae(out.scores)[-1]
    assert before["stats"]["window_seconds"] == window and before["n"] > 0
    after = run(processor, measurements(0.3, 2, seed=1, start=change, noise=4.0))
    rows = mae(after.scores)
    first_degraded = next(r for r in rows if is_degraded(r["score"], before["score"], "mae", 1.1))
    assert first_degraded["recorded_at"].timestamp() - change <= window
    # a window after the change: only post-change points (their windows end after the change)
    full = next(r for r in rows if r["recorded_at"].timestamp() >= change + window)
    stats = RunningMetrics.from_stats(full["stats"]["model"])
    assert full["score"] == stats.mae and full["n"] == stats.n
    # at most the points scored after the change (2 cells, one window a minute)
    assert 0 < stats.n <= 2 * (full["recorded_at"].timestamp() - change) / 60
    assert full["score"] > 2 * before["score"]
    # the cumulative MAE, diluted by half a day of steady points, is not even degraded
    model = processor.model("rsrp", "rsrp-lin")
    assert not is_degraded(model.metrics.mae, before["score"], "mae", 1.1)


def test_windowed_scores_survive_the_checkpoint_and_older_states_are_not_read() -> None:
    events = measurements(3, 2, seed=2)
    half = len(events) // 2
    whole = NetworkProcessor(configs=[RSRP], score_every_seconds=60, score_window_seconds=900)
    expected = run(whole, events).scores
    first = NetworkProcessor(configs=[RSRP], score_every_seconds=60, score_window_seconds=900)
    got = run(first, events[:half]).scores
    state = first.state()
    assert state.version == NetworkProcessor.STATE_VERSION == 6
    restored = NetworkProcessor.restore(state)
    got += run(restored, events[half:]).scores
    assert got == expected
    # states of older versions (3: no windowed scores, 4: before the sparse-window rule of
    # tree models) are not unpickled: the worker rebuilds the partition's processor
    old = NetworkProcessor(configs=[RSRP], score_every_seconds=60)
    run(old, events[:half])
    for version in (2, 3, 4):
        with pytest.raises(UnknownStateVersion, match=f"version {version}"):
            NetworkProcessor.restore(ProcessorState(version, old.dumps()))


def test_the_adapter_marks_score_rows_with_their_partition() -> None:
    out = ProcessorOutput(scores=[{"metric": "mae"}, {"metric": "mae", "partition": 1}])
    assert out.from_partition(3) is out
    assert [r["partition"] for r in out.scores] == [3, 1]


# --- the store -----------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'scores.db'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    s = Store.from_url(url)
    yield s
    s.close()


def commit(store: Store, partition: int, rows: list[dict]) -> None:
    """Score rows through the stream's commit, as the adapter writes them."""
    rows = ProcessorOutput(scores=rows).from_partition(partition).scores
    store.stream.apply_observations([], scores=rows)


def row(model: RunningMetrics, metric: str, at: datetime, **extra) -> dict:
    return {
        "domain": "network", "scope": "rsrp", "model_id": "rsrp-river_linear", "metric": metric,
        "score": getattr(model, metric), "baseline": None, "trigger": "online", "recorded_at": at,
        "n": model.n, "stats": {"model": model.stats(), "baseline": model.stats()}, **extra,
    }  # fmt: skip


def test_two_partitions_rows_merge_in_the_store(store: Store) -> None:
    """Each partition's latest row within the window counts, weighted by its count; an older
    row of a partition and a partition silent for longer than the window do not."""
    at = START + timedelta(days=30)
    old0, new0 = running(points(50, 1)), running(points(300, 2))
    new1, stale2 = running(points(40, 3, zeros=4)), running(points(90, 4))
    commit(store, 0, [row(old0, m, at - timedelta(minutes=20)) for m in METRICS])
    commit(store, 2, [row(stale2, m, at - timedelta(hours=2)) for m in METRICS])
    commit(store, 1, [row(new1, m, at - timedelta(minutes=10)) for m in METRICS])
    commit(store, 0, [row(new0, m, at) for m in METRICS])
    stored = store.monitoring.score_history("network", "rsrp")
    assert {(r.partition, r.n) for r in stored} == {(0, 50), (0, 300), (1, 40), (2, 90)}

    merged = merge_stats([new0.stats(), new1.stats()])
    hour = timedelta(hours=1)
    for metric in METRICS:
        score = store.monitoring.recent_online_score(
            "network", "rsrp", "rsrp-river_linear", metric, hour
        )
        assert score is not None and score.partitions == 2 and score.recorded_at == at
        assert score.score == pytest.approx(getattr(merged, metric), rel=1e-12), metric
        assert score.n == (340 - 4 if metric == "mape" else 340)
    # without a window every partition's latest row counts (the stale one too)
    everyone = store.monitoring.recent_online_score("network", "rsrp", "rsrp-river_linear", "mae")
    assert everyone.partitions == 3
    every = merge_stats([new0.stats(), new1.stats(), stale2.stats()])
    assert everyone.score == pytest.approx(every.mae)
    assert store.monitoring.recent_online_score("network", "rsrp", "other", "mae", hour) is None

    # the field monitor's scorer and evaluate use the merged recent score
    store.network.seed_configs(list(DEFAULT_CONFIGS))
    scorer = StoreScorer(store, score_window=hour)
    assert scorer.score("rsrp", "rsrp-river_linear", "rmse") == pytest.approx(merged.rmse)
    tracker = PerformanceTracker(SqlFieldStateRepository(store), OnlyOnline(scorer))
    election = tracker.evaluate("rsrp", "mae")
    assert election.scores == {"rsrp-river_linear": pytest.approx(merged.mae)}
    assert election.baseline == pytest.approx(merged.mae)


def test_rows_without_statistics_are_weighted_by_count(store: Store) -> None:
    """Rows written before partitions and statistics: one partition, its latest score; rows
    with a count but no statistics merge weighted by count."""
    at = START + timedelta(days=1)
    for i, value in enumerate((5.0, 7.0)):
        store.monitoring.add_score(
            domain="network", scope="rsrp", model_id="m", metric="mae", score=value,
            trigger="online", recorded_at=at + timedelta(minutes=i),
        )  # fmt: skip
    legacy = store.monitoring.recent_online_score("network", "rsrp", "m", "mae")
    assert (legacy.score, legacy.partitions, legacy.n) == (7.0, 1, None)
    for partition, value, n in ((0, 1.0, 30), (1, 4.0, 10)):
        store.monitoring.add_score(domain="network", scope="rsrp", model_id="w", metric="rmse",
                                   score=value, trigger="online", recorded_at=at,
                                   partition=partition, n=n)  # fmt: skip
    weighted = store.monitoring.recent_online_score("network", "rsrp", "w", "rmse")
    assert weighted.score == pytest.approx(math.sqrt((30 * 1 + 10 * 16) / 40)) and weighted.n == 40


class OnlyOnline(StoreScorer):
    """The store's scorer restricted to the field's online linear model (no batch model has a
    live version in this test)."""

    def __init__(self, scorer: StoreScorer) -> None:
        self.__dict__.update(scorer.__dict__)

    def models(self, field: str) -> list[str]:
        return [m for m in super().models(field) if m == f"{field}-river_linear"]


def test_statistics_stay_json_when_a_ratio_or_a_sum_overflows() -> None:
    """PostgreSQL's JSON has no Infinity: a tiny actual (whose percentage error overflows) is
    left out of MAPE, and an overflowed sum is stored as null and read back as infinite."""
    metrics = RunningMetrics().update(5e-324, 1.0).update(2.0, 1.0)
    assert metrics.mape_excluded == 1 and metrics.mape == 0.5
    huge = RunningMetrics().update(1e308, -1e308)
    stats = huge.stats()
    assert stats["sum_sq"] is None and json.loads(json.dumps(stats, allow_nan=False)) == stats
    assert RunningMetrics.from_stats(stats).rmse == math.inf
