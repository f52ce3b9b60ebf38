"""Demand features for one segment and month, from the months before it.

``history`` holds the monthly sales counts of consecutive months *before* the target month,
oldest first; ``purchases`` (optional) is aligned with its end (``purchases[-1]`` is the
previous month). Missing lags are filled with the latest available value (0 with no history)
and flagged with ``has_lag_3`` / ``has_lag_12``, so the feature set is always the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

__all__ = ["FEATURE_NAMES", "demand_features"]

FEATURE_NAMES: tuple[str, ...] = (
    "month",
    "year",
    "season_sin",
    "season_cos",
    "trend",
    "lag_1",
    "lag_3",
    "rolling_mean_3",
    "lag_12",
    "has_lag_3",
    "has_lag_12",
    "purchases_lag_1",
    "margin_lag_1",
)


def demand_features(
    history: Sequence[float],
    month: date,
    *,
    t_index: int,
    purchases: Sequence[float] = (),
    sale_price: float | None = None,
    purchase_price: float | None = None,
) -> dict[str, float]:
    """Features (keys and order of :data:`FEATURE_NAMES`) to predict sales of ``month``.

    * ``season_sin`` / ``season_cos``: ``sin/cos(2 pi month / 12)``.
    * ``trend``: ``t_index``, months since the segment's first month.
    * ``lag_k``: sales ``k`` months before ``month`` (``history[-k]``), filled when missing.
    * ``rolling_mean_3``: mean of the last (up to) 3 months, 0 with no history.
    * ``purchases_lag_1``: purchases of the previous month (0 when unknown).
    * ``margin_lag_1``: ``sale_price - purchase_price`` (average prices of the previous month)
      when both are known, else 0.
    """
    latest = float(history[-1]) if history else 0.0
    n = len(history)
    recent = [float(v) for v in history[-3:]]
    angle = 2.0 * math.pi * month.month / 12.0
    margin = 0.0
    if sale_price is not None and purchase_price is not None:
        margin = float(sale_price) - float(purchase_price)
    return {
        "month": float(month.month),
        "year": float(month.year),
        "season_sin": math.sin(angle),
        "season_cos": math.cos(angle),
        "trend": float(t_index),
        "lag_1": latest,
        "lag_3": float(history[-3]) if n >= 3 else latest,
        "rolling_mean_3": sum(recent) / len(recent) if recent else 0.0,
        "lag_12": float(history[-12]) if n >= 12 else latest,
        "has_lag_3": 1.0 if n >= 3 else 0.0,
        "has_lag_12": 1.0 if n >= 12 else 0.0,
        "purchases_lag_1": float(purchases[-1]) if purchases else 0.0,
        "margin_lag_1": margin,
    }
