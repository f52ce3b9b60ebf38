"""The network partition processor on simulated measurements (no Kafka): windows close by
event time, online models predict then learn, forecasts and scores, checkpoints round-trip."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from millrace.importers.simulate import simulate_network
from millrace.settings import Settings
from ml.network import online
from ml.network.configs import DEFAULT_CONFIGS, ModelConfig
from ml.network.processor import (
    SCORED_METRICS,
    NetworkProcessor,
    forecast_series_key,
    online_model_version,
)
from ml.streaming import PartitionProcessor, ProcessorOutput
from schemas.events import NetworkMeasurementEvent

START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
LINEAR = [c for c in DEFAULT_CONFIGS if c.architecture == "river_linear"]


def events(seconds: int = 1800, cells: int = 4, seed: int = 1) -> list[NetworkMeasurementEvent]:
    source = simulate_network(seed=seed, start=START, seconds=seconds, cells=cells)
    return [record.event for record in source.records()]


def run(evts, processor: NetworkProcessor | None = None, batch: int = 500):
    processor = processor or NetworkProcessor(configs=LINEAR, score_every_seconds=300)
    out = ProcessorOutput()
    for i in range(0, len(evts), batch):
        out.extend(processor.process(evts[i : i + batch]))
    return processor, out


def event(cell: str, at: datetime, **values) -> NetworkMeasurementEvent:
    return NetworkMeasurementEvent(
        event_id=f"{cell}@{at.isoformat()}", cell_id=cell, occurred_at=at, **values
    )


def test_forecasts_and_scores_of_every_online_model() -> None:
    assert {c.id for c in NetworkProcessor().configs} == {c.id for c in DEFAULT_CONFIGS if c.online}
    processor, out = run(events())
    cells = {f"SIM-{i:03d}" for i in range(4)}
    keys = {(f.series_key, f.model_version) for f in out.forecasts}
    assert keys == {
        (forecast_series_key(cell, c.output_fields[0]), online_model_version(c.id))
        for cell in cells
        for c in LINEAR
    }
    assert all(f.domain == "network" and f.period_start.second == 0 for f in out.forecasts)
    assert max(f.period_start for f in out.forecasts) <= START + timedelta(minutes=31)
    rsrp = [f for f in out.forecasts if f.series_key.endswith("|rsrp") and f.lower is not None]
    assert rsrp and all(f.lower <= f.value <= f.upper for f in rsrp)

    scores = out.scores
    assert {s["scope"] for s in scores} == {"dl_bitrate", "rsrp"}
    assert {s["model_id"] for s in scores} == {c.id for c in LINEAR}
    assert {s["metric"] for s in scores} == set(SCORED_METRICS)
    assert {s["trigger"] for s in scores} == {"online"}
    assert all(s["baseline"] is not None for s in scores if s["metric"] != "r2")
    assert set(scores[0]) == {
        "domain",
        "scope",
        "model_id",
        "metric",
        "score",
        "baseline",
        "trigger",
        "recorded_at",
        "n",
        "stats",
    }  # fmt: skip  (the score_history columns; the adapter adds "partition")
    # at most once per model every 300 s of event time
    times = sorted({s["recorded_at"] for s in scores if s["model_id"] == LINEAR[0].id})
    assert len(times) >= 5
    assert all(b - a >= timedelta(seconds=300) for a, b in zip(times, times[1:], strict=False))


def test_without_throttling_every_window_close_writes_the_current_scores() -> None:
    processor, out = run(
        events(seconds=600), NetworkProcessor(configs=LINEAR, score_every_seconds=0)
    )
    model = processor.model("rsrp", "rsrp-river_linear")
    mine = [s for s in out.scores if s["model_id"] == "rsrp-river_linear"]
    assert len({s["recorded_at"] for s in mine}) >= 8
    last = {s["metric"]: s for s in mine[-4:]}
    # the scores are those of the score window (3600 s by default) at the last close ...
    end = last["mae"]["recorded_at"].timestamp()
    recent, baseline = (w.metrics(end) for w in processor.recent[("rsrp", "rsrp-river_linear")])
    assert last["mae"]["score"] == recent.mae
    assert last["mae"]["baseline"] == baseline.mae
    assert last["r2"]["score"] == recent.r2
    assert last["mae"]["n"] == recent.n and last["mae"]["stats"]["model"] == recent.stats()
    # ... which holds all 600 s of points: the cumulative metrics, up to the summing order
    assert recent.n == model.metrics.n
    assert last["mae"]["score"] == pytest.approx(model.metrics.mae, rel=1e-12)
    assert last["mae"]["baseline"] == pytest.approx(model.baseline.mae, rel=1e-12)
    assert last["r2"]["score"] == pytest.approx(model.metrics.r2, rel=1e-12)


def test_windows_close_only_after_the_allowed_lateness() -> None:
    processor = NetworkProcessor(configs=LINEAR, allowed_lateness=timedelta(seconds=30))
    t = START
    processor.process([event("a", t, rsrp=-90.0), event("a", t + timedelta(seconds=60), rsrp=-91)])
    assert processor.closed_through.get(60, -1) < t.timestamp() // 60
    # 30 s after the end of the first window: it closes, the second stays open
    processor.process([event("b", t + timedelta(seconds=90), rsrp=-80.0)])
    assert processor.closed_through[60] == t.timestamp() // 60
    assert list(processor.forecaster.series) == [(60, "a")]


def test_late_events_are_corrections_and_are_not_learnt() -> None:
    processor = NetworkProcessor(configs=LINEAR, allowed_lateness=timedelta(seconds=10))
    t = START
    processor.process([event("a", t + timedelta(minutes=m), rsrp=-90.0 - m) for m in range(5)])
    before = processor.forecaster.series[(60, "a")].values.copy()
    out = processor.process([event("a", t + timedelta(minutes=1, seconds=5), rsrp=-50.0)])
    assert out.corrections == [("network", "a", t + timedelta(minutes=1))]
    assert processor.late_events == 1
    assert processor.forecaster.series[(60, "a")].values == before


def test_missing_values_stay_missing_and_no_cell_is_dropped() -> None:
    processor = NetworkProcessor(configs=LINEAR, allowed_lateness=timedelta(0))
    t = START
    evts = [event("dl-only", t + timedelta(minutes=m), dl_bitrate=1000.0 + m) for m in range(6)]
    evts += [event("rsrp-only", t + timedelta(minutes=m), rsrp=-90.0) for m in range(6)]
    evts += [event("x", t + timedelta(minutes=7), snr=1.0)]
    evts.sort(key=lambda e: e.occurred_at)
    _, out = run(evts, processor)
    series = processor.forecaster.series
    assert {cell for _, cell in series} == {"dl-only", "rsrp-only"}
    assert all("rsrp" not in w for w in series[(60, "dl-only")].values.values())
    assert {f.series_key for f in out.forecasts} == {"dl-only|dl_bitrate", "rsrp-only|rsrp"}


def test_batching_does_not_change_the_result() -> None:
    evts = events(seconds=900, cells=3)
    _, one = run(evts, batch=100_000)
    _, many = run(evts, batch=37)
    assert one.forecasts == many.forecasts
    assert one.scores == many.scores


def test_checkpoint_round_trip_resumes_identically() -> None:
    evts = events(seconds=1200, cells=3)
    half = len(evts) // 2
    straight, straight_out = run(evts)
    first, out = run(evts[:half])
    restored = PartitionProcessor.loads(first.dumps())
    assert isinstance(restored, NetworkProcessor)
    _, rest = run(evts[half:], restored)
    out.extend(rest)
    assert out.forecasts == straight_out.forecasts
    assert out.scores == straight_out.scores
    key = ("dl_bitrate", "dl_bitrate-river_linear")
    assert (
        restored.forecaster.models[key].metrics.get()
        == straight.forecaster.models[key].metrics.get()
    )


def test_restoring_every_checkpoint_of_the_default_configs_resumes_identically(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker that restarts from its stored state after every batch (the forests' journal
    replayed each time, snapshots refreshed along the way) writes what one that never stopped
    writes."""
    monkeypatch.setattr(online, "JOURNAL_ROWS", 25)
    evts = events(seconds=1500, cells=3)
    _, straight = run(evts, NetworkProcessor(score_every_seconds=300), batch=211)
    processor, out = NetworkProcessor(score_every_seconds=300), ProcessorOutput()
    for i in range(0, len(evts), 211):
        out.extend(processor.process(evts[i : i + 211]))
        restored = NetworkProcessor.restore(processor.state())
        assert isinstance(restored, NetworkProcessor)
        processor = restored
    model = processor.model("rsrp", "rsrp-river_forest")
    assert model.learned > 2 * online.JOURNAL_ROWS and model._snapshot is not None
    assert out.forecasts == straight.forecasts
    assert out.scores == straight.scores
    assert [d.model_dump() for d in out.drift_events] == [
        d.model_dump() for d in straight.drift_events
    ]


