"""The demand partition processor on simulated streams (no Kafka): months close, the online
model predicts then learns, forecasts are written, drift triggers one request per scope."""

from __future__ import annotations

from datetime import date

import pytest

from millrace.importers.simulate import simulate_demand
from millrace.settings import load_settings
from ml.demand.processor import DemandProcessor
from ml.streaming import PartitionProcessor, ProcessorOutput

SETTINGS = load_settings(_env_file=None)
DRIFT_AT = date(2024, 7, 1)
#: a live stream (not a replay of history): catch-up mode off
LIVE = SETTINGS.model_copy(update={"catch_up_lag_seconds": 0.0})


def run(seed: int, drift_at: date | None, batch: int = 500) -> tuple:
    source = simulate_demand(
        seed=seed,
        start=date(2022, 1, 1),
        months=36,
        segments=8,
        trend=0.0,
        base_rate=60.0,
        drift_at=drift_at,
        drift_factor=2.0,
    )
    processor = DemandProcessor.from_settings(LIVE)
    events = [record.event for record in source.records()]
    out = ProcessorOutput()
    for i in range(0, len(events), batch):
        out.extend(processor.process(events[i : i + batch]))
    return source, out, processor


@pytest.mark.parametrize("seed", [1, 2])
def test_level_shift_gives_one_request_per_affected_scope_within_three_months(seed) -> None:
    source, out, _ = run(seed, DRIFT_AT)
    drifted = set(source.drifted_segments)
    requests = out.retrain_requests
    assert sorted(r.scope for r in requests) == sorted(drifted)  # exactly one per scope
    for request in requests:
        assert request.reason == "drift"
        assert request.occurred_at.date() <= date(2024, 10, 1)  # closed by the 3rd month
        events = [e for e in out.drift_events if e.scope == request.scope]
        assert events and min(e.occurred_at for e in events) == request.occurred_at


@pytest.mark.parametrize("seed", [1, 2])
def test_stationary_replay_of_the_same_length_triggers_nothing(seed) -> None:
    _, out, _ = run(seed, None)
    assert out.retrain_requests == []
    assert out.drift_events == []


def test_forecasts_metrics_and_state_round_trip() -> None:
    _, out, processor = run(1, None)
    keys = {f.series_key for f in out.forecasts}
    assert len(keys) == 8
    months = sorted({f.period_start for f in out.forecasts if f.series_key == min(keys)})
    assert len(months) >= SETTINGS.forecast_horizon_months
    assert all(0 <= f.lower <= f.value <= f.upper for f in out.forecasts)
    assert {s["metric"] for s in out.scores} >= {"mae", "rmse", "mape", "r2"}
    restored = PartitionProcessor.loads(processor.dumps())
    assert restored.forecaster.metrics() == processor.forecaster.metrics()


def test_batching_does_not_change_the_result() -> None:
    _, one, _ = run(1, DRIFT_AT, batch=100_000)
    _, many, _ = run(1, DRIFT_AT, batch=137)
    assert [r.event_id for r in one.retrain_requests] == [r.event_id for r in many.retrain_requests]
    assert [d.event_id for d in one.drift_events] == [d.event_id for d in many.drift_events]


def test_late_events_are_corrections() -> None:
    source = simulate_demand(seed=1, start=date(2022, 1, 1), months=3, segments=2)
    events = [record.event for record in source.records()]
    processor = DemandProcessor.from_settings(SETTINGS)
    processor.process(events)
    late = events[0]  # January, closed once March passed the lateness
    out = processor.process([late])
    assert out.corrections == [
        (
            "demand",
            late.segment_key,
            late.occurred_at.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
        )
    ]
