"""Network drift in the partition processor (pure, no Kafka): per cell x field detections on
window means, the per-field share of cells, one retrain request per field, checkpoints.

Streams: ``CELLS`` cells, one measurement per cell per 60 s window (so a window mean is that
value), Gaussian around each cell's own level: rsrp sd 2 dB, dl_bitrate sd 2,000 kbit/s.
Documented figures these tests hold (detector defaults of :class:`ml.network.drift.DetectorParams`):

* a level shift of 3 sd on half the cells: every drifted cell detected within
  ``LEVEL_DELAY`` = 10 windows, the field's ``cell_share`` detection (and its retrain request)
  within 10 windows;
* a scale x3 (variance x9) on half the cells: at least 80 % of them detected within
  ``VARIANCE_DELAY`` = 20 windows;
* stationary, same length (12 cells x 200 windows x 2 fields = 4,800 points): fewer than
  ``MAX_FALSE_PER_1000`` = 5 cell detections per 1,000 points, no field detection, no request.
"""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime, timedelta

from ml.network.configs import DEFAULT_CONFIGS
from ml.network.drift import CellDetectors, NetworkDrift
from ml.network.processor import NetworkProcessor
from ml.streaming import PartitionProcessor, ProcessorOutput
from ml.triggers import FixedClock, TriggerPolicy
from schemas.events import NetworkMeasurementEvent

START = datetime(2024, 3, 1, tzinfo=UTC)
LINEAR = [c for c in DEFAULT_CONFIGS if c.architecture == "river_linear"]
CELLS = 12
WINDOWS = 200
SHIFT_AT = 100
LEVEL_DELAY = 10
VARIANCE_DELAY = 20
MAX_FALSE_PER_1000 = 5.0
DRIFTED = [f"C{i:02d}" for i in range(0, CELLS, 2)]


def stream(
    *, level: float = 0.0, scale: float = 1.0, cells: list[str] = DRIFTED, seed: int = 5,
    windows: int = WINDOWS,
) -> list[NetworkMeasurementEvent]:  # fmt: skip
    """One event per cell per window; from ``SHIFT_AT`` on, ``cells`` move by ``level`` sd and
    their noise is multiplied by ``scale``."""
    rng = random.Random(seed)
    base = {
        f"C{i:02d}": (rng.uniform(-105, -85), rng.uniform(10_000, 40_000)) for i in range(CELLS)
    }
    out = []
    for w in range(windows):
        at = START + timedelta(seconds=60 * w + 10)
        for cell, (rsrp, dl) in base.items():
            hit = w >= SHIFT_AT and cell in cells
            s, m = (scale, level) if hit else (1.0, 0.0)
            out.append(
                NetworkMeasurementEvent(
                    event_id=f"{cell}@{w}",
                    occurred_at=at,
                    cell_id=cell,
                    rsrp=round(rsrp + 2.0 * (m + s * rng.gauss(0, 1)), 2),
                    dl_bitrate=max(0.0, round(dl + 2000.0 * (m + s * rng.gauss(0, 1)))),
                )
            )
    return out


def run(
    events, processor: NetworkProcessor | None = None
) -> tuple[NetworkProcessor, ProcessorOutput]:
    processor = processor or NetworkProcessor(configs=LINEAR)
    out = ProcessorOutput()
    for i in range(0, len(events), 500):
        out.extend(processor.process(events[i : i + 500]))
    return processor, out


def window_of(event) -> int:
    return int((event.occurred_at - START).total_seconds()) // 60 - 1


def cell_events(out: ProcessorOutput) -> list:
    return [d for d in out.drift_events if not d.scope.startswith("*|")]


def first_after(out: ProcessorOutput, scope: str) -> int | None:
    found = [
        window_of(d) for d in out.drift_events if d.scope == scope and window_of(d) >= SHIFT_AT
    ]
    return min(found) - SHIFT_AT if found else None


