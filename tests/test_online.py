"""OnlineDemandForecaster: predict-then-learn, cold-segment fallback, forecast, pickling."""

import math
import pickle
import statistics
from datetime import date

import pytest

from ml.demand.features import FEATURE_NAMES
from ml.demand.online import Forecast, MonthResult, OnlineDemandForecaster
from ml.metrics import RunningMetrics

COROLLA_LE = ("CAR", "Toyota", "Corolla", "LE")
COROLLA_XLE = ("CAR", "Toyota", "Corolla", "XLE")
RIO = ("CAR", "Kia", "Rio", "")
BIKE = ("MOTORCYCLE", "Yamaha", "MT-07", "")


def months(start: date, count: int) -> list[date]:
    index = start.year * 12 + start.month - 1
    return [date((index + i) // 12, (index + i) % 12 + 1, 1) for i in range(count)]


def seasonal(i: int, scale: float) -> float:
    """Deterministic seasonal series with a little pseudo-noise."""
    return scale * (100 + 40 * math.sin(2 * math.pi * i / 12) + 6 * math.sin(i * 1.7))


def test_first_prediction_of_new_segment_without_parents_is_zero() -> None:
    f = OnlineDemandForecaster()
    result = f.observe_month(COROLLA_LE, date(2024, 1, 1), 12, purchases=3)
    assert isinstance(result, MonthResult)
    assert result.predicted == 0.0 and result.fallback_level == "none"
    assert result.actual == 12.0 and result.month == date(2024, 1, 1)
    assert tuple(result.features) == FEATURE_NAMES
    assert result.latency_seconds >= 0
    assert f.metrics(COROLLA_LE)["mae"] == 12.0 and f.metrics()["n"] == 1
    # Still cold (1 and 2 months of history), and the parent is no older: nobody answers.
    assert f.observe_month(COROLLA_LE, date(2024, 2, 1), 10).fallback_level == "none"
    assert f.observe_month(COROLLA_LE, date(2024, 3, 1), 11).fallback_level == "none"
    own = f.observe_month(COROLLA_LE, date(2024, 4, 1), 13)
    assert own.fallback_level is None and own.predicted > 0


def test_cold_segments_use_nearest_parent_scaled_by_share() -> None:
    f = OnlineDemandForecaster()
    for i, month in enumerate(months(date(2024, 1, 1), 6)):
        f.observe_month(COROLLA_LE, month, 100 + 5 * i)
    # The brand_model parent's history equals COROLLA_LE's, so its prediction does too.
    parent_prediction = f.forecast(COROLLA_LE, horizon=1).points[0].value
    assert parent_prediction > 0

    july = date(2024, 7, 1)
    xle = f.observe_month(COROLLA_XLE, july, 30)
    assert xle.fallback_level == "brand_model"
    assert xle.predicted == pytest.approx(parent_prediction / 2)  # unknown share: 1 / 2 leaves

    rio = f.observe_month(RIO, july, 7)
    assert rio.fallback_level == "vehicle_type"
    assert rio.predicted == pytest.approx(parent_prediction / 3)  # 3 leaves under CAR

    bike = f.observe_month(BIKE, july, 4)
    assert bike.fallback_level == "none" and bike.predicted == 0.0

    le = f.observe_month(COROLLA_LE, july, 130)
    assert le.fallback_level is None
    # XLE has one month now, so its share is known: 30 / (30 + 130) of Toyota Corolla.
    # The forecast path and observe_month use the same parent fallback.
    expected = f.forecast(COROLLA_XLE, horizon=1)
    assert expected.fallback_level == "brand_model"
    xle_aug = f.observe_month(COROLLA_XLE, date(2024, 8, 1), 28)
    assert xle_aug.fallback_level == "brand_model"
    assert xle_aug.predicted == pytest.approx(expected.points[0].value)
    assert 0 < xle_aug.predicted < 160 * 30 / 160 * 2  # about 30, far from the parent's ~160
    assert f.metrics(("CAR", "Toyota", "Corolla"))["n"] == 9  # 7 LE + 2 XLE errors
    assert f.metrics(("CAR",))["n"] == 10
    assert f.metrics()["n"] == 11


def test_learns_seasonal_series_well_below_its_std() -> None:
    """Learn 36 months of a seasonal series at three scales, then score the next 12 months
    (still predict-then-learn): the error is a fraction of the series' spread."""
    f = OnlineDemandForecaster()
    scales = {("CAR", "A", "X", ""): 1.0, ("CAR", "B", "Y", ""): 10.0, ("CAR", "C", "Z", ""): 0.3}
    after = {segment: RunningMetrics() for segment in scales}
    for i, month in enumerate(months(date(2021, 1, 1), 48)):
        for segment, scale in scales.items():
            result = f.observe_month(segment, month, seasonal(i, scale))
            if i >= 36:
                after[segment].update(result.actual, result.predicted)
    for segment, scale in scales.items():
        std = statistics.pstdev(seasonal(i, scale) for i in range(48))
        assert f.metrics(segment)["n"] == 48
        assert f.metrics(segment)["mae"] < std, segment  # whole run, cold start included
        assert after[segment].mae < 0.35 * std, segment


def test_forecast_shape_dates_and_intervals() -> None:
    f = OnlineDemandForecaster()
    segment = ("CAR", "A", "X", "")
    for i, month in enumerate(months(date(2022, 11, 1), 20)):
        f.observe_month(segment, month, seasonal(i, 1.0))
    assert f.last_month(segment) == date(2024, 6, 1)
    forecast = f.forecast(segment, horizon=9, confidence=0.9)
    assert isinstance(forecast, Forecast) and forecast.fallback_level is None
    assert len(forecast.points) == 9
    assert [p.month for p in forecast.points] == months(date(2024, 7, 1), 9)
    widths = []
    for point in forecast.points:
        month, value, lower, upper = point
        assert 0 <= lower <= value <= upper
        widths.append(upper - value)
    assert widths == sorted(widths) and widths[-1] > widths[0]  # widened by sqrt(step)
    assert forecast.sigma == pytest.approx(f.metrics(segment)["rmse"])
    wider = f.forecast(segment, horizon=9, confidence=0.99)
    assert wider.points[0].upper > forecast.points[0].upper
    assert len(f.forecast(segment).points) == 6
    with pytest.raises(KeyError):
        f.forecast(("CAR", "nope", "", ""))
    with pytest.raises(ValueError):
        f.forecast(segment, horizon=0)


def test_forecast_cold_segment_uses_parent() -> None:
    f = OnlineDemandForecaster()
    for i, month in enumerate(months(date(2024, 1, 1), 5)):
        f.observe_month(COROLLA_LE, month, 50 + i)
    f.observe_month(BIKE, date(2024, 5, 1), 3)
    f.observe_month(COROLLA_XLE, date(2024, 5, 1), 10)
    forecast = f.forecast(COROLLA_XLE, horizon=3)
    assert forecast.fallback_level == "brand_model"
    assert all(0 <= p.lower <= p.value <= p.upper for p in forecast.points)
    assert f.forecast(BIKE, horizon=2).fallback_level == "none"
    assert [p.value for p in f.forecast(BIKE, horizon=2).points] == [0.0, 0.0]


def test_pickle_round_trip_gives_identical_predictions() -> None:
    f = OnlineDemandForecaster()
    segments = [("CAR", "A", "X", ""), ("CAR", "A", "Y", ""), ("CAR", "B", "Z", "")]
    all_months = months(date(2020, 1, 1), 30)
    for i, month in enumerate(all_months[:20]):
        for k, segment in enumerate(segments):
            f.observe_month(segment, month, seasonal(i, k + 1), purchases=i % 4, sale_price=10.0)
    clone = pickle.loads(pickle.dumps(f))
    assert clone.metrics() == f.metrics() and clone.segments() == f.segments()
    for i, month in enumerate(all_months[20:], start=20):
        for k, segment in enumerate(segments):
            a = f.observe_month(segment, month, seasonal(i, k + 1))
            b = clone.observe_month(segment, month, seasonal(i, k + 1))
            assert a.predicted == b.predicted and a.fallback_level == b.fallback_level
    assert f.forecast(segments[0]).points == clone.forecast(segments[0]).points


def test_months_must_be_consecutive_and_fill_gaps() -> None:
    f = OnlineDemandForecaster()
    f.observe_month(COROLLA_LE, date(2024, 1, 1), 5)
    with pytest.raises(ValueError, match="consecutive"):
        f.observe_month(COROLLA_LE, date(2024, 3, 1), 5)
    with pytest.raises(ValueError):
        f.observe_month(COROLLA_LE, date(2024, 1, 1), 5)
    with pytest.raises(ValueError):
        f.observe_month(("CAR", "Toyota"), date(2024, 1, 1), 5)
    filled = f.fill_gaps(COROLLA_LE, date(2024, 4, 1))
    assert [r.month for r in filled] == [date(2024, 2, 1), date(2024, 3, 1)]
    assert all(r.actual == 0.0 for r in filled)
    assert f.fill_gaps(COROLLA_LE, date(2024, 4, 1)) == []
    assert f.fill_gaps(RIO, date(2024, 4, 1)) == []
    f.observe_month(COROLLA_LE, date(2024, 4, 1), 6)
    assert f.last_month(COROLLA_LE) == date(2024, 4, 1)
    assert f.last_month(RIO) is None
    assert f.segments() == [COROLLA_LE]
    with pytest.raises(KeyError):
        f.metrics(RIO)


def test_state_stays_compact() -> None:
    f = OnlineDemandForecaster()
    segment = ("CAR", "A", "X", "")
    for i, month in enumerate(months(date(2010, 1, 1), 120)):
        f.observe_month(segment, month, seasonal(i, 1.0), purchases=1)
    size_120 = len(pickle.dumps(f))
    for i, month in enumerate(months(date(2020, 1, 1), 60), start=120):
        f.observe_month(segment, month, seasonal(i, 1.0), purchases=1)
    assert len(pickle.dumps(f)) <= size_120 + 200  # bounded history, not all months
