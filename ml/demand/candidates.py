"""Demand models for batch training: featured monthly panels and the candidates.

The panel has one row per (segment, month) from the segment's first month to the last month of
the data, months without sales filled with 0. Its features are :mod:`ml.demand.features`, the
same rows the online learner and the recursive forecasts use (NaN where unknown).

Candidates all predict one month ahead from actual lags, so they are scored on the same test
rows.
"""

from __future__ import annotations

import copy
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.demand.features import (
    CALENDAR_NAMES,
    EXTRA_LAG_NAMES,
    FEATURE_NAMES,
    LAG_FLAGS,
    LOOKBACK,
    SeriesWindow,
    series_features,
)
from ml.demand.online import OnlineDemandForecaster
from ml.demand.segments import market_of
from ml.demand.workdays import working_days

__all__ = [
    "FEATURES",
    "MARKET_LAGS",
    "MARKET_NAMES",
    "ROW_NAMES",
    "panel_windows",
    "add_features",
    "DemandCandidate",
    "SeasonalNaive",
    "GlobalGBM",
    "GlobalGBMChange",
    "ANCHORS",
    "change_features",
    "year_scale",
    "GlobalGBMRatio",
    "MIN_MARKET_MONTHS",
    "market_growth",
    "market_forecast",
    "fit_persistence",
    "reconcile",
    "GlobalGBMRatioMarket",
    "LastMonth",
    "ValidatedEnsemble",
    "ENSEMBLE_HOLDOUT",
    "OnlineReplay",
]

#: The batch models' features (missing lags are NaN, so the flags would say nothing more).
FEATURES = [name for name in FEATURE_NAMES if name not in LAG_FLAGS]
#: Months back of the market totals a row carries: ``market_lag_k`` is the sum of the sales of
#: every segment of the panel (the scope being trained) in the row's market
#: (:func:`~ml.demand.segments.market_of`) ``k`` months before the row's month.
MARKET_LAGS: tuple[int, ...] = (1, 2, 12, 13)
MARKET_NAMES: tuple[str, ...] = tuple(f"market_lag_{k}" for k in MARKET_LAGS)
#: Every column a featured row carries: the shared features, the batch-only lags and calendar,
#: the market.
ROW_NAMES: tuple[str, ...] = (*FEATURE_NAMES, *EXTRA_LAG_NAMES, *CALENDAR_NAMES, *MARKET_NAMES)


def _price(value: float) -> float | None:
    return None if pd.isna(value) else float(value)


def _month_index(months: pd.Series) -> np.ndarray:
    """year * 12 + month - 1 of each timestamp."""
    return months.to_numpy("datetime64[M]").astype(int) + 1970 * 12


MarketTotals = dict[tuple[str, int], float]


def market_totals(keys: np.ndarray, index: np.ndarray, sales: np.ndarray) -> MarketTotals:
    """Sales summed by (market of the series key, month index)."""
    markets = [market_of(str(k)) for k in keys]
    return pd.Series(sales, dtype=float).groupby([markets, index]).sum().to_dict()


def market_rows(keys: np.ndarray, index: np.ndarray, totals: MarketTotals) -> dict[str, np.ndarray]:
    """:data:`MARKET_NAMES` columns for rows of series ``keys`` and month indexes ``index``
    (year * 12 + month - 1) from ``totals`` (NaN where the month is not known)."""
    nan = float("nan")
    markets = [market_of(str(k)) for k in keys]
    return {
        f"market_lag_{k}": np.array(
            [totals.get((m, int(i) - k), nan) for m, i in zip(markets, index, strict=True)],
            dtype=float,
        )
        for k in MARKET_LAGS
    }


def add_features(panel: pd.DataFrame) -> pd.DataFrame:
    """Panel (series_key, month, sales, purchases, sale_price, purchase_price) + every column
    of :data:`ROW_NAMES`."""
    df = panel.sort_values(["series_key", "month"]).reset_index(drop=True)
    keys = df["series_key"].to_numpy()
    bounds = [0, *(np.flatnonzero(keys[1:] != keys[:-1]) + 1).tolist(), len(df)]
    columns = [
        list(df["month"].dt.to_pydatetime()),
        df["sales"].tolist(),
        df["purchases"].tolist(),
        df["sale_price"].tolist(),
        df["purchase_price"].tolist(),
    ]
    rows: list[dict[str, float]] = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if hi > lo:
            rows += series_features(*(column[lo:hi] for column in columns), extra=True)
    features = pd.DataFrame.from_records(rows, columns=list(ROW_NAMES[: -len(MARKET_NAMES)]),
                                         index=df.index)  # fmt: skip
    index = _month_index(df["month"])
    totals = market_totals(keys, index, df["sales"].to_numpy(float))
    market = pd.DataFrame(market_rows(keys, index, totals), index=df.index)
    return pd.concat([df.drop(columns=list(ROW_NAMES), errors="ignore"), features, market],
                     axis=1)  # fmt: skip


