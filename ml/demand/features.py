"""The demand features: the one definition behind the online learner, the batch candidates,
replay and recursive forecasting.

A segment's row for month M is computed from its months *before* M only (no leakage):

* ``month_of_year``, ``year``; ``season_sin`` / ``season_cos``: ``sin/cos(2 pi month / 12)``;
* ``trend``: months since the segment's first month;
* ``lag_k``: sales ``k`` months before M; ``rolling_mean_3``: mean of the last (up to) 3 months;
* ``purchases_lag_1``: purchases of the previous month;
* ``margin_lag_1``: average sale price - average purchase price of the previous month;
* ``has_lag_3`` / ``has_lag_12``: whether those lags exist.

The batch models also read :data:`EXTRA_LAG_NAMES` (``lag_2`` ... ``lag_14``, ``lag_24``,
``lag_25``: NaN when the segment is younger), given by :func:`extra_lags` and
``SeriesWindow.row(month, extra=True)``, and the month's calendar (:data:`CALENDAR_NAMES`, working
days from :mod:`ml.demand.workdays`) with them; they are not the online learner's inputs, so
:data:`FEATURE_NAMES` stays its row.

:func:`feature_row` leaves what is unknown as NaN (the batch models take NaN as missing).
:func:`fill_missing` is the online learner's view of the same row: a missing lag is the latest
known month (0 with no history), an unknown purchase count, rolling mean or margin is 0, so its
inputs are always finite. :class:`SeriesWindow` walks a segment forward month by month (actual
months, or its own predictions when forecasting recursively: purchases and prices are then held
at their last known values).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from typing import Any

from ml.demand.workdays import CALENDAR_NAMES, calendar_features

__all__ = [
    "FEATURE_NAMES",
    "EXTRA_LAGS",
    "EXTRA_LAG_NAMES",
    "CALENDAR_NAMES",
    "LAG_FLAGS",
    "SeriesWindow",
    "extra_lags",
    "demand_features",
    "feature_row",
    "fill_missing",
    "series_features",
]

#: Every demand feature, in this order.
FEATURE_NAMES: tuple[str, ...] = (
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
    "has_lag_3",
    "has_lag_12",
)
#: The flags saying whether a lag is known (redundant with NaN lags for the batch models).
LAG_FLAGS: tuple[str, ...] = ("has_lag_3", "has_lag_12")
#: Further lags (months back) the batch models read, beyond :data:`FEATURE_NAMES`.
EXTRA_LAGS: tuple[int, ...] = (2, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 24, 25)
EXTRA_LAG_NAMES: tuple[str, ...] = tuple(f"lag_{k}" for k in EXTRA_LAGS)
#: Months of history a row looks at (lag 12 plus the online learner's seasonal base).
LOOKBACK = 25

NAN = float("nan")


def _known(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def feature_row(
    sales: Sequence[float],
    month: date,
    *,
    t_index: int,
    purchases: Sequence[float] = (),
    sale_price: float | None = None,
    purchase_price: float | None = None,
) -> dict[str, float]:
    """The features (order of :data:`FEATURE_NAMES`) to predict the sales of ``month``; NaN
    where unknown.

    ``sales``: monthly sales of consecutive months before ``month``, oldest first;
    ``purchases``: aligned with its end (``purchases[-1]`` is the previous month);
    ``sale_price`` / ``purchase_price``: the previous month's average prices (None or NaN when
    unknown); ``t_index``: months since the segment's first month. ``month`` is anything with
    ``.month`` and ``.year`` (a date or a pandas Timestamp).
    """
    n = len(sales)
    recent = [float(v) for v in sales[-3:]]
    angle = 2.0 * math.pi * month.month / 12.0
    margin = NAN
    if _known(sale_price) and _known(purchase_price):
        margin = float(sale_price) - float(purchase_price)  # type: ignore[arg-type]
    return {
        "month_of_year": float(month.month),
        "year": float(month.year),
        "season_sin": math.sin(angle),
        "season_cos": math.cos(angle),
        "trend": float(t_index),
        "lag_1": float(sales[-1]) if n else NAN,
        "lag_3": float(sales[-3]) if n >= 3 else NAN,
        "lag_12": float(sales[-12]) if n >= 12 else NAN,
        "rolling_mean_3": sum(recent) / len(recent) if recent else NAN,
        "purchases_lag_1": float(purchases[-1]) if purchases else NAN,
        "margin_lag_1": margin,
        "has_lag_3": 1.0 if n >= 3 else 0.0,
        "has_lag_12": 1.0 if n >= 12 else 0.0,
    }


def extra_lags(sales: Sequence[float]) -> dict[str, float]:
    """:data:`EXTRA_LAG_NAMES` from the sales of consecutive months before a month (NaN where
    the history is shorter)."""
    n = len(sales)
    return {f"lag_{k}": float(sales[-k]) if n >= k else NAN for k in EXTRA_LAGS}


def fill_missing(row: dict[str, float]) -> dict[str, float]:
    """The online learner's row: missing lags are the latest month (0 with no history), an
    unknown purchase count, rolling mean or margin is 0."""
    out = dict(row)
    latest = row["lag_1"] if not math.isnan(row["lag_1"]) else 0.0
    out["lag_1"] = latest
    for name in ("lag_3", "lag_12"):
        if math.isnan(row[name]):
            out[name] = latest
    for name in ("rolling_mean_3", "purchases_lag_1", "margin_lag_1"):
        if math.isnan(row[name]):
            out[name] = 0.0
    return out


def demand_features(sales: Sequence[float], month: date, **context: Any) -> dict[str, float]:
    """:func:`feature_row` (same arguments) as the online learner sees it
    (:func:`fill_missing`): every value finite."""
    return fill_missing(feature_row(sales, month, **context))


def series_features(
    months: Sequence[date],
    sales: Sequence[float],
    purchases: Sequence[float],
    sale_prices: Sequence[float | None],
    purchase_prices: Sequence[float | None],
    *,
    extra: bool = False,
) -> list[dict[str, float]]:
    """:func:`feature_row` of every month of one segment (consecutive months from its first,
    the four sequences aligned with ``months``), with :func:`extra_lags` and the month's
    :func:`~ml.demand.workdays.calendar_features` when ``extra``."""
    out = []
    for i, month in enumerate(months):
        lo = max(0, i - LOOKBACK)
        row = feature_row(
            sales[lo:i],
            month,
            t_index=i,
            purchases=purchases[lo:i],
            sale_price=sale_prices[i - 1] if i else None,
            purchase_price=purchase_prices[i - 1] if i else None,
        )
        if extra:
            row.update(extra_lags(sales[lo:i]))
            row.update(calendar_features(month))
        out.append(row)
    return out


class SeriesWindow:
    """A segment's recent months, walked forward one month at a time: :meth:`row` is the next
    month's :func:`feature_row`, :meth:`push` appends that month's sales (an actual, or a
    prediction when forecasting recursively; purchases and prices are held at their last
    known values unless given)."""

    __slots__ = ("sales", "purchases", "sale_price", "purchase_price", "t_index", "size")

    def __init__(
        self,
        sales: Sequence[float],
        purchases: Sequence[float],
        *,
        t_index: int,
        sale_price: float | None = None,
        purchase_price: float | None = None,
        size: int = LOOKBACK,
    ) -> None:
        self.size = max(size, LOOKBACK)
        self.sales = [float(v) for v in sales][-self.size :]
        self.purchases = [float(v) for v in purchases][-self.size :]
        self.t_index = t_index
        self.sale_price, self.purchase_price = sale_price, purchase_price

    def row(self, month: date, *, extra: bool = False) -> dict[str, float]:
        """The next month's :func:`feature_row` (with :func:`extra_lags` and
        :func:`~ml.demand.workdays.calendar_features` when ``extra``)."""
        row = feature_row(
            self.sales,
            month,
            t_index=self.t_index,
            purchases=self.purchases,
            sale_price=self.sale_price,
            purchase_price=self.purchase_price,
        )
        if extra:
            row.update(extra_lags(self.sales))
            row.update(calendar_features(month))
        return row

    def push(self, sales: float, purchases: float | None = None) -> None:
        if purchases is None:
            purchases = self.purchases[-1] if self.purchases else 0.0
        self.sales = [*self.sales, float(sales)][-self.size :]
        self.purchases = [*self.purchases, float(purchases)][-self.size :]
        self.t_index += 1
