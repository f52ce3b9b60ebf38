"""Count events and markets (issue 13 item 7), unit level (no Kafka).

* A sale event of ``quantity`` q gives exactly the stored observations, online forecasts,
  drift events, retrain requests, running scores and drift statistics of q events of quantity 1.
* The contract: ``quantity`` defaults to 1 (old events stay valid), must be a positive integer;
  ``market`` is optional, leads the segment key and may not look like a vehicle type.
* ``market`` fallback: a cold segment falls back within its market (brand_model, brand, the
  market's total), then to the vehicle type over every market (``global``); the served forecast
  book falls back within the market only and never across markets.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from millrace.settings import load_settings
from ml.demand.domain import DemandDomain
from ml.demand.forecast import ForecastBook, SegmentForecast, UnknownSegmentError
from ml.demand.online import OnlineDemandForecaster
from ml.demand.processor import DemandProcessor
from ml.demand.segments import parent_levels
from ml.ingest import Rejection, validate_message
from ml.observations import combine
from ml.periods import next_month
from ml.streaming import ProcessorOutput
from schemas.events import MAX_QUANTITY, SaleContractEvent

#: a live stream (catch-up mode off), so retrain requests go out at the close that trips them
LIVE = load_settings(_env_file=None).model_copy(update={"catch_up_lag_seconds": 0.0})
SEGMENTS = [
    ("CAR", "TOYOTA", "COROLLA", "XEI"),
    ("CAR", "KIA", "SOUL", ""),
    ("MOTORCYCLE", "YAMAHA", "MT-07", ""),
    ("NO", "CAR", "TESLA", "ALL", ""),
    ("SE", "CAR", "TESLA", "ALL", ""),
]
MONTHS = 30
SHIFT_AT = 20  # from this month on, the first segment sells 3x as much (a drift to detect)


def _event(segment: tuple[str, ...], at: datetime, n: int, quantity: int, kind: str = "SALE"):
    market, (vehicle_type, brand, model, line) = (
        (segment[0], segment[1:]) if len(segment) == 5 else (None, segment)
    )
    return SaleContractEvent(
        event_id=f"{'|'.join(segment)}/{at.isoformat()}/{kind}/{n}",
        occurred_at=at,
        contract_type=kind,
        vehicle_type=vehicle_type,
        brand=brand,
        model=model,
        line=line,
        sale_price=25_000.0 if kind == "SALE" else None,
        purchase_price=18_000.0 if kind == "PURCHASE" else None,
        quantity=quantity,
        market=market,
    )


def _feeds(seed: int = 7) -> tuple[list[list], list[list]]:
    """Per month: the count feed (one event per segment, kind and month, at mid-month) and the
    same vehicles as unit events spread over the month."""
    rng = random.Random(seed)
    counts, units = [], []
    for m in range(MONTHS):
        start = datetime(2019 + m // 12, m % 12 + 1, 1, tzinfo=UTC)
        length = next_month(start) - start
        month_counts, month_units = [], []
        for s, segment in enumerate(SEGMENTS):
            rate = 8 + 4 * s + (16 if s == 0 and m >= SHIFT_AT else 0)
            for kind, q in (("SALE", rng.randint(0, 2 * rate)), ("PURCHASE", rng.randint(0, 3))):
                if q == 0:
                    continue  # a count feed has no row for nothing sold
                month_counts.append(_event(segment, start + length / 2, 0, q, kind))
                month_units += [
                    _event(segment, start + length * (i + 0.5) / q, i, 1, kind) for i in range(q)
                ]
        counts.append(month_counts)
        units.append(sorted(month_units, key=lambda e: e.occurred_at))
    return counts, units


def _run(batches: list[list]) -> tuple[ProcessorOutput, DemandProcessor]:
    processor = DemandProcessor.from_settings(LIVE)
    out = ProcessorOutput()
    for batch in batches:
        out.extend(processor.process(batch))
    return out, processor


def _without_latency(stats: object) -> object:
    """Statistics without the measured prediction latency (wall-clock time, never repeatable)."""
    if isinstance(stats, dict):
        return {k: _without_latency(v) for k, v in stats.items() if "latency" not in k}
    return stats


def test_count_events_store_the_same_observations_as_unit_events() -> None:
    counts, units = _feeds()
    domain = DemandDomain()
    by_count = combine(d for month in counts for e in month for d in domain.observe(e))
    by_unit = combine(d for month in units for e in month for d in domain.observe(e))
    assert by_count.keys() == by_unit.keys()
    for key, delta in by_count.items():
        other = by_unit[key]
        assert delta.n_events == other.n_events > 0, key
        assert {n: f.to_dict() for n, f in delta.fields.items()} == {
            n: f.to_dict() for n, f in other.fields.items()
        }, key
    # n_events counts vehicles: the quantities, not the rows
    assert sum(d.n_events for d in by_count.values()) == sum(len(m) for m in units)
    assert sum(len(m) for m in counts) < sum(len(m) for m in units) / 5


def test_count_events_give_the_same_forecasts_drift_and_statistics_as_unit_events() -> None:
    counts, units = _feeds()
    out_count, p_count = _run(counts)
    out_unit, p_unit = _run(units)
    assert out_count.forecasts == out_unit.forecasts and out_count.forecasts
    assert out_count.drift_events == out_unit.drift_events
    assert out_count.retrain_requests == out_unit.retrain_requests
    # the 3x level shift of the first segment is seen (by both, identically)
    assert any(e.scope == "CAR|TOYOTA|COROLLA|XEI" for e in out_count.drift_events)
    assert out_count.scores == out_unit.scores and out_count.scores
    assert out_count.corrections == out_unit.corrections == []
    assert _without_latency(p_count.statistics()) == _without_latency(p_unit.statistics())
    assert p_count.book.closed_through == p_unit.book.closed_through
    for segment in SEGMENTS:
        assert p_count.forecaster.forecast(segment) == p_unit.forecaster.forecast(segment)
        assert p_count.forecaster.metrics(segment) == p_unit.forecaster.metrics(segment)


def test_a_late_count_event_is_one_correction_of_its_quantity() -> None:
    counts, _ = _feeds()
    _, processor = _run(counts[:6])
    late = _event(SEGMENTS[1], datetime(2019, 2, 3, tzinfo=UTC), 99, 40)
    out = processor.process([late])
    assert out.corrections == [("demand", "CAR|KIA|SOUL|", datetime(2019, 2, 1, tzinfo=UTC))]
    (delta,) = DemandDomain().observe(late)
    assert delta.n_events == 40 and delta.fields["sales"].count == 40
    assert delta.fields["sale_price"].to_dict() == {
        "count": 40, "sum": 1_000_000.0, "sumsq": 40 * 25_000.0**2, "min": 25_000.0,
        "max": 25_000.0}  # fmt: skip


# --- the contract ----------------------------------------------------------------------------
BASE = {
    "event_id": "e1",
    "occurred_at": "2024-03-05T10:00:00Z",
    "contract_type": "SALE",
    "vehicle_type": "CAR",
    "brand": "Tesla",
    "model": "Model 3",
}


def test_old_events_stay_valid_and_keep_their_key() -> None:
    event = SaleContractEvent.model_validate(BASE)
    assert event.quantity == 1 and event.market is None
    assert event.segment_key == "CAR|TESLA|MODEL 3|"
    assert SaleContractEvent.model_validate({**BASE, "market": ""}).segment_key == (
        "CAR|TESLA|MODEL 3|"
    )
    marked = SaleContractEvent.model_validate({**BASE, "market": " no ", "quantity": 12})
    assert marked.segment_key == "NO|CAR|TESLA|MODEL 3|" and marked.quantity == 12


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("quantity", 0, "greater than or equal to 1"),
        ("quantity", -3, "greater than or equal to 1"),
        ("quantity", MAX_QUANTITY + 1, "less than or equal to"),
        ("quantity", 2.0, "valid integer"),
        ("quantity", "2", "valid integer"),
        ("quantity", True, "valid integer"),
        ("quantity", None, "valid integer"),
        ("market", "CAR", "market must not be a vehicle type"),
        ("market", "motorcycle", "market must not be a vehicle type"),
        ("market", "N|O", "market must not contain"),
        ("market", "X" * 41, "at most 40 characters"),
        ("market", "N\x00O", "control character"),
        ("market", "M" * 30, "longer than 120 characters"),
    ],
)
def test_bad_quantity_or_market_is_refused(field: str, value: object, message: str) -> None:
    body = {**BASE, field: value}
    if field == "market" and len(str(value)) == 30:
        body["model"] = "M" * 88  # fits alone, not with the market
    with pytest.raises(ValidationError, match=message):
        SaleContractEvent.model_validate(body)


@pytest.mark.parametrize("quantity", [b"0", b"-2", b"1.5"])
def test_bad_quantity_is_a_dead_letter_with_its_reason(quantity: bytes) -> None:
    outcome = validate_message(
        DemandDomain(),
        b'{"event_id":"q0","occurred_at":"2024-03-05T10:00:00Z","contract_type":"SALE",'
        b'"vehicle_type":"CAR","brand":"Kia","model":"Soul","quantity":' + quantity + b"}",
        max_bytes=10_000,
        max_future=timedelta(days=1),
    )
    assert isinstance(outcome, Rejection)
    assert outcome.error_type == "schema_violation" and outcome.reason.startswith("quantity: ")


# --- market fallback -------------------------------------------------------------------------
def test_parent_levels_with_and_without_market() -> None:
    assert parent_levels(("CAR", "KIA", "SOUL", "")) == (
        ("brand_model", ("CAR", "KIA", "SOUL")),
        ("brand", ("CAR", "KIA")),
        ("vehicle_type", ("CAR",)),
    )
    assert parent_levels(("NO", "CAR", "KIA", "SOUL", "")) == (
        ("brand_model", ("NO", "CAR", "KIA", "SOUL")),
        ("brand", ("NO", "CAR", "KIA")),
        ("market", ("NO", "CAR")),
        ("global", ("CAR",)),
    )


def _months(n: int) -> list[date]:
    return [date(2020 + i // 12, i % 12 + 1, 1) for i in range(n)]


def test_online_cold_segment_falls_back_in_its_market_then_globally() -> None:
    model = OnlineDemandForecaster()
    months = _months(12)
    for i, month in enumerate(months):
        model.observe_month(("NO", "CAR", "TESLA", "ALL", ""), month, 100 + i)
        model.observe_month(("NO", "CAR", "VOLVO", "ALL", ""), month, 50)
        model.observe_month(("SE", "CAR", "VOLVO", "ALL", ""), month, 300)
    nxt = date(2021, 1, 1)
    # new in Sweden, a brand Sweden never sold: the Swedish car market answers
    sweden = model.observe_month(("SE", "CAR", "TESLA", "ALL", ""), nxt, 20)
    assert sweden.fallback_level == "market"
    # a market never seen: every market's cars answer
    denmark = model.observe_month(("DK", "CAR", "TESLA", "ALL", ""), nxt, 5)
    assert denmark.fallback_level == "global"
    # a second Norwegian Tesla line: the Norwegian brand answers
    norway = model.observe_month(("NO", "CAR", "TESLA", "MODEL Y", ""), nxt, 5)
    assert norway.fallback_level == "brand"
    forecast = model.forecast(("DK", "CAR", "TESLA", "ALL", ""), horizon=2)
    assert forecast.fallback_level == "global" and all(p.value > 0 for p in forecast.points)
    # the global level is the vehicle type everywhere: segments without a market share it
    model.observe_month(("CAR", "KIA", "SOUL", ""), nxt, 7)
    assert model.metrics(("CAR",))["n"] == 3 * 12 + 4
    assert model.metrics(("SE", "CAR"))["n"] == 12 + 1


def _book(keys: list[str]) -> ForecastBook:
    history = ((date(2020, 1, 1), 10),)
    segments = {
        k: SegmentForecast(k, np.full(3, 10.0 * (i + 1)), 0.2, history) for i, k in enumerate(keys)
    }
    return ForecastBook("v1", date(2020, 2, 1), 3, segments)


def test_served_book_falls_back_within_the_market_only() -> None:
    book = _book(["NO|CAR|TESLA|ALL|", "NO|CAR|TESLA|MODEL S|", "SE|CAR|VOLVO|ALL|",
                  "CAR|TESLA|ALL|"])  # fmt: skip
    direct = book.predict(("NO", "CAR", "TESLA", "ALL", ""), 2, 0.9)
    assert direct.segment == "NO|CAR|TESLA|ALL|" and direct.fallback_level is None
    assert direct.points[0].value == 10.0
    brand = book.predict(("NO", "CAR", "TESLA", "MODEL X", ""), 2, 0.9)
    assert brand.segment == "NO|CAR|TESLA" and brand.fallback_level == "brand"
    assert brand.points[0].value == pytest.approx(15.0)  # mean of the two Norwegian Teslas
    # without a market: only the segments without one answer
    plain = book.predict(("CAR", "TESLA", "MODEL S", ""), 2, 0.9)
    assert plain.segment == "CAR|TESLA" and plain.points[0].value == 40.0
    with pytest.raises(UnknownSegmentError):  # Sweden never sold a Tesla
        book.resolve(("SE", "CAR", "TESLA", "ALL", ""))
    with pytest.raises(UnknownSegmentError):  # a market the book does not hold
        book.resolve(("DK", "CAR", "VOLVO", "ALL", ""))