def test_level_shift_is_detected_per_cell_and_per_field_within_the_documented_delay() -> None:
    _, out = run(stream(level=3.0))
    for field in ("rsrp", "dl_bitrate"):
        delays = [first_after(out, f"{cell}|{field}") for cell in DRIFTED]
        assert all(d is not None and d <= LEVEL_DELAY for d in delays), (field, delays)
        field_delay = first_after(out, f"*|{field}")
        assert field_delay is not None and field_delay <= LEVEL_DELAY
    event = next(d for d in out.drift_events if d.scope == f"{DRIFTED[0]}|rsrp")
    assert event.domain == "network" and event.detector in {"level_shift", "error_shift"}
    assert event.evidence["cell_id"] == DRIFTED[0] and event.evidence["field"] == "rsrp"
    assert event.model_version == "online:rsrp-river_linear"
    # exactly one coalesced request per field, scope = the field, reason drift
    requests = sorted((r.scope, str(r.reason)) for r in out.retrain_requests)
    assert requests == [("dl_bitrate", "drift"), ("rsrp", "drift")]
    share = next(d for d in out.drift_events if d.scope == "*|rsrp")
    assert share.detector == "cell_share" and share.threshold == 0.25 and share.value >= 0.25
    assert share.evidence["detecting_cells"] >= 2


def test_variance_shift_is_detected_within_the_documented_delay() -> None:
    _, out = run(stream(scale=3.0))
    for field in ("rsrp", "dl_bitrate"):
        delays = [first_after(out, f"{cell}|{field}") for cell in DRIFTED]
        found = [d for d in delays if d is not None and d <= VARIANCE_DELAY]
        assert len(found) >= 0.8 * len(DRIFTED), (field, delays)
    kinds = {d.detector for d in cell_events(out) if window_of(d) >= SHIFT_AT}
    assert "variance_shift" in kinds


def test_stationary_stream_stays_under_the_false_alarm_rate() -> None:
    processor, out = run(stream())
    points = CELLS * WINDOWS * 2
    false = len(cell_events(out))
    assert 1000 * false / points < MAX_FALSE_PER_1000, false
    assert not [d for d in out.drift_events if d.scope.startswith("*|")]
    assert out.retrain_requests == []
    stats = processor.statistics()["rsrp"]["drift"]
    assert stats["cells"] == CELLS and stats["drifting"] is False
    assert stats["cell_share_threshold"] == 0.25 and stats["model_id"] == "rsrp-river_linear"


def test_one_excursion_is_one_detection_not_a_storm() -> None:
    _, out = run(stream(level=3.0, cells=["C00"], windows=WINDOWS + 100))
    after = [d for d in out.drift_events if d.scope == "C00|rsrp" and window_of(d) >= SHIFT_AT]
    inputs = [d for d in after if d.detector in {"level_shift", "variance_shift"}]
    assert len(inputs) == 1, [(d.detector, window_of(d)) for d in inputs]
    errors = [d for d in after if d.detector == "error_shift"]
    assert len(errors) <= 1
    # one cell is never a field's drift
    assert not [d for d in out.drift_events if d.scope.startswith("*|")]
    assert out.retrain_requests == []


def test_field_requests_are_coalesced_by_the_cooldown() -> None:
    """A second shift 100 windows (1 h 40 min of event time) later: coalesced within a 3 h
    cooldown, a new request (new id) after the default 1 h one."""
    events = stream(level=3.0)
    later = stream(level=3.0, windows=WINDOWS + 60, seed=5)[len(events) :]
    again = [e.model_copy(update={"rsrp": e.rsrp - 10.0}) if e.cell_id in DRIFTED else e
             for e in later]  # fmt: skip
    ids = {}
    for hours in (3, 1):
        policy = TriggerPolicy(cooldown=timedelta(hours=hours))
        processor, out = run(events, NetworkProcessor(configs=LINEAR, policy=policy))
        assert sorted(r.scope for r in out.retrain_requests) == ["dl_bitrate", "rsrp"]
        _, more = run(again, processor)
        assert [d for d in more.drift_events if d.scope == "*|rsrp"]
        ids[hours] = [r.event_id for r in out.retrain_requests + more.retrain_requests
                      if r.scope == "rsrp"]  # fmt: skip
    assert len(ids[3]) == 1
    assert len(ids[1]) == 2 and len(set(ids[1])) == 2


