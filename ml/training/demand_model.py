"""Demand models for batch training: monthly panels, lag features, and the candidates.

The panel has one row per (segment, month) from the segment's first month to the last month of
the data, months without sales filled with 0. Features are computed from each segment's own
past only (no leakage): month_of_year, year, season_sin/cos, trend, lag_1, lag_3, lag_12,
rolling_mean_3, purchases_lag_1, margin_lag_1.

Candidates all predict one month ahead from actual lags, so they are scored on the same test
rows.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.features import FEATURE_NAMES
from ml.online import OnlineDemandForecaster

__all__ = [
    "FEATURES",
    "add_features",
    "DemandCandidate",
    "SeasonalNaive",
    "GlobalGBM",
    "OnlineReplay",
]

FEATURES = [
    "month_of_year",
    "year",
    "season_sin",
    "season_cos",
    "trend",
    "lag_1",
    "lag_3",
    "lag_12",
    "rolling_mean_3",
    "purchases_lag_1",
    "margin_lag_1",
]


def add_features(panel: pd.DataFrame) -> pd.DataFrame:
    """Panel (series_key, month, sales, purchases, sale_price, purchase_price) + features."""
    df = panel.sort_values(["series_key", "month"]).reset_index(drop=True)
    by = df.groupby("series_key", sort=False)
    df["month_of_year"] = df["month"].dt.month
    df["year"] = df["month"].dt.year
    df["season_sin"] = np.sin(2 * np.pi * df["month_of_year"] / 12)
    df["season_cos"] = np.cos(2 * np.pi * df["month_of_year"] / 12)
    df["trend"] = by.cumcount()
    df["lag_1"] = by["sales"].shift(1)
    df["lag_3"] = by["sales"].shift(3)
    df["lag_12"] = by["sales"].shift(12)
    df["rolling_mean_3"] = (
        df.groupby("series_key", sort=False)["lag_1"]
        .rolling(3, min_periods=1)
        .mean()
        .reset_index(level=0, drop=True)
    )
    df["purchases_lag_1"] = by["purchases"].shift(1)
    margin = df["sale_price"] - df["purchase_price"]
    df["margin_lag_1"] = margin.groupby(df["series_key"], sort=False).shift(1)
    return df


_ROW_COLUMNS = ["series_key", "month", *FEATURES]


class _SegmentState:
    """What ``add_features`` needs of a segment's past to build its next month's row."""

    __slots__ = ("key", "sales", "purchases", "margin")

    def __init__(self, key: str, sales: list[float], purchases: float, margin: float) -> None:
        self.key, self.sales, self.purchases, self.margin = key, sales, purchases, margin

    @classmethod
    def of(cls, part: pd.DataFrame) -> _SegmentState:
        part = part.sort_values("month")
        last = part.iloc[-1]
        margin = float(last["sale_price"]) - float(last["purchase_price"])
        sales = [float(v) for v in part["sales"]]
        return cls(str(last["series_key"]), sales, float(last["purchases"]), margin)

    def next_row(self, month: pd.Timestamp) -> list:
        s = self.sales
        n = len(s)
        return [
            self.key,
            month,
            month.month,
            month.year,
            np.sin(2 * np.pi * month.month / 12),
            np.cos(2 * np.pi * month.month / 12),
            n,
            s[-1],
            s[-3] if n >= 3 else np.nan,
            s[-12] if n >= 12 else np.nan,
            float(np.mean(s[-3:])),
            self.purchases,
            self.margin,
        ]


def _x(df: pd.DataFrame) -> pd.DataFrame:
    x = df[FEATURES].copy()
    for col in ("lag_1", "lag_3", "lag_12", "rolling_mean_3", "purchases_lag_1"):
        x[col] = np.log1p(x[col].clip(lower=0))
    return x.astype(float)


class DemandCandidate(ABC):
    """A fitted model that predicts next month's sales of a segment from its featured rows."""

    algorithm: str
    features: list[str] = FEATURES

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
        segments = [_SegmentState.of(part) for _, part in panel.groupby("series_key", sort=True)]
        month = panel["month"].max()
        out = np.zeros((len(segments), horizon))
        for step in range(horizon):
            month = month + pd.DateOffset(months=1)
            rows = pd.DataFrame([s.next_row(month) for s in segments], columns=_ROW_COLUMNS)
            predicted = np.clip(self.predict(rows), 0.0, None)
            for state, value in zip(segments, predicted, strict=True):
                state.sales.append(float(value))
            out[:, step] = predicted
        return {s.key: out[i] for i, s in enumerate(segments)}


class SeasonalNaive(DemandCandidate):
    """Same month last year; last month when a segment has less than a year of history."""

    algorithm = "seasonal_naive"
    features = ["lag_12", "lag_1"]

    def fit(self, train: pd.DataFrame) -> SeasonalNaive:
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
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("GlobalGBM.predict before fit")
        return np.clip(np.expm1(self.model.predict(_x(rows))), 0, None)


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
                sale_price=None if pd.isna(row.sale_price) else float(row.sale_price),
                purchase_price=None if pd.isna(row.purchase_price) else float(row.purchase_price),
            )
            out[(row.series_key, month)] = result.predicted
    return out
