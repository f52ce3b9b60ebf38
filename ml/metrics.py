"""Regression error metrics: incremental (``RunningMetrics``) and batch (``score``).

Conventions shared by both:

* MAPE is a 0-1 fraction (0.12 means 12 %). Points whose actual value is exactly 0 have no
  percentage error; they are left out of MAPE and counted in ``mape_excluded``. MAPE is None
  when every point was excluded.
* R² is ``1 - SSE / SST`` where SST is the sum of squared deviations of the actuals from their
  mean. It is None with fewer than 2 points or when the actuals are all equal (SST == 0).
* Every metric is None (``n`` is 0) before the first point.

Both are pure Python (no numpy) so ``RunningMetrics`` pickles to a handful of floats.

Recent performance: :class:`WindowedMetrics` keeps the same metrics over a sliding window of
event time (bounded memory: ``buckets`` sub-intervals of ``window / buckets`` seconds, each a
``RunningMetrics``; a point older than the window is dropped with its bucket). Running metrics
merge exactly (:meth:`RunningMetrics.merge`, :func:`merge_stats`): sums of absolute, squared and
percentage errors and counts add; the mean and sum of squared deviations of the actuals combine
with Chan's parallel formula, so MAE, RMSE, MAPE and R² of the union are those of one
``RunningMetrics`` that saw every point (no averages of averages). :meth:`RunningMetrics.stats`
is that state as plain, JSON-able data (what a stored score carries to be merged later).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = [
    "RunningMetrics",
    "WindowedMetrics",
    "merge_stats",
    "pooled_naive_mae",
    "score",
    "seasonal_naive_mae",
]

Number = float | int


class _SlotsState:
    """Pickles a ``__slots__`` class as the tuple of its slots (a handful of numbers)."""

    __slots__ = ()

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)  # type: ignore[attr-defined]

    def __setstate__(self, state: tuple) -> None:
        for name, value in zip(self.__slots__, state, strict=True):  # type: ignore[attr-defined]
            setattr(self, name, value)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _float_or_inf(value: float | int | None) -> float:
    return math.inf if value is None else float(value)


class RunningMetrics(_SlotsState):
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
        ape = abs(err / y_true) if y_true != 0.0 else math.inf
        if math.isfinite(ape):
            self._sum_ape += ape
        else:  # an actual of 0 (or so close to it that the ratio overflows) has no percentage
            self.mape_excluded += 1
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

    def merge(self, other: RunningMetrics) -> RunningMetrics:
        """Add every point ``other`` saw (exact: as if this one had seen them too); returns
        ``self``."""
        if other.n == 0:
            return self
        n = self.n + other.n
        delta = other._mean_y - self._mean_y
        self._m2_y += other._m2_y + delta * delta * self.n * other.n / n
        self._mean_y += delta * other.n / n
        self.n = n
        self.mape_excluded += other.mape_excluded
        self._sum_abs += other._sum_abs
        self._sum_sq += other._sum_sq
        self._sum_ape += other._sum_ape
        return self

    def copy(self) -> RunningMetrics:
        return RunningMetrics.from_stats(self.stats())

    def stats(self) -> dict[str, float | int]:
        """The sufficient statistics as plain JSON data (:meth:`from_stats` reads them back); a
        sum that overflowed is ``None`` (JSON has no infinity) and reads back as infinite."""
        return {
            "n": self.n,
            "mape_excluded": self.mape_excluded,
            "sum_abs": _finite_or_none(self._sum_abs),
            "sum_sq": _finite_or_none(self._sum_sq),
            "sum_ape": _finite_or_none(self._sum_ape),
            "mean_y": _finite_or_none(self._mean_y),
            "m2_y": _finite_or_none(self._m2_y),
        }

    @classmethod
    def from_stats(cls, stats: dict[str, float | int]) -> RunningMetrics:
        """The metrics whose :meth:`stats` are ``stats`` (ValueError when one is missing)."""
        metrics = cls()
        try:
            metrics.n = int(stats["n"])
            metrics.mape_excluded = int(stats["mape_excluded"])
            metrics._sum_abs = _float_or_inf(stats["sum_abs"])
            metrics._sum_sq = _float_or_inf(stats["sum_sq"])
            metrics._sum_ape = _float_or_inf(stats["sum_ape"])
            metrics._mean_y = _float_or_inf(stats["mean_y"])
            metrics._m2_y = _float_or_inf(stats["m2_y"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not running-metrics statistics: {stats!r}") from exc
        if metrics.n < 0 or metrics.mape_excluded < 0 or metrics.mape_excluded > metrics.n:
            raise ValueError(f"inconsistent running-metrics counts: {stats!r}")
        return metrics

    def __repr__(self) -> str:
        return f"RunningMetrics({self.get()})"


def merge_stats(parts: Iterable[dict[str, float | int]]) -> RunningMetrics:
    """One ``RunningMetrics`` of every point behind ``parts`` (:meth:`RunningMetrics.stats`
    of disjoint sets of points, e.g. one per partition)."""
    merged = RunningMetrics()
    for stats in parts:
        merged.merge(RunningMetrics.from_stats(stats))
    return merged


class WindowedMetrics(_SlotsState):
    """:class:`RunningMetrics` over the points of the last ``window`` seconds of event time.

    Time is cut into ``buckets`` sub-intervals per window (``bucket = window / buckets``
    seconds, aligned on multiples of it); a point goes to the bucket of its time ``at``. The
    window at time ``now`` (the latest time seen, or given) is the ``buckets`` most recent
    buckets up to ``now``'s: it spans between ``window - bucket`` and ``window`` seconds, so
    a point is forgotten at most ``window`` seconds after its time and, ``window`` seconds
    after a change, every point in the window comes after it. Memory: at most ``buckets``
    ``RunningMetrics``. Points must come in non-decreasing time up to a bucket (an older
    point joins its bucket while that is still in the window; one that left it is dropped and
    counted in ``dropped``).
    """

    __slots__ = ("window", "bucket", "buckets", "dropped", "_latest", "_parts")

    def __init__(self, window: float, buckets: int = 12) -> None:
        if not window > 0 or not math.isfinite(window):
            raise ValueError("window must be a positive number of seconds")
        if buckets < 1:
            raise ValueError("buckets must be >= 1")
        self.window = float(window)
        self.buckets = int(buckets)
        self.bucket = self.window / self.buckets
        self.dropped = 0
        self._latest: int | None = None
        #: bucket index -> metrics of its points, oldest first
        self._parts: dict[int, RunningMetrics] = {}

    def _index(self, at: float) -> int:
        return math.floor(at / self.bucket)

    def update(self, at: float, y_true: Number, y_pred: Number) -> WindowedMetrics:
        """Add one point of event time ``at`` (epoch seconds)."""
        index = self._index(at)
        if self._latest is None or index > self._latest:
            self._latest = index
            self._expire(index)
        elif index <= self._latest - self.buckets:
            self.dropped += 1
            return self
        part = self._parts.get(index)
        if part is None:
            part = self._parts[index] = RunningMetrics()
            if len(self._parts) > 1 and index < max(self._parts):
                self._parts = dict(sorted(self._parts.items()))
        part.update(y_true, y_pred)
        return self

    def advance(self, now: float) -> None:
        """Time moved to ``now`` without a point: forget the buckets that left the window."""
        index = self._index(now)
        if self._latest is None or index > self._latest:
            self._latest = index
            self._expire(index)

    def _expire(self, latest: int) -> None:
        first = latest - self.buckets + 1
        for index in [i for i in self._parts if i < first]:
            del self._parts[index]

    def metrics(self, now: float | None = None) -> RunningMetrics:
        """The merged metrics of the window ending at ``now`` (default: the latest time
        seen; an earlier ``now`` sees only the buckets still kept); a new object, the window
        is not changed."""
        latest = self._latest if now is None else self._index(now)
        merged = RunningMetrics()
        if latest is None:
            return merged
        first = latest - self.buckets + 1
        for index, part in self._parts.items():
            if first <= index <= latest:
                merged.merge(part)
        return merged

    @property
    def n(self) -> int:
        """Points in the window at the latest time seen."""
        return self.metrics().n

    def __repr__(self) -> str:
        return f"WindowedMetrics(window={self.window:g}s, {self.metrics().get()})"


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