def segment_window(part: pd.DataFrame) -> SeriesWindow:
    """A segment's panel rows as the window its next month's row is built from."""
    part = part.sort_values("month")
    last = part.iloc[-1]
    return SeriesWindow(
        part["sales"].tolist(),
        part["purchases"].tolist(),
        t_index=len(part),
        sale_price=_price(last["sale_price"]),
        purchase_price=_price(last["purchase_price"]),
    )


def panel_windows(panel: pd.DataFrame) -> tuple[list[str], list[SeriesWindow]]:
    """Every segment of a panel (sorted by key) and its :func:`segment_window`, without a
    pandas group per segment (a book forecasts from a dozen origins)."""
    df = panel.sort_values(["series_key", "month"])
    keys = df["series_key"].to_numpy()
    bounds = [0, *(np.flatnonzero(keys[1:] != keys[:-1]) + 1).tolist(), len(df)]
    sales = df["sales"].to_numpy(float)
    purchases = df["purchases"].to_numpy(float)
    sale_price = df["sale_price"].to_numpy(float)
    purchase_price = df["purchase_price"].to_numpy(float)
    out_keys, windows = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if hi <= lo:
            continue
        start = max(lo, hi - LOOKBACK)
        out_keys.append(str(keys[lo]))
        windows.append(
            SeriesWindow(
                sales[start:hi].tolist(),
                purchases[start:hi].tolist(),
                t_index=hi - lo,
                sale_price=_price(sale_price[hi - 1]),
                purchase_price=_price(purchase_price[hi - 1]),
            )
        )
    return out_keys, windows


def _x(df: pd.DataFrame) -> pd.DataFrame:
    x = df[FEATURES].copy()
    for col in ("lag_1", "lag_3", "lag_12", "rolling_mean_3", "purchases_lag_1"):
        x[col] = np.log1p(x[col].clip(lower=0))
    return x.astype(float)


class DemandCandidate(ABC):
    """A fitted model that predicts next month's sales of a segment from its featured rows."""

    algorithm: str
    features: list[str] = FEATURES
    #: the last month the model learned from (set by ``fit``): later months are held out, and
    #: a forecast book calibrates its intervals on them (:mod:`ml.demand.forecast`)
    trained_through: pd.Timestamp | None = None

    def _seen(self, train: pd.DataFrame) -> None:
        self.trained_through = train["month"].max() if len(train) else None

    @abstractmethod
    def fit(self, train: pd.DataFrame) -> DemandCandidate:
        """Learn from featured training rows (rows without lag_1 are ignored)."""

    @abstractmethod
    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """Non-negative predictions for featured rows (lag_1 present)."""

    def forecast(self, panel: pd.DataFrame, horizon: int) -> dict[str, np.ndarray]:
        """Recursive ``horizon``-month forecasts after the panel's last month, per segment:
        each step's prediction becomes the next step's ``lag_1``; purchases and prices are
        held at their last known values. The panel's segments must end on the same month
        (``demand_panel`` fills them to the last month)."""
        keys, windows = panel_windows(panel)
        month = panel["month"].max()
        index = _month_index(panel["month"])
        totals = market_totals(panel["series_key"].to_numpy(), index,
                               panel["sales"].to_numpy(float))  # fmt: skip
        markets = np.array([market_of(str(k)) for k in keys])
        out = np.zeros((len(windows), horizon))
        names = ROW_NAMES[: -len(MARKET_NAMES)]
        for step in range(horizon):
            month = month + pd.DateOffset(months=1)
            at = np.full(len(windows), month.year * 12 + month.month - 1)
            records = [w.row(month, extra=True) for w in windows]
            columns: dict = {name: [r[name] for r in records] for name in names}
            columns.update(market_rows(np.asarray(keys), at, totals), series_key=keys,
                           month=[month] * len(keys))  # fmt: skip
            rows = pd.DataFrame(columns)
            predicted = np.clip(self.predict(rows), 0.0, None)
            for window, value in zip(windows, predicted, strict=True):
                window.push(float(value))
            for market in set(markets):
                totals[(market, int(at[0]))] = float(predicted[markets == market].sum())
            out[:, step] = predicted
        return {key: out[i] for i, key in enumerate(keys)}