def test_catch_up_holds_drift_requests_of_a_replay_and_releases_one_per_field() -> None:
    """The shifted stream replayed 30 days after the fact: detections and drift events as
    usual, requests held; the first event within the lag releases one request per field."""
    events = stream(level=3.0)
    later = FixedClock(events[-1].occurred_at + timedelta(days=30))
    policy = TriggerPolicy(catch_up_lag=timedelta(days=2), clock=later)
    processor, out = run(events, NetworkProcessor(configs=LINEAR, policy=policy))
    assert [d for d in out.drift_events if d.scope == "*|rsrp"] and not out.retrain_requests
    assert policy.held("network", "rsrp") and policy.held("network", "dl_bitrate")
    live = stream(windows=WINDOWS + 5)[len(events) :]  # caught up: the clock's own time
    policy.clock = FixedClock(live[-1].occurred_at)
    _, after = run(live, processor)
    assert sorted(r.scope for r in after.retrain_requests) == ["dl_bitrate", "rsrp"]
    assert all(r.evidence["held"] for r in after.retrain_requests)
    _, again = run(stream(windows=WINDOWS + 10)[len(events) + len(live) :], processor)
    assert not again.retrain_requests  # released once


def test_state_pickles_and_restores_giving_identical_detections() -> None:
    events = stream(level=3.0, scale=1.5)
    half = len(events) // 2 + 7 * CELLS
    processor, _ = run(events[:half])
    state = processor.state()
    assert state.version == NetworkProcessor.STATE_VERSION == 6
    restored = NetworkProcessor.restore(state)
    assert isinstance(restored, PartitionProcessor)
    _, a = run(events[half:], processor)
    _, b = run(events[half:], restored)
    assert [d.model_dump() for d in a.drift_events] == [d.model_dump() for d in b.drift_events]
    assert [r.event_id for r in a.retrain_requests] == [r.event_id for r in b.retrain_requests]
    assert a.drift_events  # the shift comes after the checkpoint


def test_replay_yields_the_same_ids_and_memory_stays_bounded() -> None:
    _, a = run(stream(level=3.0))
    processor, b = run(stream(level=3.0))
    assert [d.event_id for d in a.drift_events] == [d.event_id for d in b.drift_events]
    assert len({d.event_id for d in a.drift_events}) == len(a.drift_events)
    drift = NetworkDrift(forget_windows=20, recent_windows=10)
    for w in range(100):
        drift.observe(f"cell-{w}", "rsrp", w, -90.0, 1.0)  # a new cell every window
        drift.close_window("rsrp", w)
    assert len(drift.fields["rsrp"].cells) <= 21
    assert len(pickle.dumps(processor)) < 2_000_000


def test_cell_detectors_pickle_once_per_update_and_restore_identically() -> None:
    """A checkpoint re-pickles only the cells updated since the last one; a restored cell
    continues exactly as the live one."""
    rng = random.Random(5)
    live = CellDetectors()
    for w in range(60):
        live.update(w, rng.gauss(0, 1), abs(rng.gauss(0, 1)))
    blob = pickle.dumps(live)
    assert live._pickled is not None
    cached = live._pickled
    assert pickle.dumps(live) == blob and live._pickled is cached  # not pickled again
    back = pickle.loads(blob)
    values = [(w, rng.gauss(4 if w > 80 else 0, 1), abs(rng.gauss(0, 1))) for w in range(60, 120)]
    assert [live.update(*v) for v in values] == [back.update(*v) for v in values]
    assert live._pickled is None  # changed: the next checkpoint pickles it again
    assert pickle.loads(pickle.dumps(live)).state() == back.state() == live.state()
