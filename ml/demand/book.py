"""A version's demand forecasts for every segment, ready to answer: :class:`ForecastBook`.

Built by :func:`ml.demand.forecast.build_book` (in the API's book worker process); this module
holds only what answering needs (numpy, no pandas, no model code), so the serving process does
not import the candidates' libraries to unpickle a book. A prediction is a lookup:
``expm1(log1p(value) -/+ half)`` with ``half = widths[h - 1, level] * sigma``, the lower end
clipped at 0 and the upper end at ``max(value, cap x the segment's largest month)``.

A book never changes once built, so each answer is kept (at most :data:`MEMO_SIZE` of them,
by segment, horizon and confidence): a repeated question costs a dict lookup instead of ~20
small numpy operations (~90 us per request on the serving loop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from ml.demand.segments import ForecastPoint, parent_levels
from ml.periods import add_months

__all__ = [
    "BOOK_LEVELS",
    "INTERVAL_CAP",
    "LEVELS",
    "ForecastBook",
    "Prediction",
    "SegmentForecast",
    "UnknownSegmentError",
    "normal_widths",
]

#: Parent levels tried in order for a segment the book does not hold (of
#: :func:`~ml.demand.segments.parent_levels`). A brand never seen is an unknown segment, not a
#: vehicle-type average: a typo in a brand must not get a confident-looking forecast.
BOOK_LEVELS: tuple[str, ...] = ("brand_model", "brand")
#: Confidence levels tabulated (0.50 .. 0.99); a request is rounded up to the next one.
LEVELS: tuple[float, ...] = tuple(round(0.5 + i / 100, 2) for i in range(50))
#: The upper bound never exceeds ``max(value, INTERVAL_CAP x the segment's largest month)``.
INTERVAL_CAP = 1.5
#: Answers a book keeps (emptied when full: segments x horizons x levels asked is small).
MEMO_SIZE = 4096


class UnknownSegmentError(KeyError):
    """Neither the segment nor any of its parents is covered by the model."""


@dataclass(frozen=True, slots=True)
class Prediction:
    segment: str
    points: list[ForecastPoint]
    fallback_level: str | None


@dataclass(frozen=True, slots=True)
class SegmentForecast:
    """One segment: point forecasts by step (1-based), log1p error scale and its history."""

    key: str
    values: np.ndarray
    sigma: float
    history: tuple[tuple[date, int], ...]

    @property
    def largest(self) -> float:
        """The largest observed month (at least 1)."""
        return max([1.0, *(float(v) for _, v in self.history)])


@dataclass(frozen=True)
class ForecastBook:
    """Every covered segment's forecast from one model version."""

    version: str
    first_month: date | None
    horizon: int
    segments: dict[str, SegmentForecast]
    built_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: half-width in sigmas by (horizon - 1, index in :data:`LEVELS`); None: the normal one
    widths: np.ndarray | None = None
    #: ``conformal`` (held-out errors of the version) or ``normal`` (in-sample fallback)
    method: str = "normal"
    #: scores behind the conformal widths, per horizon (1-based index = horizon)
    calibration_scores: tuple[int, ...] = ()
    #: upper bounds never exceed ``max(value, cap x the segment's largest month)``; None: no cap
    cap: float | None = INTERVAL_CAP

    def __post_init__(self) -> None:
        # computed once, not for every prediction
        months: tuple[date, ...] = ()
        if self.first_month is not None:
            months = tuple(add_months(self.first_month, i).date() for i in range(self.horizon))
        object.__setattr__(self, "_months", months)
        object.__setattr__(self, "_memo", {})
        if self.widths is None:
            object.__setattr__(self, "widths", normal_widths(self.horizon))

    def months(self, horizon: int) -> list[date]:
        """The first ``horizon`` forecast months (at most the book's horizon)."""
        return list(self._months[:horizon])  # type: ignore[attr-defined]

    def resolve(self, parts: tuple[str, ...]) -> tuple[list[SegmentForecast], str | None, str]:
        """The segments that answer for ``parts`` (one, or a parent's children) and the level."""
        key = "|".join(parts)
        if key in self.segments:
            return [self.segments[key]], None, key
        for level, parent in parent_levels(tuple(parts)):
            if level not in BOOK_LEVELS:
                continue
            prefix = "|".join(parent) + "|"
            children = [s for k, s in self.segments.items() if k.startswith(prefix)]
            if children:
                return children, level, "|".join(parent)
        raise UnknownSegmentError(key)

    def predict(self, parts: tuple[str, ...], horizon: int, confidence: float) -> Prediction:
        """``horizon`` monthly points for a segment at ``confidence`` (0 < c < 1). The answer
        is shared between callers: never change it."""
        memo: dict[tuple[tuple[str, ...], int, float], Prediction] = self._memo  # type: ignore[attr-defined]
        key = (parts, horizon, confidence)
        found = memo.get(key)
        if found is not None:
            return found
        prediction = self._predict(parts, horizon, confidence)
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[key] = prediction
        return prediction

    def _predict(self, parts: tuple[str, ...], horizon: int, confidence: float) -> Prediction:
        if not 1 <= horizon <= self.horizon:
            raise ValueError(f"horizon must be between 1 and {self.horizon}")
        if not 0.0 < confidence < 1.0:
            raise ValueError("confidence must be in (0, 1)")
        sources, level, name = self.resolve(parts)
        width = self.widths[:horizon, _level_index(confidence)]  # type: ignore[index]
        values = np.zeros(horizon)
        lower = np.zeros(horizon)
        upper = np.zeros(horizon)
        for source in sources:
            v = source.values[:horizon]
            log_v = np.log1p(v)
            half = width * source.sigma
            values += v
            lower += np.clip(np.expm1(log_v - half), 0.0, v)
            top = np.maximum(v, self.cap * source.largest) if self.cap else np.inf
            upper += np.clip(np.expm1(log_v + half), v, top)
        n = len(sources)
        points = [
            ForecastPoint(month, float(values[i] / n), float(lower[i] / n), float(upper[i] / n))
            for i, month in enumerate(self.months(horizon))
        ]
        return Prediction(name, points, level)

    def history(self, key: str) -> tuple[tuple[date, int], ...]:
        source = self.segments.get(key)
        return source.history if source else ()


@lru_cache(maxsize=256)
def _level_index(confidence: float) -> int:
    """Index of the smallest tabulated level >= ``confidence`` (clients ask a few levels)."""
    step = math.ceil(round((confidence - 0.5) * 100, 9))
    return min(max(step, 0), len(LEVELS) - 1)


def normal_widths(horizon: int) -> np.ndarray:
    """The fallback table: ``z(level) * sqrt(h)`` by (h - 1, level)."""
    z = np.array([NormalDist().inv_cdf(0.5 + c / 2.0) for c in LEVELS])
    return np.sqrt(np.arange(1, horizon + 1))[:, None] * z[None, :]
