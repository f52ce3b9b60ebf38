"""Seeded simulators: determinism, seasonality, injected drift, plausible network values."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import numpy as np

from millrace.importers import simulate_demand, simulate_network

START = date(2022, 1, 1)
DRIFT = date(2024, 1, 1)
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _demand(seed: int = 7, **kwargs):
    args = dict(
        months=48,
        segments=10,
        base_rate=40.0,
        trend=0.0,
        drift_at=DRIFT,
        drift_factor=2.0,
        drift_segments=0.3,
    )
    args.update(kwargs)
    return simulate_demand(seed, START, **args)


def test_demand_is_deterministic_per_seed() -> None:
    def events(seed: int, **kwargs) -> list:
        return [r.event for r in _demand(seed, months=12, **kwargs)]

    first = events(7)
    assert first == events(7)  # same ids, times, prices
    assert [e.event_id for e in first] != [e.event_id for e in events(8)]
    assert not {e.event_id for e in first} & {e.event_id for e in events(7, base_rate=41.0)}


def test_demand_records_sorted_and_mixed() -> None:
    source = _demand(3)
    records = list(source)
    assert len(records) == source.estimated_total
    times = [r.event.occurred_at for r in records]
    assert times == sorted(times)
    assert {r.event.contract_type for r in records} == {"SALE", "PURCHASE"}
    assert {r.event.vehicle_type for r in records} == {"CAR", "MOTORCYCLE"}
    assert len({r.key for r in records}) == 10 and all(
        r.key == r.event.segment_key for r in records
    )
    assert all(r.event.sale_price > r.event.purchase_price > 0 for r in records)
    assert times[0].date() >= START and times[-1].date() < date(2026, 1, 1)


def test_demand_seasonality() -> None:
    sales = Counter(
        r.event.occurred_at.month
        for r in _demand(5, drift_at=None)
        if r.event.contract_type == "SALE"
    )
    counts = np.array([sales[m] for m in range(1, 13)], dtype=float)
    curve = np.sin(2 * np.pi * np.arange(12) / 12)
    assert np.corrcoef(counts, curve)[0, 1] > 0.8
    assert counts[2] > 1.3 * counts[8]  # March (peak) vs September (trough)


def test_drift_only_in_affected_segments() -> None:
    source = _demand(11)
    drifted = set(source.drifted_segments)
    assert len(drifted) == 3
    before, after = Counter(), Counter()
    for r in source:
        if r.event.contract_type == "SALE":
            (after if r.event.occurred_at.date() >= DRIFT else before)[r.key] += 1
    for key in {r.key for r in source}:  # 24 months each side: same seasonality
        ratio = after[key] / before[key]
        if key in drifted:
            assert 1.6 < ratio < 2.5, (key, ratio)
        else:
            assert 0.75 < ratio < 1.3, (key, ratio)


def test_drift_segments_by_key() -> None:
    key = "CAR|MAZDA|3 TOURING|SKYACTIV"
    source = _demand(2, drift_segments=[key, 1])
    assert source.drifted_segments == sorted([key, "MOTORCYCLE|YAMAHA|FZ 2.0|FZN-150"])


def test_network_deterministic_ranges_and_missing() -> None:
    kwargs = dict(seconds=600, cells=6, drift_at=datetime(2024, 3, 1, 0, 5, tzinfo=UTC))
    source = simulate_network(1, T0, **kwargs)
    events = [r.event for r in source]
    assert events == [r.event for r in simulate_network(1, T0, **kwargs)]
    assert len(events) == 3600 == source.estimated_total
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    assert all(-120 <= e.rsrp <= -70 for e in events)
    assert all(1 <= e.cqi <= 15 for e in events if e.cqi is not None)
    assert all(e.dl_bitrate >= 0 and e.ul_bitrate >= 0 for e in events)
    for field in ("snr", "cqi", "rssi", "rsrq", "ping_avg"):
        missing = sum(getattr(e, field) is None for e in events)
        assert 0 < missing < len(events), field
    assert all(e.nr_rsrp is None for e in events if e.network_mode == "LTE")
    assert {e.cell_id for e in events} == {f"SIM-{i:03d}" for i in range(6)}


def test_network_drift_lowers_affected_cells() -> None:
    drift_at = datetime(2024, 3, 1, 0, 30, tzinfo=UTC)
    source = simulate_network(4, T0, n=3600 * 4, cells=4, drift_at=drift_at, drift_cells=[0])
    assert source.drifted_cells == ["SIM-000"]
    rsrp: dict[tuple[str, bool], list[float]] = {}
    dl: dict[tuple[str, bool], list[float]] = {}
    for r in source:
        k = (r.event.cell_id, r.event.occurred_at >= drift_at)
        rsrp.setdefault(k, []).append(r.event.rsrp)
        dl.setdefault(k, []).append(r.event.dl_bitrate)
    shift = {c: np.mean(rsrp[(c, True)]) - np.mean(rsrp[(c, False)]) for c in source.cells}
    assert shift["SIM-000"] < -5
    assert np.median(dl[("SIM-000", True)]) < 0.8 * np.median(dl[("SIM-000", False)])
    assert np.mean([abs(shift[c]) for c in source.cells[1:]]) < 5


def test_network_needs_n_or_seconds() -> None:
    import pytest

    with pytest.raises(ValueError):
        simulate_network(1, T0)
    with pytest.raises(ValueError):
        simulate_network(1, datetime(2024, 1, 1), n=10)
