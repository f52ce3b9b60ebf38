"""Demand intervals (split-conformal per horizon, capped) and the lightgbm_change,
lightgbm_ratio, lightgbm_ratio_market and ensemble candidates, on small synthetic panels: no
store, no broker."""

from __future__ import annotations

import pickle
from datetime import date

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from ml.demand.book import _level_index
from ml.demand.candidates import (
    MIN_MARKET_MONTHS,
    GlobalGBMChange,
    GlobalGBMRatio,
    GlobalGBMRatioMarket,
    LastMonth,
    SeasonalNaive,
    ValidatedEnsemble,
    add_features,
    change_features,
    fit_persistence,
    market_forecast,
    market_growth,
    market_rows,
    reconcile,
    year_scale,
)
from ml.demand.forecast import (
    INTERVAL_CAP,
    LEVELS,
    MIN_SCORES,
    ForecastBook,
    SegmentForecast,
    build_book,
    conformal_widths,
)
from ml.demand.workdays import CALENDAR_NAMES, working_days
from ml.metrics import score

FAR = date(2100, 1, 1)


def synthetic_panel(segments: int = 12, months: int = 60, seed: int = 5) -> pd.DataFrame:
    """Monthly sales with a per-segment level, multiplicative seasonality, growth and
    log-normal noise (levels from ~5 to ~2,000 a month)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(2015, 1, 1)
    rows = []
    for s in range(segments):
        level = float(np.exp(rng.uniform(np.log(5), np.log(2000))))
        growth = rng.uniform(-0.01, 0.02)
        phase = rng.uniform(0, 2 * np.pi)
        for t in range(months):
            season = 0.3 * np.sin(2 * np.pi * t / 12 + phase)
            mean = level * np.exp(growth * t + season + rng.normal(0, 0.12))
            rows.append(
                {
                    "series_key": f"CAR|MAKE{s:02d}|ALL|",
                    "month": start + pd.DateOffset(months=t),
                    "sales": float(rng.poisson(mean)),
                    "purchases": 0.0,
                    "sale_price": np.nan,
                    "purchase_price": np.nan,
                }
            )
    return pd.DataFrame(rows)


def test_conformal_widths_cover_iid_scores_at_every_level_and_horizon() -> None:
    """Calibrated on i.i.d. |N(0, h)| scores, the widths cover fresh ones at the nominal rate."""
    rng = np.random.default_rng(11)
    horizons = 3
    calibration = [np.abs(rng.normal(0, np.sqrt(h), 2000)) for h in range(1, horizons + 1)]
    widths = conformal_widths(calibration, horizons)
    for h in range(1, horizons + 1):
        fresh = np.abs(rng.normal(0, np.sqrt(h), 20000))
        for level in (0.8, 0.95):
            covered = float(np.mean(fresh <= widths[h - 1, _level_index(level)]))
            assert abs(covered - level) < 0.02, (h, level, covered)


def test_conformal_quantile_is_finite_sample_and_monotone() -> None:
    """ceil((n + 1) c)-th smallest score; past n the largest; non-decreasing in h and level;
    horizons without enough scores widen the last calibrated one by sqrt(h / h_last)."""
    scores = [np.arange(1.0, 20.0), np.arange(1.0, 20.0) * 0.5, np.ones(MIN_SCORES - 1)]
    widths = conformal_widths(scores, 5)
    n = 19
    assert widths[0, _level_index(0.8)] == pytest.approx(np.ceil((n + 1) * 0.8))  # 16th of 1..19
    assert widths[0, _level_index(0.95)] == pytest.approx(19.0)  # rank 19 = n: the largest
    assert widths[0, _level_index(0.99)] == pytest.approx(19.0)  # past n: still the largest
    assert np.all(widths[1] == widths[0])  # h=2 scores are smaller: widths never shrink with h
    for h in (3, 4, 5):  # too few scores at 3, none after: sqrt widening of h=2
        np.testing.assert_allclose(widths[h - 1], widths[1] * np.sqrt(h / 2))
    assert np.all(np.diff(widths, axis=1) >= 0)  # wider with the level
    with pytest.raises(ValueError):
        conformal_widths([np.ones(3)], 2)


def test_level_rounds_up_to_the_next_hundredth() -> None:
    assert LEVELS[_level_index(0.95)] == 0.95
    assert LEVELS[_level_index(0.951)] == 0.96
    assert LEVELS[_level_index(0.5)] == 0.5
    assert LEVELS[_level_index(0.99)] == 0.99


def test_upper_bound_is_capped_at_a_multiple_of_the_largest_month() -> None:
    history = ((date(2024, 1, 1), 100), (date(2024, 2, 1), 40))
    segment = SegmentForecast("CAR|X|ALL|", np.array([80.0, 90.0, 120.0]), 5.0, history)
    book = ForecastBook("v1", date(2024, 3, 1), 3, {"CAR|X|ALL|": segment})
    points = book.predict(("CAR", "X", "ALL", ""), 3, 0.95).points
    assert [p.upper for p in points] == [INTERVAL_CAP * 100] * 3
    uncapped = ForecastBook("v1", date(2024, 3, 1), 3, {"CAR|X|ALL|": segment}, cap=None)
    free = uncapped.predict(("CAR", "X", "ALL", ""), 3, 0.95).points
    assert all(p.upper > INTERVAL_CAP * 100 for p in free)
    assert all(0 <= p.lower <= p.value <= p.upper for p in points)
    # a point forecast above the cap keeps lower <= value <= upper
    high = SegmentForecast("CAR|X|ALL|", np.array([400.0]), 5.0, history)
    point = (
        ForecastBook("v1", date(2024, 3, 1), 1, {"CAR|X|ALL|": high})
        .predict(("CAR", "X", "ALL", ""), 1, 0.95)
        .points[0]
    )
    assert point.upper == point.value == 400.0


def test_book_calibrates_on_the_months_after_training() -> None:
    """A version fitted on the first 36 of 60 months gets conformal intervals whose coverage of
    the next 12 months (simulated from the same process) is near nominal; a version fitted on
    every month has no held-out month and falls back to the normal intervals."""
    panel = synthetic_panel(segments=30, months=72)
    known = panel[panel["month"] < pd.Timestamp(2020, 1, 1)]  # 60 months
    model = SeasonalNaive().fit(known[known["month"] < pd.Timestamp(2018, 1, 1)])
    book = build_book(model, known, "v1", horizon=12, today=FAR)
    assert book.method == "conformal"
    assert book.calibration_scores[0] == 30 * 12  # 12 origins x 30 segments one month ahead
    future = panel[panel["month"] >= pd.Timestamp(2020, 1, 1)]
    for level in (0.8, 0.95):
        inside = []
        for key, part in future.groupby("series_key"):
            points = book.predict(tuple(key.split("|")), 12, level).points
            for p, y in zip(points, part.sort_values("month")["sales"], strict=True):
                assert 0 <= p.lower <= p.value <= p.upper
                inside.append(p.lower <= y <= p.upper)
        assert abs(np.mean(inside) - level) < 0.1, (level, np.mean(inside))
    everything = build_book(SeasonalNaive().fit(known), known, "v1", horizon=12, today=FAR)
    assert everything.method == "normal"


def test_market_lags_are_the_sums_of_earlier_months() -> None:
    panel = synthetic_panel(segments=4, months=15)
    featured = add_features(panel)
    totals = panel.groupby("month")["sales"].sum()
    row = featured[featured["month"] == pd.Timestamp(2016, 2, 1)].iloc[0]
    assert row["market_lag_1"] == totals[pd.Timestamp(2016, 1, 1)]
    assert row["market_lag_13"] == totals[pd.Timestamp(2015, 1, 1)]
    assert np.isnan(featured[featured["month"] == pd.Timestamp(2015, 1, 1)]["market_lag_1"]).all()
    got = market_rows(np.array(["CAR|A|B|C"]), np.array([2016 * 12 + 1]), {("", 2016 * 12): 5.0})
    assert got["market_lag_1"][0] == 5.0 and np.isnan(got["market_lag_2"][0])


def test_market_lags_sum_within_the_row_s_market_only() -> None:
    panel = synthetic_panel(segments=4, months=15)
    other = panel.assign(series_key="SE|" + panel["series_key"], sales=panel["sales"] * 100)
    featured = add_features(pd.concat([panel, other], ignore_index=True))
    month = featured["month"] == pd.Timestamp(2016, 2, 1)
    plain = featured[month & ~featured["series_key"].str.startswith("SE|")].iloc[0]
    swedish = featured[month & featured["series_key"].str.startswith("SE|")].iloc[0]
    january = panel[panel["month"] == pd.Timestamp(2016, 1, 1)]["sales"].sum()
    assert plain["market_lag_1"] == january
    assert swedish["market_lag_1"] == 100 * january


@pytest.mark.parametrize("anchor", ["last_month", "last_year"])
def test_lightgbm_change_beats_seasonal_naive_and_forecasts(anchor: str) -> None:
    panel = synthetic_panel(segments=12, months=60)
    featured = add_features(panel)
    cut = pd.Timestamp(2019, 1, 1)
    train, test = featured[featured["month"] < cut], featured[featured["month"] >= cut]
    model = GlobalGBMChange(anchor=anchor, rounds=100).fit(train)
    assert model.trained_through == train["month"].max()
    y = test["sales"].to_numpy(float)
    mae = score(y, model.predict(test))["mae"]
    naive = score(y, SeasonalNaive().predict(test))["mae"]
    assert mae < naive
    paths = pickle.loads(pickle.dumps(model)).forecast(panel, 14)
    assert set(paths) == set(panel["series_key"])
    assert all(len(p) == 14 and np.all(np.isfinite(p)) and np.all(p >= 0) for p in paths.values())
    with pytest.raises(ValueError):
        GlobalGBMChange(anchor="nowhere")


def test_year_scale_is_the_mean_of_the_known_last_twelve_months_at_least_one() -> None:
    rows = pd.DataFrame({f"lag_{k}": [float(k), np.nan, 0.0] for k in range(1, 13)})
    rows.loc[1, "lag_1"] = 30.0
    rows.loc[1, "lag_2"] = 10.0
    assert year_scale(rows).tolist() == [6.5, 20.0, 1.0]


def test_lightgbm_ratio_beats_seasonal_naive_forecasts_and_pickles() -> None:
    panel = synthetic_panel(segments=12, months=60)
    featured = add_features(panel)
    cut = pd.Timestamp(2019, 1, 1)
    train, test = featured[featured["month"] < cut], featured[featured["month"] >= cut]
    model = GlobalGBMRatio(rounds=100).fit(train)
    assert model.trained_through == train["month"].max()
    y = test["sales"].to_numpy(float)
    predicted = model.predict(test)
    assert np.all(predicted >= 0)
    assert score(y, predicted)["mae"] < score(y, SeasonalNaive().predict(test))["mae"]
    copy = pickle.loads(pickle.dumps(model))
    assert np.array_equal(copy.predict(test), predicted)
    paths = copy.forecast(panel, 14)
    assert set(paths) == set(panel["series_key"])
    assert all(len(p) == 14 and np.all(np.isfinite(p)) and np.all(p >= 0) for p in paths.values())


def test_ensemble_chooses_its_weights_on_the_training_part_s_last_months() -> None:
    # seasonality without noise or growth: same month last year is exact, last month is not
    months = pd.date_range("2015-01-01", periods=48, freq="MS")
    panel = pd.DataFrame(
        [
            {"series_key": f"CAR|M{s}|ALL|", "month": m,
             "sales": float(10 * (s + 1) * (1 + m.month)),
             "purchases": 0.0, "sale_price": np.nan, "purchase_price": np.nan}
            for s in range(3) for m in months
        ]
    )  # fmt: skip
    featured = add_features(panel)
    train = featured[featured["month"] < months[-12]]
    ensemble = ValidatedEnsemble(lambda: [LastMonth(), SeasonalNaive()]).fit(train)
    assert ensemble.weights.tolist() == [0.0, 1.0]
    assert ensemble.validation is not None and ensemble.validation["seasonal_naive"] == 0.0
    assert ensemble.validation["ensemble"] == 0.0 < ensemble.validation["last_month"]
    assert ensemble.trained_through == train["month"].max()
    test = featured[featured["month"] >= months[-12]]
    assert np.array_equal(ensemble.predict(test), test["sales"].to_numpy(float))
    assert ensemble.features == ["lag_1", "lag_12"]
    # too short to hold months out: equal weights, still fitted on every month
    short = ValidatedEnsemble(lambda: [LastMonth(), SeasonalNaive()]).fit(
        featured[featured["month"] < months[20]]
    )
    assert short.weights.tolist() == [0.5, 0.5] and short.validation is None
    with pytest.raises(RuntimeError):
        ValidatedEnsemble().predict(test)


def test_default_ensemble_weights_are_on_the_simplex() -> None:
    panel = synthetic_panel(segments=6, months=40)
    featured = add_features(panel)
    ensemble = ValidatedEnsemble().fit(featured)
    assert len(ensemble.weights) == 4 and abs(ensemble.weights.sum() - 1) < 1e-9
    assert np.all(ensemble.weights >= 0)
    assert [m.algorithm for m in ensemble.members] == [
        "lightgbm_change", "lightgbm_ratio", "seasonal_naive", "last_month"
    ]  # fmt: skip


def test_a_change_model_trained_without_the_calendar_still_predicts() -> None:
    # an artifact from before the working-day columns: its booster knows fewer inputs
    panel = synthetic_panel(segments=6, months=40)
    featured = add_features(panel)
    rows = featured[featured["lag_1"].notna()]
    model = GlobalGBMChange(rounds=20).fit(featured)
    x = change_features(rows).drop(columns=list(CALENDAR_NAMES))
    model.model = lgb.train({"objective": "l1", "verbose": -1}, lgb.Dataset(x, np.zeros(len(x))), 5)
    assert np.all(np.isfinite(model.predict(rows)))


def market_panel(persistence: float, *, noise: float, seed: int = 0, segments: int = 10,
                 months: int = 72, shock_every: int = 3) -> pd.DataFrame:  # fmt: skip
    """Segments sharing one market: each sells a share of the market's sales per working day
    (ml.demand.workdays) times the month's working days, with its own drift and log-normal
    ``noise`` (Poisson counts when noisy). The market's year-over-year growth per working day
    carries ``persistence`` of last month's into this month's, with a new shock every
    ``shock_every`` months."""
    rng = np.random.default_rng(seed)
    dates = list(pd.date_range("2012-01-01", periods=months, freq="MS"))
    days = np.array([working_days(d.year, d.month) for d in dates], dtype=float)
    rate, growth = np.empty(months), np.zeros(months)
    rate[:12] = 100 * (1 + 0.2 * np.sin(2 * np.pi * np.arange(12) / 12))
    for t in range(12, months):
        shock = rng.normal(0, 0.15) if t % shock_every == 0 else 0.0
        growth[t] = persistence * growth[t - 1] + shock
        rate[t] = rate[t - 12] * np.exp(growth[t])
    rows = []
    for s in range(segments):
        share = float(np.exp(rng.uniform(np.log(0.05), np.log(5))))
        drift = rng.uniform(-0.01, 0.01) if noise else 0.0
        for t, month in enumerate(dates):
            mean = share * days[t] * rate[t] * np.exp(drift * t + rng.normal(0, noise))
            rows.append(
                {
                    "series_key": f"CAR|M{s:02d}|ALL|",
                    "month": month,
                    "sales": float(rng.poisson(mean)) if noise else mean,
                    "purchases": 0.0,
                    "sale_price": np.nan,
                    "purchase_price": np.nan,
                }
            )
    return pd.DataFrame(rows)  # fmt: skip


def test_market_growth_and_forecast_are_per_working_day() -> None:
    rows = pd.DataFrame(
        {"series_key": ["CAR|A|ALL|", "CAR|B|ALL|", "CAR|C|ALL|"],
         "month": pd.to_datetime(["2016-03-01", "2016-03-01", "2016-04-01"]),
         "market_lag_1": [1100.0, 1100.0, np.nan], "market_lag_12": [1200.0, 1200.0, 900.0],
         "market_lag_13": [1000.0, 1000.0, 800.0]}
    )  # fmt: skip

    def wd(year: int, month: int) -> float:
        return float(working_days(year, month))

    growth = np.log(1100 / wd(2016, 2)) - np.log(1000 / wd(2015, 2))
    assert np.allclose(market_growth(rows)[:2], growth) and np.isnan(market_growth(rows)[2])
    expected = 1200 / wd(2015, 3) * wd(2016, 3) * np.exp(0.5 * growth)
    forecast = market_forecast(rows, 0.5)
    assert np.allclose(forecast[:2], expected) and np.isnan(forecast[2])
    # no persistence: the same month last year per working day
    assert np.allclose(market_forecast(rows, 0.0)[:2], 1200 / wd(2015, 3) * wd(2016, 3))


def test_fit_persistence_recovers_the_market_growth_s_persistence() -> None:
    # a noise-free market: the growth carries exactly 0.6 of last month's, except at shocks
    featured = add_features(market_panel(0.6, noise=0.0, shock_every=6))
    assert fit_persistence(featured) == pytest.approx(0.6, abs=1e-9)
    # the market forecast with it is the market's total of every month without a shock
    rows = featured[featured["month"].dt.month.isin([2, 3, 4, 5, 6, 8, 9, 10, 11, 12])
                    & (featured["month"] >= "2014-03-01")]  # fmt: skip
    totals = featured.groupby("month")["sales"].sum()
    assert np.allclose(market_forecast(rows, 0.6), rows["month"].map(totals), rtol=1e-9)
    # too few market-months with a known growth: no persistence
    short = featured[featured["month"] < pd.Timestamp(2012, 1, 1) + pd.DateOffset(
        months=13 + MIN_MARKET_MONTHS - 1)]  # fmt: skip
    assert fit_persistence(short) is None
    assert fit_persistence(featured.iloc[:0]) is None


def test_reconcile_moves_each_market_month_toward_its_forecast() -> None:
    rows = pd.DataFrame(
        {"series_key": ["CAR|A|ALL|", "CAR|B|ALL|", "SE|CAR|C|ALL|", "CAR|A|ALL|"],
         "month": pd.to_datetime(["2016-03-01", "2016-03-01", "2016-03-01", "2016-04-01"])}
    )  # fmt: skip
    predicted = np.array([30.0, 10.0, 5.0, 7.0])
    forecast = np.array([160.0, 160.0, 20.0, np.nan])
    full = reconcile(rows, predicted, forecast, 1.0)
    assert full.tolist() == [120.0, 40.0, 20.0, 7.0]  # each market apart; unknown: as is
    half = reconcile(rows, predicted, forecast, 0.5)
    assert np.allclose(half, [60.0, 20.0, 10.0, 7.0])  # geometric mean of 40 and 160, 5 and 20
    assert np.array_equal(reconcile(rows, predicted, forecast, 0.0), predicted)
    assert reconcile(rows, np.zeros(4), forecast, 1.0).tolist() == [0.0] * 4


def test_lightgbm_ratio_market_beats_lightgbm_ratio_on_market_shocks_and_pickles() -> None:
    panel = market_panel(0.6, noise=0.05)
    featured = add_features(panel)
    cut = pd.Timestamp(2016, 1, 1)
    train = featured[featured["month"] < cut]
    test = featured[(featured["month"] >= cut) & featured["lag_1"].notna()]
    y = test["sales"].to_numpy(float)
    ratio = GlobalGBMRatio(rounds=100).fit(train)
    model = GlobalGBMRatioMarket(rounds=100).fit(train)
    assert model.market_weight == GlobalGBMRatioMarket.MARKET_WEIGHT > 0
    assert model.persistence is not None and 0.4 < model.persistence < 0.9
    predicted = model.predict(test)
    assert np.all(predicted >= 0)
    assert score(y, predicted)["mae"] < 0.9 * score(y, ratio.predict(test))["mae"]
    copy = pickle.loads(pickle.dumps(model))
    assert np.array_equal(copy.predict(test), predicted)
    paths = copy.forecast(panel, 14)
    assert set(paths) == set(panel["series_key"])
    assert all(len(p) == 14 and np.all(np.isfinite(p)) and np.all(p >= 0) for p in paths.values())
    # weight 0, or an artifact pickled before the market weight existed: the booster alone
    unscaled = GlobalGBMRatioMarket(rounds=100, market_weight=0.0).fit(train)
    assert unscaled.persistence is None
    assert np.array_equal(unscaled.predict(test), ratio.predict(test))
    del copy.market_weight, copy.persistence
    assert np.array_equal(copy.predict(test), ratio.predict(test))
    with pytest.raises(ValueError):
        GlobalGBMRatioMarket(market_weight=1.5)