class SeasonalNaive(DemandCandidate):
    """Same month last year; last month when a segment has less than a year of history."""

    algorithm = "seasonal_naive"
    features = ["lag_12", "lag_1"]

    def fit(self, train: pd.DataFrame) -> SeasonalNaive:
        self._seen(train)
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return rows["lag_12"].fillna(rows["lag_1"]).fillna(0).clip(lower=0).to_numpy(float)


class GlobalGBM(DemandCandidate):
    """One LightGBM model over all segments, on log1p of the target and of the lag features,
    so that segments a thousand times apart in volume share one model."""

    algorithm = "lightgbm"

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        self.model: lgb.Booster | None = None

    def fit(self, train: pd.DataFrame) -> GlobalGBM:
        rows = train[train["lag_1"].notna()]
        params = {
            "objective": "regression",
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_data_in_leaf": 5,
            "bagging_fraction": 0.9,
            "bagging_freq": 1,
            "feature_fraction": 0.9,
            "seed": self.seed,
            "num_threads": 1,
            "deterministic": True,
            "verbose": -1,
        }
        data = lgb.Dataset(_x(rows), np.log1p(rows["sales"].clip(lower=0)))
        self.model = lgb.train(params, data, num_boost_round=300)
        self._seen(train)
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("GlobalGBM.predict before fit")
        return np.clip(np.expm1(self.model.predict(_x(rows))), 0, None)


def _log(rows: pd.DataFrame, column: str) -> np.ndarray:
    return np.log1p(rows[column].to_numpy(float).clip(min=0))


def change_features(rows: pd.DataFrame) -> pd.DataFrame:
    """:class:`GlobalGBMChange`'s inputs, all in log1p space: every lag as its change to last
    month (``d_lag_k = log1p(lag_k) - log1p(lag_1)``), last year's and two years' change into
    the same month (``lag_12`` over ``lag_13``, ``lag_24`` over ``lag_25``), the year-over-year
    change of the last two months, the market's last-month, last-year and year-over-year
    changes, the segment's share of the market, its level, the season and the month's working
    days (:data:`~ml.demand.workdays.CALENDAR_NAMES`). NaN where unknown."""
    level = _log(rows, "lag_1")
    market = _log(rows, "market_lag_1")
    x = {
        "level": level,
        "month_of_year": rows["month_of_year"].to_numpy(float),
        "season_sin": rows["season_sin"].to_numpy(float),
        "season_cos": rows["season_cos"].to_numpy(float),
        "trend": rows["trend"].to_numpy(float),
        "rolling_3": _log(rows, "rolling_mean_3") - level,
    }
    for lag in ("lag_2", "lag_3", "lag_6", "lag_12", "lag_13"):
        x[f"d_{lag}"] = _log(rows, lag) - level
    x["last_year_change"] = _log(rows, "lag_12") - _log(rows, "lag_13")
    x["two_years_change"] = _log(rows, "lag_24") - _log(rows, "lag_25")
    x["yoy_1"] = level - _log(rows, "lag_13")
    x["yoy_2"] = _log(rows, "lag_2") - _log(rows, "lag_14")
    x["market_change"] = market - _log(rows, "market_lag_2")
    x["market_last_year_change"] = _log(rows, "market_lag_12") - _log(rows, "market_lag_13")
    x["market_yoy"] = market - _log(rows, "market_lag_13")
    x["share"] = level - market
    for name in CALENDAR_NAMES:
        x[name] = rows[name].to_numpy(float)
    return pd.DataFrame(x, index=rows.index)


#: Where :class:`GlobalGBMChange` measures the change from: last month, or the same month last
#: year (last month where the segment is younger than a year).
ANCHORS = ("last_month", "last_year")


