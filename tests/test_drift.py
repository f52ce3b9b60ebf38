"""Tests for ml.drift: input shift, error drift, latency, re-arming and pickling."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from ml.drift import MIN_REFERENCE_N, Detection, DriftMonitor, Reference, critical_z


def _poisson(rng: random.Random, lam: float) -> float:
    """Poisson sample by Knuth's method, in two halves to stay far from exp() underflow."""
    total = 0
    for part in (lam / 2, lam / 2):
        limit, k, p = math.exp(-part), 0, 1.0
        while True:
            p *= rng.random()
            if p <= limit:
                break
            k += 1
        total += k
    return float(total)


def _shifts(dets: list[Detection]) -> list[Detection]:
    return [d for d in dets if d.detector == "input_shift"]


def test_reference_from_values() -> None:
    ref = Reference.from_values({"a": [1.0, 2.0, 3.0], "b": [], "c": [float("nan"), 4.0]})
    assert set(ref.fields) == {"a", "c"}
    assert ref.fields["a"].mean == 2.0 and ref.fields["a"].std == 1.0 and ref.fields["a"].n == 3
    assert Reference.from_dict(ref.to_dict()) == ref


def test_critical_z_tends_to_sigma() -> None:
    assert critical_z(3.0, 10_000) == pytest.approx(3.0, abs=1e-3)
    assert critical_z(3.0, 12) == pytest.approx(3.8499, abs=1e-3)  # scipy t.isf(0.00135, 11)
    assert critical_z(3.0, 12, tests=2) == pytest.approx(4.2570, abs=1e-3)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stationary_noise_no_detection(seed: int) -> None:
    rng = random.Random(seed)
    monitor = DriftMonitor()
    fired = [d for _ in range(500) for d in monitor.update({"units": _poisson(rng, 50)})]
    assert _shifts(fired) == []


def test_false_alarm_rate_is_moderate() -> None:
    """Per-step 3-sigma control: most 500-step stationary runs raise nothing (~85%)."""
    runs = 40
    alarms = 0
    for seed in range(100, 100 + runs):
        rng = random.Random(seed)
        monitor = DriftMonitor()
        alarms += any(monitor.update({"units": _poisson(rng, 50)}) for _ in range(500))
    assert alarms <= runs * 0.35


@pytest.mark.parametrize("seed", range(10))
def test_level_shift_detected_within_three(seed: int) -> None:
    """Monthly-like Poisson(50) -> Poisson(100), defaults, reference from the first 12 points."""
    rng = random.Random(1000 + seed)
    monitor = DriftMonitor()
    for _ in range(24):
        assert _shifts(monitor.update({"units": _poisson(rng, 50)})) == []
    delay = None
    for step in range(1, 13):
        if _shifts(monitor.update({"units": _poisson(rng, 100)})):
            delay = step
            break
    assert delay is not None and delay <= 3


def test_explicit_reference_and_detection_evidence() -> None:
    ref = Reference.from_values({"units": [48, 52, 50, 47, 53, 49, 51, 50, 46, 54, 50, 50]})
    monitor = DriftMonitor(reference=ref)
    dets: list[Detection] = []
    for _ in range(6):
        dets += monitor.update({"units": 80.0})
    assert len(dets) == 1
    det = dets[0]
    assert det.statistic == "units" and det.value > det.threshold
    assert det.evidence["reference_mean"] == pytest.approx(50.0)
    assert det.evidence["direction"] == "up"


def test_rearm_one_detection_per_excursion() -> None:
    ref = Reference.from_values({"x": [float(v % 5) for v in range(60)]})
    monitor = DriftMonitor(reference=ref)
    base = [float(v % 5) for v in range(24)]
    count = 0
    for _ in range(3):  # three excursions, each 20 points long
        for v in base:
            count += len(_shifts(monitor.update({"x": v})))
        for _ in range(20):
            count += len(_shifts(monitor.update({"x": 10.0})))
    for v in base:
        count += len(_shifts(monitor.update({"x": v})))
    assert count == 3


def test_set_reference_rearms_and_resets() -> None:
    monitor = DriftMonitor(reference=Reference.from_values({"x": [0.0, 1.0] * 10}))
    assert len(_shifts(sum((monitor.update({"x": 9.0}) for _ in range(12)), []))) == 1
    monitor.set_reference(Reference.from_values({"x": [0.0, 1.0] * 10}))
    assert len(_shifts(monitor.update({"x": 9.0}))) == 1  # re-armed
    monitor.set_reference(Reference.from_values({"x": [8.5, 9.5] * 10}))
    assert _shifts(sum((monitor.update({"x": 9.0}) for _ in range(12)), [])) == []


