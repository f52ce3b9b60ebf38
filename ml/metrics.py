"""Regression error metrics: incremental (``RunningMetrics``) and batch (``score``).

Conventions shared by both:

* MAPE is a 0-1 fraction (0.12 means 12 %). Points whose actual value is exactly 0 have no
  percentage error; they are left out of MAPE and counted in ``mape_excluded``. MAPE is None
  when every point was excluded.
* R² is ``1 - SSE / SST`` where SST is the sum of squared deviations of the actuals from their
  mean. It is None with fewer than 2 points or when the actuals are all equal (SST == 0).
* Every metric is None (``n`` is 0) before the first point.

Both are pure Python (no numpy) so ``RunningMetrics`` pickles to a handful of floats.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["RunningMetrics", "pooled_naive_mae", "score", "seasonal_naive_mae"]

Number = float | int


class RunningMetrics:
    """MAE, RMSE, MAPE and R² over a stream of ``(y_true, y_pred)`` pairs, O(1) per update.

    R² uses Welford's running mean / sum of squared deviations of ``y_true`` so it is exact and
    numerically stable without keeping the points.
    """

    __slots__ = ("n", "mape_excluded", "_sum_abs", "_sum_sq", "_sum_ape", "_mean_y", "_m2_y")

    def __init__(self) -> None:
        self.n = 0
        self.mape_excluded = 0
        self._sum_abs = 0.0
        self._sum_sq = 0.0
        self._sum_ape = 0.0
        self._mean_y = 0.0
        self._m2_y = 0.0

    def update(self, y_true: Number, y_pred: Number) -> RunningMetrics:
        """Add one point; returns ``self`` so calls can be chained."""
        y_true = float(y_true)
        err = y_true - float(y_pred)
        self.n += 1
        self._sum_abs += abs(err)
        self._sum_sq += err * err
        if y_true == 0.0:
            self.mape_excluded += 1
        else:
            self._sum_ape += abs(err / y_true)
        delta = y_true - self._mean_y
        self._mean_y += delta / self.n
        self._m2_y += delta * (y_true - self._mean_y)
        return self

    @property
    def mae(self) -> float | None:
        return self._sum_abs / self.n if self.n else None

    @property
    def rmse(self) -> float | None:
        return math.sqrt(self._sum_sq / self.n) if self.n else None

    @property
    def mape(self) -> float | None:
        used = self.n - self.mape_excluded
        return self._sum_ape / used if used else None

    @property
    def r2(self) -> float | None:
        if self.n < 2 or self._m2_y <= 0.0:
            return None
        return 1.0 - self._sum_sq / self._m2_y

    def get(self) -> dict[str, float | int | None]:
        """``{"n", "mae", "rmse", "mape", "r2", "mape_excluded"}``."""
        return {
            "n": self.n,
            "mae": self.mae,
            "rmse": self.rmse,
            "mape": self.mape,
            "r2": self.r2,
            "mape_excluded": self.mape_excluded,
        }

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def __repr__(self) -> str:
        return f"RunningMetrics({self.get()})"


def seasonal_naive_mae(y_train: Sequence[Number], season: int = 12) -> float | None:
    """In-sample MAE of the seasonal-naive forecast ``y[t - season]`` on ``y_train``.

    Falls back to lag 1 (the naive forecast) when ``y_train`` has no more than ``season``
    points; None when it has fewer than 2 points.
    """
    values = [float(v) for v in y_train]
    lag = season if len(values) > season else 1
    if len(values) <= lag:
        return None
    diffs = [abs(values[i] - values[i - lag]) for i in range(lag, len(values))]
    return sum(diffs) / len(diffs)


def pooled_naive_mae(series: Iterable[Sequence[Number]], season: int = 12) -> float | None:
    """In-sample seasonal-naive MAE over the differences of many series pooled together (each
    series with lag ``season``, or 1 when it is not longer than a season)."""
    total, count = 0.0, 0
    for y in series:
        values = [float(v) for v in y]
        lag = season if len(values) > season else 1
        for i in range(lag, len(values)):
            total += abs(values[i] - values[i - lag])
            count += 1
    return total / count if count and total > 0 else None


def score(
    y_true: Sequence[Number],
    y_pred: Sequence[Number],
    *,
    y_train: Sequence[Number] | None = None,
    season: int = 12,
    scale: float | None = None,
) -> dict[str, float | int | None]:
    """Batch metrics of ``y_pred`` against ``y_true`` (same length).

    Returns ``n``, ``mae``, ``rmse``, ``mape`` (fraction, zero actuals excluded and counted in
    ``mape_excluded``), ``r2`` (None below 2 points or with constant actuals), ``wape``
    (``sum|e| / sum|y|``, None when ``sum|y|`` is 0) and ``mase``: MAE divided by
    :func:`seasonal_naive_mae` of ``y_train`` with lag ``season`` (lag 1 when ``y_train`` is
    not longer than ``season``), or by ``scale`` when given (e.g. :func:`pooled_naive_mae` of
    many series). ``mase`` is None without either, when ``y_train`` is shorter than 2 points,
    or when the naive MAE is 0.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"length mismatch: {len(y_true)} actuals, {len(y_pred)} predictions")
    running = RunningMetrics()
    sum_abs_y = 0.0
    for actual, predicted in zip(y_true, y_pred, strict=True):
        running.update(actual, predicted)
        sum_abs_y += abs(float(actual))
    result = running.get()
    result["wape"] = running._sum_abs / sum_abs_y if sum_abs_y > 0 else None
    mase = None
    if scale is None and y_train is not None:
        scale = seasonal_naive_mae(y_train, season)
    if running.n:
        if scale:
            mase = running._sum_abs / running.n / scale
    result["mase"] = mase
    return result