class GlobalGBMChange(DemandCandidate):
    """One LightGBM model over all segments on the log change from an anchor month
    (``log1p(sales) - log1p(anchor)``, :data:`ANCHORS`) with an L1 objective (the median
    change: the MAE-optimal point), from :func:`change_features`. The defaults were chosen on
    Norway by-make with the 12 months before the benchmark's test year as validation
    (``benchmarks/demand_accuracy.py``), never on the test months."""

    algorithm = "lightgbm_change"
    features = [*FEATURES, *EXTRA_LAG_NAMES, *CALENDAR_NAMES, *MARKET_NAMES]
    #: boosting rounds when not given (each subclass's own validation choice)
    ROUNDS = 300
    #: weight of the market forecast in each month's total when not given (:func:`reconcile`;
    #: 0: the predictions are not scaled)
    MARKET_WEIGHT = 0.0

    def __init__(
        self,
        seed: int = 7,
        *,
        anchor: str = "last_year",
        rounds: int | None = None,
        learning_rate: float = 0.03,
        num_leaves: int = 31,
        min_data_in_leaf: int = 20,
        market_weight: float | None = None,
    ) -> None:
        if anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {ANCHORS}")
        weight = self.MARKET_WEIGHT if market_weight is None else market_weight
        if not 0.0 <= weight <= 1.0:
            raise ValueError("market_weight must be within [0, 1]")
        self.seed = seed
        self.anchor = anchor
        self.market_weight = weight
        #: the market growth's persistence fitted on the training rows (:func:`fit_persistence`;
        #: None: not fitted, or too few months, and the predictions are not scaled)
        self.persistence: float | None = None
        self.params = {
            "objective": "l1",
            "learning_rate": learning_rate,
            "num_leaves": num_leaves,
            "min_data_in_leaf": min_data_in_leaf,
            "bagging_fraction": 0.9,
            "bagging_freq": 1,
            "feature_fraction": 0.9,
            "seed": seed,
            "num_threads": 1,
            "deterministic": True,
            "verbose": -1,
        }
        self.rounds = self.ROUNDS if rounds is None else rounds
        self.model: lgb.Booster | None = None

    def _anchor(self, rows: pd.DataFrame) -> np.ndarray:
        """The anchor month's sales: last month, or the same month last year where known."""
        last_month = rows["lag_1"].to_numpy(float)
        if self.anchor == "last_month":
            return last_month
        last_year = rows["lag_12"].to_numpy(float)
        return np.where(np.isnan(last_year), last_month, last_year)

    def _target(self, rows: pd.DataFrame) -> np.ndarray:
        """What the booster learns: the log change from the anchor."""
        return _log(rows, "sales") - np.log1p(self._anchor(rows).clip(min=0))

    def _from_change(self, rows: pd.DataFrame, change: np.ndarray) -> np.ndarray:
        return np.expm1(np.log1p(self._anchor(rows).clip(min=0)) + change)

    def _inputs(self, rows: pd.DataFrame) -> pd.DataFrame:
        """:func:`change_features` as the booster was trained on them (an artifact trained
        before a column was added keeps predicting from its own columns)."""
        x = change_features(rows)
        names = self.model.feature_name() if self.model is not None else list(x.columns)
        return x[names]

    def fit(self, train: pd.DataFrame) -> GlobalGBMChange:
        rows = train[train["lag_1"].notna()]
        data = lgb.Dataset(change_features(rows), self._target(rows))
        self.model = lgb.train(self.params, data, num_boost_round=self.rounds)
        self.persistence = fit_persistence(train) if self.market_weight > 0 else None
        self._seen(train)
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """The booster's predictions; with a market weight and a fitted persistence, each
        month's predictions of a market are scaled toward the market forecast
        (:func:`reconcile`), so ``rows`` should hold every segment of the months predicted."""
        if self.model is None:
            raise RuntimeError(f"{type(self).__name__}.predict before fit")
        change = self.model.predict(self._inputs(rows))
        predicted = np.clip(self._from_change(rows, change), 0, None)
        # an artifact pickled before the market weight existed has neither attribute
        weight = getattr(self, "market_weight", 0.0)
        persistence = getattr(self, "persistence", None)
        if weight > 0 and persistence is not None:
            predicted = reconcile(rows, predicted, market_forecast(rows, persistence), weight)
        return predicted