def test_auto_reference_from_first_window() -> None:
    monitor = DriftMonitor(window=12)
    for i in range(11):
        monitor.update({"x": float(i % 2) * 2})
    assert monitor.stats()["fields"]["x"]["reference"] is None
    monitor.update({"x": 2.0})
    ref = monitor.stats()["fields"]["x"]["reference"]
    assert ref["n"] == 12 and ref["mean"] == pytest.approx(1.0)
    assert MIN_REFERENCE_N <= 12


def test_adwin_fires_on_error_jump() -> None:
    rng = random.Random(7)
    monitor = DriftMonitor()
    for _ in range(300):
        dets = monitor.update({}, abs_error=abs(rng.gauss(0, 1)))
        assert [d for d in dets if d.detector == "adwin"] == []
    fired_at = None
    for step in range(1, 101):
        dets = monitor.update({}, abs_error=abs(rng.gauss(0, 1)) + 5.0)
        if any(d.detector == "adwin" for d in dets):
            fired_at = step
            det = next(d for d in dets if d.detector == "adwin")
            assert det.statistic == "abs_error"
            assert det.evidence["mean_after"] > det.evidence["mean_before"]
            break
    assert fired_at is not None and fired_at <= 20


def test_adwin_ignores_error_improvement_by_default() -> None:
    rng = random.Random(8)
    monitor = DriftMonitor()
    dets = [d for _ in range(300) for d in monitor.update({}, abs_error=abs(rng.gauss(0, 1)) + 5)]
    dets += [d for _ in range(200) for d in monitor.update({}, abs_error=abs(rng.gauss(0, 1)))]
    assert [d for d in dets if d.detector == "adwin"] == []


def test_page_hinkley_fires_on_error_jump() -> None:
    rng = random.Random(9)
    monitor = DriftMonitor(error_detector="page_hinkley", error_params={"threshold": 20})
    dets = [d for _ in range(200) for d in monitor.update({}, abs_error=abs(rng.gauss(0, 1)))]
    assert dets == []
    dets = [d for _ in range(50) for d in monitor.update({}, abs_error=abs(rng.gauss(0, 1)) + 5)]
    assert [d.detector for d in dets][:1] == ["page_hinkley"]


def test_latency_strictly_over_limit() -> None:
    monitor = DriftMonitor(max_latency_seconds=1.0, latency_window=10, min_latency_n=10)
    assert [d for _ in range(50) for d in monitor.update({}, latency_seconds=1.0)] == []
    dets = [d for _ in range(10) for d in monitor.update({}, latency_seconds=1.5)]
    assert len(dets) == 1
    assert dets[0].detector == "latency" and dets[0].value > 1.0 and dets[0].threshold == 1.0
    # Stays over: no storm. Back to <= 1.0, then over again: one more.
    assert [d for _ in range(20) for d in monitor.update({}, latency_seconds=2.0)] == []
    assert [d for _ in range(10) for d in monitor.update({}, latency_seconds=0.5)] == []
    dets = [d for _ in range(10) for d in monitor.update({}, latency_seconds=3.0)]
    assert len(dets) == 1


def test_pickle_round_trip_preserves_behaviour() -> None:
    rng = random.Random(11)
    monitor = DriftMonitor()
    for _ in range(100):
        monitor.update(
            {"units": _poisson(rng, 50), "price": rng.gauss(10, 1)},
            abs_error=abs(rng.gauss(0, 1)),
            latency_seconds=0.01,
        )
    blob = pickle.dumps(monitor)
    assert len(blob) < 8_000
    clone = pickle.loads(blob)
    assert clone.stats() == monitor.stats()
    tail = [
        ({"units": _poisson(rng, 100), "price": rng.gauss(10, 1)}, abs(rng.gauss(0, 1)) + 4)
        for _ in range(60)
    ]
    a = [monitor.update(x, abs_error=e, latency_seconds=0.01) for x, e in tail]
    b = [clone.update(x, abs_error=e, latency_seconds=0.01) for x, e in tail]
    assert a == b
    assert any(a)


def test_non_finite_inputs_ignored_and_validation() -> None:
    monitor = DriftMonitor()
    assert monitor.update({"x": float("nan")}, abs_error=float("inf")) == []
    assert monitor.stats()["fields"] == {}
    with pytest.raises(ValueError):
        DriftMonitor(window=3)
    with pytest.raises(ValueError):
        DriftMonitor(error_detector="kswin")  # type: ignore[arg-type]
