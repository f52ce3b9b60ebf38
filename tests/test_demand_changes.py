"""Demand change detection (ml.demand.changes), catch-up mode and staleness (ml.triggers), and
the network staleness check: pure unit tests, no broker."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from millrace.importers.simulate import simulate_demand
from millrace.settings import load_settings
from ml.demand.changes import SegmentChanges
from ml.demand.processor import DemandProcessor
from ml.network.monitoring import LiveVersion, StalenessCheck
from ml.streaming import ProcessorOutput
from ml.triggers import FixedClock

SETTINGS = load_settings(_env_file=None)
LIVE = SETTINGS.model_copy(update={"catch_up_lag_seconds": 0.0})
#: documented (ml.demand.changes): level shifts within 4 months for 90% of drifted segments
MAX_DELAY = 6


def _series(seed: int, n: int, shift_at: int | None, shift: float = 0.0, scale: float = 1.0):
    rng = random.Random(seed)
    return [
        rng.gauss(shift if shift_at is not None and i >= shift_at else 0.0, 0.2)
        * (scale if shift_at is not None and i >= shift_at else 1.0)
        for i in range(n)
    ]


def _detections(xs: list[float], errors: bool = False) -> list[tuple[int, str]]:
    changes = SegmentChanges()
    out = []
    for i, x in enumerate(xs):
        for d in changes.update(None if errors else x, abs(x) if errors else None):
            out.append((i, d.detector))
    return out


def test_level_shift_in_sales_ratio_detected_once_within_delay() -> None:
    for seed in range(10):
        hits = _detections(_series(seed, 60, 30, shift=0.7))
        after = [i for i, _ in hits if i >= 30]
        assert after and after[0] - 30 < MAX_DELAY
        assert len(after) == 1  # one excursion, one detection
        assert [name for i, name in hits if i >= 30][0].startswith("sales_")


def test_variance_shift_in_sales_ratio_detected() -> None:
    # documented: a x3 scale change, median 6 months, most within 30
    delays = []
    for seed in range(10):
        hits = _detections(_series(seed, 60, 30, scale=3.0))
        after = [i - 30 for i, _ in hits if i >= 30]
        delays.append(after[0] if after else 99)
    assert sum(d < 30 for d in delays) >= 8
    assert sorted(delays)[len(delays) // 2] <= 8


def test_stationary_series_stay_under_the_false_alarm_rate() -> None:
    points = alarms = 0
    for seed in range(40):
        xs = _series(seed, 60, None)
        alarms += len(_detections(xs)) + len(_detections(xs, errors=True))
        points += 2 * len(xs)
    assert alarms / points * 1000 <= 2.0  # documented: under 2 per 1,000 points


def test_forecast_errors_going_up_are_detected_down_not() -> None:
    up = [abs(x) for x in _series(3, 60, 30, scale=4.0)]
    changes = SegmentChanges()
    hits = [i for i, x in enumerate(up) if changes.update(None, x)]
    assert hits and 30 <= hits[0] < 30 + MAX_DELAY
    down = [abs(x) for x in _series(3, 60, 30, scale=0.2)]
    changes = SegmentChanges()
    assert not [i for i, x in enumerate(down) if changes.update(None, x)]


# --- through the processor --------------------------------------------------------------------
def _events(start: date, months: int, drift_at: date | None, seed: int = 1):
    source = simulate_demand(
        seed=seed, start=start, months=months, segments=8, trend=0.0, base_rate=60.0,
        drift_at=drift_at, drift_factor=2.0,
    )  # fmt: skip
    return source, [record.event for record in source.records()]


def _run(processor: DemandProcessor, events, batch: int = 500) -> ProcessorOutput:
    out = ProcessorOutput()
    for i in range(0, len(events), batch):
        out.extend(processor.process(events[i : i + batch]))
    return out


def test_processor_reports_sales_level_shifts_as_drift_events() -> None:
    source, events = _events(date(2020, 1, 1), 60, date(2023, 1, 1))
    out = _run(DemandProcessor.from_settings(LIVE), events)
    changes = [e for e in out.drift_events if e.detector == "sales_level"]
    found = {e.scope for e in changes if e.evidence["month"] >= "2023-01-01"}
    assert found & set(source.drifted_segments)
    for e in changes:
        assert e.threshold == 10.0 and e.value > e.threshold and e.statistic == "yoy_log_ratio"


def test_catch_up_holds_requests_during_a_replay_and_releases_one_per_scope() -> None:
    # history 2021-01 .. 2024-12, drift in 2024-01; the wall clock is 2024-12-20: everything
    # before 2024-12-18 is a replay, the events of 2024-12-18 on are caught up
    clock = FixedClock(datetime(2024, 12, 20, tzinfo=UTC))
    source, events = _events(date(2021, 1, 1), 48, date(2024, 1, 1))
    bound = clock.now - timedelta(days=2)
    processor = DemandProcessor.from_settings(SETTINGS, clock=clock)
    replay = [e for e in events if e.occurred_at < bound]
    during = _run(processor, replay)
    assert during.retrain_requests == []
    assert during.drift_events  # the statistics kept updating
    held = {scope for (_, scope) in processor.policy._held}
    assert held >= set(source.drifted_segments) & {e.scope for e in during.drift_events}
    after = _run(processor, [e for e in events if e.occurred_at >= bound])
    scopes = [r.scope for r in after.retrain_requests]
    assert sorted(scopes) == sorted(held)  # exactly one per scope
    first = min(e.occurred_at for e in events if e.occurred_at >= bound)
    for r in after.retrain_requests:
        assert r.occurred_at == first and r.evidence["held"]["count"] >= 1
    # deterministic: the same replay in other batches releases the same ids
    again = DemandProcessor.from_settings(SETTINGS, clock=clock)
    ids = [r.event_id for r in _run(again, events, batch=137).retrain_requests]
    assert sorted(ids) == sorted(r.event_id for r in after.retrain_requests)


def test_demand_staleness_one_request_per_stale_version() -> None:
    _, events = _events(date(2023, 1, 1), 24, None)
    processor = DemandProcessor.from_settings(LIVE)
    processor.use_model("v1", datetime(2023, 1, 1, tzinfo=UTC))
    out = _run(processor, [e for e in events if e.occurred_at < datetime(2024, 1, 1, tzinfo=UTC)])
    stale = [r for r in out.retrain_requests if r.reason == "staleness"]
    assert len(stale) == 1 and stale[0].scope == "global"
    assert stale[0].occurred_at == datetime(2023, 5, 1, tzinfo=UTC)  # first close past 90 days
    processor.use_model("v2", datetime(2024, 1, 1, tzinfo=UTC))
    out = _run(processor, [e for e in events if e.occurred_at >= datetime(2024, 1, 1, tzinfo=UTC)])
    stale2 = [r for r in out.retrain_requests if r.reason == "staleness"]
    assert len(stale2) == 1 and stale2[0].event_id != stale[0].event_id


def _refuse(request: object) -> None:
    raise RuntimeError("broker down")


def test_network_staleness_one_request_per_stale_version_not_per_tick() -> None:
    now = [datetime(2024, 6, 1, tzinfo=UTC)]
    live = [LiveVersion("cfg-a", "v1", datetime(2024, 1, 1, tzinfo=UTC)),
            LiveVersion("cfg-b", "v1", datetime(2024, 5, 1, tzinfo=UTC))]  # fmt: skip
    sent = []
    check = StalenessCheck("network", timedelta(days=90), lambda: live, sent.append, lambda: now[0])
    for _ in range(5):
        check.run()
        now[0] += timedelta(minutes=5)
    assert [(r.scope, r.reason) for r in sent] == [("cfg-a", "staleness")]
    live[0] = LiveVersion("cfg-a", "v2", datetime(2024, 1, 2, tzinfo=UTC))
    check.run()
    assert [r.scope for r in sent] == ["cfg-a", "cfg-a"] and sent[0].event_id != sent[1].event_id
    # a request that cannot be delivered is tried again at the next run
    failing = StalenessCheck(
        "network", timedelta(days=90), lambda: live[:1], _refuse, lambda: now[0]
    )
    with pytest.raises(RuntimeError):
        failing.run()
    failing.submit = sent.append
    assert failing.run()[0].event_id == sent[1].event_id
    # at most every ``interval``
    slow = StalenessCheck(
        "network", timedelta(days=90), lambda: live[:1], [].append, lambda: now[0],
        interval=timedelta(minutes=5),
    )  # fmt: skip
    assert len(slow.run()) == 1 and slow.run() == []
    fresh = StalenessCheck(
        "network", timedelta(days=90), lambda: live[:1], [].append, lambda: now[0]
    )
    assert fresh.run()[0].event_id == sent[1].event_id  # id from version + reason


def test_detector_state_survives_pickle_mid_stream() -> None:
    _, events = _events(date(2020, 1, 1), 60, date(2023, 1, 1))
    whole = DemandProcessor.from_settings(LIVE)
    expected = _run(whole, events)
    first = DemandProcessor.from_settings(LIVE)
    half = len(events) // 2
    head = _run(first, events[:half])
    state = first.state()
    assert state.version == DemandProcessor.STATE_VERSION == 2
    restored = DemandProcessor.restore(state)
    assert isinstance(restored, DemandProcessor)
    tail = _run(restored, events[half:])
    assert [d.event_id for d in head.drift_events + tail.drift_events] == [
        d.event_id for d in expected.drift_events
    ]
    assert [r.event_id for r in head.retrain_requests + tail.retrain_requests] == [
        r.event_id for r in expected.retrain_requests
    ]
    assert any(d.detector.startswith(("sales_", "error_")) for d in tail.drift_events)


def test_field_loop_tick_runs_the_staleness_check_with_store_versions() -> None:
    from types import SimpleNamespace

    from ml.network.hooks import FieldLoop, _live_versions

    trained = datetime(2024, 1, 1, tzinfo=UTC)
    config = SimpleNamespace(id="cfg-a", output_fields=["dl_bitrate"])
    registry = SimpleNamespace(live_configs=lambda: [config])
    models = SimpleNamespace(
        live_activation=lambda domain, scope: SimpleNamespace(version="v7"),
        get_version=lambda domain, scope, version: SimpleNamespace(
            version=version, trained_at=trained
        ),
    )
    store = SimpleNamespace(models=models)
    assert _live_versions(store, registry) == [LiveVersion("cfg-a", "v7", trained)]
    sent: list = []
    now = trained + timedelta(days=120)
    check = StalenessCheck(
        "network", timedelta(days=90), lambda: _live_versions(store, registry), sent.append,
        lambda: now,
    )  # fmt: skip
    monitor = SimpleNamespace(poll=lambda: [], check_due=lambda fields: [])
    loop = FieldLoop(monitor, SimpleNamespace(live_configs=lambda: []), store, staleness=check,
                     tick_seconds=0.0)  # fmt: skip
    for _ in range(3):
        loop.tick()
    assert [(r.scope, r.reason, r.evidence["max_age_days"]) for r in sent] == [
        ("cfg-a", "staleness", 90.0)
    ]