def year_scale(rows: pd.DataFrame) -> np.ndarray:
    """A segment's recent level: the mean of its known months among the last twelve
    (``lag_1`` ... ``lag_12``), at least 1."""
    lags = rows[[f"lag_{k}" for k in range(1, 13)]].to_numpy(float)
    known = ~np.isnan(lags)
    total = np.where(known, lags, 0.0).sum(axis=1)
    mean = total / np.maximum(known.sum(axis=1), 1)
    return np.maximum(mean, 1.0)


class GlobalGBMRatio(GlobalGBMChange):
    """:class:`GlobalGBMChange`'s model and inputs on another target: the change from the anchor
    month in units of the segment's recent level (``(sales - anchor) / year_scale``), with an L1
    objective. Unlike the log change, an error of a unit costs the same in every segment of one
    size, so the median it learns is closer to what minimizes the MAE of big segments; the
    level itself is not a weight (that was worse on validation). Its defaults (150 rounds of 31
    leaves) were chosen on the validation year of ``benchmarks/demand_accuracy.py``."""

    algorithm = "lightgbm_ratio"
    ROUNDS = 150

    def _target(self, rows: pd.DataFrame) -> np.ndarray:
        """The change from the anchor in units of the segment's 12-month level."""
        return (rows["sales"].to_numpy(float) - self._anchor(rows)) / year_scale(rows)

    def _from_change(self, rows: pd.DataFrame, change: np.ndarray) -> np.ndarray:
        return self._anchor(rows) + year_scale(rows) * change


#: Fewer market-months than this on the training rows: no persistence is fitted and
#: :class:`GlobalGBMRatioMarket` predicts as :class:`GlobalGBMRatio`.
MIN_MARKET_MONTHS = 12


