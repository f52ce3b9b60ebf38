"""The demand domain's batch trainer: monthly panel from observations, 80/20 split by month."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd

from ml.demand.candidates import (
    GlobalGBM,
    GlobalGBMChange,
    GlobalGBMRatio,
    GlobalGBMRatioMarket,
    OnlineReplay,
    SeasonalNaive,
    add_features,
)
from ml.metrics import pooled_naive_mae
from ml.registry.store import Store
from ml.training.base import DomainTrainer, TrainingSet, check_date_range
from ml.training.errors import TrainingDataError

__all__ = ["DemandTrainer", "demand_panel", "OUTLIER_IQR"]

#: Training targets above Q3 + OUTLIER_IQR x IQR of their segment are capped there (training
#: rows only; test rows are scored on what really happened).
OUTLIER_IQR = 3.0


def demand_panel(store: Store, start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """One row per segment and month (zeros where a known segment sold nothing)."""
    lo = datetime(start.year, start.month, 1, tzinfo=UTC) if start else None
    hi = datetime(end.year, end.month, end.day, tzinfo=UTC) if end else None
    rows = store.series.observations("demand", start=lo, end=hi)
    if not rows:
        return pd.DataFrame(
            columns=["series_key", "month", "sales", "purchases", "sale_price", "purchase_price"]
        )
    records = []
    for r in rows:
        f = r.fields
        records.append(
            {
                "series_key": r.series_key,
                "month": pd.Timestamp(r.period_start.replace(tzinfo=None)),
                "sales": f["sales"].count if "sales" in f else 0,
                "purchases": f["purchases"].count if "purchases" in f else 0,
                "sale_price": f["sale_price"].mean if "sale_price" in f else np.nan,
                "purchase_price": f["purchase_price"].mean if "purchase_price" in f else np.nan,
            }
        )
    df = pd.DataFrame.from_records(records)
    last = df["month"].max()
    filled = []
    for key, part in df.groupby("series_key", sort=True):
        months = pd.date_range(part["month"].min(), last, freq="MS")
        part = part.set_index("month").reindex(months)
        part.index.name = "month"
        part["series_key"] = key
        part[["sales", "purchases"]] = part[["sales", "purchases"]].fillna(0)
        filled.append(part.reset_index())
    return pd.concat(filled, ignore_index=True)


def _cap_outliers(train: pd.DataFrame) -> pd.DataFrame:
    q = train.groupby("series_key")["sales"].quantile([0.25, 0.75]).unstack()
    cap = (q[0.75] + OUTLIER_IQR * (q[0.75] - q[0.25])).clip(lower=1)
    train = train.copy()
    train["sales"] = np.minimum(train["sales"], train["series_key"].map(cap))
    return train


class DemandTrainer(DomainTrainer):
    metric = "mae"
    baseline = SeasonalNaive.algorithm

    def training_set(
        self,
        store: Store,
        start: date | None,
        end: date | None,
        min_periods: int,
        test_periods: int | None = None,
    ) -> TrainingSet:
        check_date_range(start, end)
        panel = demand_panel(store, start, end)
        if panel.empty:
            raise TrainingDataError("No sales observations in the requested date range")
        months = sorted(panel["month"].unique())
        if len(months) < min_periods:
            raise TrainingDataError(
                f"Insufficient training data. Minimum {min_periods} months of transaction "
                f"history required."
            )
        n_test = test_periods or max(1, round(len(months) * 0.2))
        cut = months[-n_test]
        featured = add_features(panel)
        train = _cap_outliers(featured[featured["month"] < cut])
        test = featured[(featured["month"] >= cut) & featured["lag_1"].notna()]
        scale = pooled_naive_mae(train.groupby("series_key")["sales"].apply(list).tolist())
        return TrainingSet(
            train=train,
            test=test,
            target="sales",
            scale=scale,
            train_periods=[pd.Timestamp(m).date() for m in months[:-n_test]],
            test_periods=[pd.Timestamp(m).date() for m in months[-n_test:]],
            segments=int(panel["series_key"].nunique()),
            info={"panel": panel},
        )

    def candidates(self) -> list:
        return [
            SeasonalNaive(),
            OnlineReplay(),
            GlobalGBM(),
            GlobalGBMChange(),
            GlobalGBMRatio(),
            GlobalGBMRatioMarket(),
        ]