def test_update_configs_keeps_unchanged_models_learning() -> None:
    processor, _ = run(events(seconds=600, cells=2))
    kept = processor.model("rsrp", "rsrp-river_linear")
    extra = ModelConfig(id="snr-tree", architecture="river_tree", input_fields=("snr",),
                        output_fields=("snr",), window_duration_seconds=120)  # fmt: skip
    processor.update_configs([LINEAR[1], extra, DEFAULT_CONFIGS[2]])  # + a batch config
    assert {c.id for c in processor.configs} == {"rsrp-river_linear", "snr-tree"}
    assert processor.model("rsrp", "rsrp-river_linear") is kept
    assert sorted(processor.books) == [60, 120]
    _, out = run(events(seconds=600, cells=2, seed=2)[:0] + _later(600, 2), processor)
    assert {f.model_version for f in out.forecasts} == {
        "online:rsrp-river_linear",
        "online:snr-tree",
    }
    assert kept.learned > 0


def _later(seconds: int, cells: int) -> list[NetworkMeasurementEvent]:
    source = simulate_network(
        seed=3, start=START + timedelta(hours=1), seconds=seconds, cells=cells
    )
    return [record.event for record in source.records()]


def test_from_settings_reads_the_window_and_defaults_the_rest() -> None:
    processor = NetworkProcessor.from_settings(Settings(network_window_seconds=30))
    assert processor.observation_window == 30
    assert processor.lateness == 30.0
    assert processor.policy.catch_up_lag == timedelta(days=2)  # CATCH_UP_LAG_SECONDS default
    with pytest.raises(ValueError):
        NetworkProcessor(allowed_lateness=timedelta(seconds=-1))


def test_network_package_imports_no_adapter_nor_database() -> None:
    """Direct imports only: River itself imports sqlalchemy when it is installed."""
    forbidden = {"faust", "fastapi", "sqlalchemy", "streams", "api", "uvicorn"}
    store = {"ml.registry.store", "ml.registry.models", "ml.registry.db"}
    offenders = []
    for path in (Path(__file__).resolve().parents[1] / "ml" / "network").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n.split(".")[0] in forbidden or n in store
            ]
    assert not offenders
    code = (
        "import sys, ml.network.configs, ml.network.features, ml.network.online, "
        "ml.network.processor, ml.network.state, ml.network.performance, "
        "ml.network.monitoring, ml.network.training\n"
        "bad = [m for m in ('faust', 'fastapi', 'streams', 'api') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