def _working_days(index: np.ndarray, before: int) -> np.ndarray:
    """Working days of the month ``before`` months before each month index (year * 12 +
    month - 1)."""
    out = np.empty(len(index))
    for j, i in enumerate(np.asarray(index, dtype=int) - before):
        out[j] = working_days(int(i) // 12, int(i) % 12 + 1)
    return out


def market_growth(rows: pd.DataFrame) -> np.ndarray:
    """Last month's year-over-year log growth of the row's market per working day:
    ``log(market_lag_1 / wd(M-1)) - log(market_lag_13 / wd(M-13))`` for a row of month M
    (working days from :mod:`ml.demand.workdays`); NaN where unknown."""
    index = _month_index(rows["month"])
    with np.errstate(divide="ignore", invalid="ignore"):
        last = np.log(rows["market_lag_1"].to_numpy(float) / _working_days(index, 1))
        year_before = np.log(rows["market_lag_13"].to_numpy(float) / _working_days(index, 13))
        growth = last - year_before
    return np.where(np.isfinite(growth), growth, np.nan)


def market_forecast(rows: pd.DataFrame, persistence: float) -> np.ndarray:
    """The market's total of the row's month: the same month last year per working day, times
    this month's working days, times ``exp(persistence x`` :func:`market_growth` ``)``; NaN
    where unknown."""
    index = _month_index(rows["month"])
    with np.errstate(divide="ignore", invalid="ignore"):
        per_day = rows["market_lag_12"].to_numpy(float) / _working_days(index, 12)
        return per_day * _working_days(index, 0) * np.exp(persistence * market_growth(rows))


def fit_persistence(train: pd.DataFrame) -> float | None:
    """How much of last month's :func:`market_growth` carries into this month's, fitted on the
    training rows' market totals (their ``market_lag_k`` columns, summed before any capping):
    the weight ``w`` in [0, 1] minimizing the mean absolute error of ``growth(M) = w x
    market_growth(M)`` over the (market, month) pairs where both are known (a weighted median).
    None with fewer than :data:`MIN_MARKET_MONTHS` pairs."""
    if train.empty:
        return None
    markets = np.array([market_of(str(k)) for k in train["series_key"]])
    index = _month_index(train["month"])
    totals: dict[tuple[str, int], float] = {}
    for k in MARKET_LAGS:
        values = train[f"market_lag_{k}"].to_numpy(float)
        for market, i, value in zip(markets, index - k, values, strict=True):
            if not np.isnan(value):
                totals[(market, int(i))] = float(value)
    frame = pd.DataFrame({"market": markets, "index": index, "growth": market_growth(train),
                          "last_year": train["market_lag_12"].to_numpy(float)})  # fmt: skip
    frame = frame.drop_duplicates(["market", "index"])
    actual = np.array([totals.get((m, int(i)), np.nan) for m, i in
                       zip(frame["market"], frame["index"], strict=True)])  # fmt: skip
    index = frame["index"].to_numpy(int)
    with np.errstate(divide="ignore", invalid="ignore"):
        target = np.log(actual / _working_days(index, 0)) - np.log(
            frame["last_year"].to_numpy(float) / _working_days(index, 12)
        )
    growth = frame["growth"].to_numpy(float)
    usable = np.isfinite(target) & np.isfinite(growth) & (growth != 0)
    if usable.sum() < MIN_MARKET_MONTHS:
        return None
    ratio, weight = target[usable] / growth[usable], np.abs(growth[usable])
    order = np.argsort(ratio)
    cumulative = np.cumsum(weight[order])
    median = ratio[order][np.searchsorted(cumulative, cumulative[-1] / 2)]
    return float(np.clip(median, 0.0, 1.0))


def reconcile(rows: pd.DataFrame, predicted: np.ndarray, forecast: np.ndarray,
              weight: float) -> np.ndarray:  # fmt: skip
    """Top-down reconciliation: the predictions of every (market, month) of ``rows`` scaled by
    ``(forecast / their sum) ** weight``, so their total moves to the geometric mean of their
    own sum and the market forecast with weights ``1 - weight`` and ``weight``. ``forecast``
    is each row's market forecast (:func:`market_forecast`: the same for the rows of a market's
    month). Months whose forecast is unknown or whose predictions sum to 0 are left as they
    are."""
    if len(predicted) == 0:
        return predicted
    markets, _ = pd.factorize(np.array([market_of(str(k)) for k in rows["series_key"]]))
    months = _month_index(rows["month"])
    _, group = np.unique(markets * (months.max() + 1) + months, return_inverse=True)
    total = np.bincount(group, weights=predicted)[group]
    scale = np.ones(len(predicted))
    known = np.isfinite(forecast) & (forecast > 0) & (total > 0)
    scale[known] = (forecast[known] / total[known]) ** weight
    return predicted * scale


class GlobalGBMRatioMarket(GlobalGBMRatio):
    """:class:`GlobalGBMRatio` reconciled top-down with a forecast of its market's total: most of
    what the segment model misses are market-wide month shocks, so each month's predictions of
    a market are scaled toward :func:`market_forecast` (same month last year per working day x
    this month's working days x the persistence of last month's year-over-year growth, fitted
    on the training rows by :func:`fit_persistence`) with :data:`MARKET_WEIGHT` (chosen on the
    validation year of ``benchmarks/demand_accuracy.py``, never on the test months)."""

    algorithm = "lightgbm_ratio_market"
    MARKET_WEIGHT = 0.75


class LastMonth(DemandCandidate):
    """Persistence: last month's sales (a member of :class:`ValidatedEnsemble`)."""

    algorithm = "last_month"
    features = ["lag_1"]

    def fit(self, train: pd.DataFrame) -> LastMonth:
        self._seen(train)
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return rows["lag_1"].fillna(0).clip(lower=0).to_numpy(float)


#: Months at the end of the training part on which :class:`ValidatedEnsemble` chooses its
#: weights (its members fitted on the months before).
ENSEMBLE_HOLDOUT = 12


def _default_members() -> list[DemandCandidate]:
    return [GlobalGBMChange(), GlobalGBMRatio(), SeasonalNaive(), LastMonth()]


class ValidatedEnsemble(DemandCandidate):
    """A weighted mean of member candidates whose weights are chosen on the training part's
    own last :data:`ENSEMBLE_HOLDOUT` months: the members are fitted on the months before,
    every weight vector of the simplex grid (steps of ``step``) is scored by MAE on those
    months, the best one (the first on a tie) is kept, and the members are fitted again on
    every training month. With fewer than ``2 x holdout`` training months the weights are
    equal. The test window is never seen while choosing."""

    algorithm = "ensemble"

    def __init__(
        self,
        members: Callable[[], list[DemandCandidate]] = _default_members,
        *,
        holdout: int = ENSEMBLE_HOLDOUT,
        step: float = 0.1,
    ) -> None:
        self.make_members = members
        self.holdout = holdout
        self.step = step
        self.members: list[DemandCandidate] = []
        self.weights = np.zeros(0)
        #: holdout MAE of the chosen weights and of each member alone (None: not validated)
        self.validation: dict[str, float] | None = None

    @property
    def features(self) -> list[str]:  # type: ignore[override]
        names: list[str] = []
        for member in self.members or self.make_members():
            names += [f for f in member.features if f not in names]
        return names

    def _grid(self, n: int) -> np.ndarray:
        steps = round(1 / self.step)
        points = [w for w in itertools.product(range(steps + 1), repeat=n) if sum(w) == steps]
        return np.array(points, dtype=float) / steps

    def fit(self, train: pd.DataFrame) -> ValidatedEnsemble:
        months = sorted(train["month"].unique())
        n = len(self.make_members())
        self.weights = np.full(n, 1.0 / n)
        self.validation = None
        if len(months) >= 2 * self.holdout:
            cut = months[-self.holdout]
            hold = train[(train["month"] >= cut) & train["lag_1"].notna()]
            inner = [m.fit(train[train["month"] < cut]) for m in self.make_members()]
            predicted = np.column_stack([m.predict(hold) for m in inner])
            y = hold["sales"].to_numpy(float)
            grid = self._grid(n)
            maes = np.abs(predicted @ grid.T - y[:, None]).mean(axis=0)
            best = int(np.argmin(maes))
            self.weights = grid[best]
            self.validation = {"ensemble": float(maes[best])}
            for member, column in zip(inner, predicted.T, strict=True):
                self.validation[member.algorithm] = float(np.abs(column - y).mean())
        self.members = [m.fit(train) for m in self.make_members()]
        self._seen(train)
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        if not self.members:
            raise RuntimeError("ValidatedEnsemble.predict before fit")
        used = [(w, m) for w, m in zip(self.weights, self.members, strict=True) if w > 0]
        return np.clip(sum(w * m.predict(rows) for w, m in used), 0, None)


class OnlineReplay(DemandCandidate):
    """The streams' online River forecaster, replayed month by month over the training part;
    on the test window it keeps predicting then learning (progressive validation), so it is
    scored one month ahead on the same rows as the batch candidates."""

    algorithm = "river_online"
    features = list(FEATURE_NAMES)

    def __init__(self) -> None:
        self.model = OnlineDemandForecaster()
        #: one-step predictions made while fitting, by (series_key, month)
        self.fitted: dict = {}

    def fit(self, train: pd.DataFrame) -> OnlineReplay:
        self.model = OnlineDemandForecaster()
        self.fitted = _replay(self.model, train)
        self._seen(train)
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """Rows after what the model has seen are replayed on a copy; rows it learned from
        during ``fit`` get the prediction it made then (before learning them)."""
        model = copy.deepcopy(self.model)
        fitted = getattr(self, "fitted", {})
        keys = list(zip(rows["series_key"], rows["month"], strict=True))
        predicted = _replay(model, rows[[key not in fitted for key in keys]])
        return np.array([fitted.get(key, predicted.get(key)) for key in keys], dtype=float)

    def forecast(self, panel: pd.DataFrame, horizon: int) -> dict[str, np.ndarray]:
        """Catch a copy of the model up on the panel's months it has not seen (predict, then
        learn), then use the online forecaster's own recursive forecast per segment."""
        model = copy.deepcopy(self.model)
        seen = {k: model.last_month(tuple(k.split("|"))) for k in panel["series_key"].unique()}
        unseen = [
            seen[k] is None or m.date() > seen[k]
            for k, m in zip(panel["series_key"], panel["month"], strict=True)
        ]
        _replay(model, panel[unseen])
        return {
            key: np.array([p.value for p in model.forecast(tuple(key.split("|")), horizon).points])
            for key in sorted(seen)
        }


def _replay(model: OnlineDemandForecaster, rows: pd.DataFrame) -> dict:
    """Feed rows month by month (predict, then learn); return the predictions by row key."""
    out = {}
    for month, part in rows.sort_values(["month", "series_key"]).groupby("month", sort=True):
        day = month.date()
        for row in part.itertuples(index=False):
            segment = tuple(row.series_key.split("|"))
            if model.last_month(segment) is not None:
                model.fill_gaps(segment, day)
            result = model.observe_month(
                segment,
                day,
                float(row.sales),
                purchases=float(row.purchases),
                sale_price=_price(row.sale_price),
                purchase_price=_price(row.purchase_price),
            )
            out[(row.series_key, month)] = result.predicted
    return out
