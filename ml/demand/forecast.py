"""Multi-month demand forecasts of one trained version for every segment, with intervals.

A :class:`ForecastBook` is built once per (version, data) snapshot: every segment's recursive
forecast up to ``horizon`` months after the last *complete* month of the panel, and the spread
of the version's one-step errors on the last 12 months (in log1p space, shrunk toward the pooled
spread for short series). A prediction is then a lookup, so the API answers in microseconds and
one response never mixes two versions.

Intervals: ``expm1(log1p(value) -/+ z * sigma * sqrt(step))``, the lower end clipped at 0, so
``0 <= lower <= value <= upper`` always holds. Cold or unknown segments fall back to the mean
per segment of their nearest parent level (``brand_model``, then ``brand``; within the market for
a segment with one) and say so; a brand the data has never seen (in that market) is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from ml.demand.candidates import add_features
from ml.demand.segments import ForecastPoint, parent_levels
from ml.demand.training import demand_panel

__all__ = [
    "BOOK_HORIZON",
    "BOOK_LEVELS",
    "ForecastBook",
    "Prediction",
    "SegmentForecast",
    "UnknownSegmentError",
    "build_book",
    "demand_book",
    "complete_months",
]

#: Parent levels tried in order for a segment the book does not hold (of
#: :func:`~ml.demand.segments.parent_levels`). A brand never seen is an unknown segment, not a
#: vehicle-type average: a typo in a brand must not get a confident-looking forecast.
BOOK_LEVELS: tuple[str, ...] = ("brand_model", "brand")
#: Months of one-step errors behind a segment's interval width.
RESIDUAL_MONTHS = 12
#: Pseudo-count pulling a short segment's error spread toward the pooled one.
SHRINK = 6.0


class UnknownSegmentError(KeyError):
    """Neither the segment nor any of its parents is covered by the model."""


@dataclass(frozen=True, slots=True)
class Prediction:
    segment: str
    points: list[ForecastPoint]
    fallback_level: str | None


@dataclass(frozen=True, slots=True)
class SegmentForecast:
    """One segment: point forecasts by step (1-based), log1p error spread and its history."""

    key: str
    values: np.ndarray
    sigma: float
    history: tuple[tuple[date, int], ...]


@dataclass(frozen=True)
class ForecastBook:
    """Every covered segment's forecast from one model version."""

    version: str
    first_month: date | None
    horizon: int
    segments: dict[str, SegmentForecast]
    built_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        # computed once: pandas date arithmetic costs ~0.3 ms, too much for every prediction
        months: tuple[date, ...] = ()
        if self.first_month is not None:
            start = pd.Timestamp(self.first_month)
            months = tuple((start + pd.DateOffset(months=i)).date() for i in range(self.horizon))
        object.__setattr__(self, "_months", months)

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
        """``horizon`` monthly points for a segment at ``confidence`` (0 < c < 1)."""
        if not 1 <= horizon <= self.horizon:
            raise ValueError(f"horizon must be between 1 and {self.horizon}")
        if not 0.0 < confidence < 1.0:
            raise ValueError("confidence must be in (0, 1)")
        sources, level, name = self.resolve(parts)
        z = _z(confidence)
        steps = np.sqrt(np.arange(1, horizon + 1))
        values = np.zeros(horizon)
        lower = np.zeros(horizon)
        upper = np.zeros(horizon)
        for source in sources:
            v = source.values[:horizon]
            log_v = np.log1p(v)
            half = z * source.sigma * steps
            values += v
            lower += np.clip(np.expm1(log_v - half), 0.0, v)
            upper += np.maximum(np.expm1(log_v + half), v)
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
def _z(confidence: float) -> float:
    """The normal quantile of a two-sided ``confidence`` interval (clients ask a few levels)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


#: Months every book forecasts: the longest horizon a prediction may ask for.
BOOK_HORIZON = 24


def demand_book(store: Any, model: Any, version: str) -> ForecastBook:
    """Forecast every segment stored in ``store`` with ``model`` (a fitted candidate of
    ``version``) from its complete months, :data:`BOOK_HORIZON` months ahead."""
    return build_book(model, demand_panel(store), version, horizon=BOOK_HORIZON)


def complete_months(panel: pd.DataFrame, today: date | None = None) -> pd.DataFrame:
    """The panel without the current calendar month (still counting) or any later one."""
    today = today or datetime.now(UTC).date()
    current = pd.Timestamp(today.year, today.month, 1)
    return panel[panel["month"] < current]


def build_book(model: Any, panel: pd.DataFrame, version: str, horizon: int = 24,
               today: date | None = None) -> ForecastBook:  # fmt: skip
    """Forecast every segment of ``panel`` with ``model`` (a fitted ``DemandCandidate``)."""
    panel = complete_months(panel, today)
    if panel.empty:
        return ForecastBook(version, None, horizon, {})
    last = panel["month"].max()
    paths = model.forecast(panel, horizon)
    sigmas = _error_spread(model, panel)
    pooled = float(np.sqrt(np.mean([s**2 for s, _ in sigmas.values()]))) if sigmas else 0.5
    segments = {}
    for key, part in panel.groupby("series_key", sort=True):
        s, n = sigmas.get(key, (pooled, 0))
        sigma = float(np.sqrt((n * s**2 + SHRINK * pooled**2) / (n + SHRINK)))
        history = tuple(
            (m.date(), int(v)) for m, v in zip(part["month"], part["sales"], strict=True)
        )
        values = np.clip(np.asarray(paths[key], dtype=float), 0.0, None)
        segments[key] = SegmentForecast(key, values, sigma, history)
    first = (last + pd.DateOffset(months=1)).date()
    return ForecastBook(version, first, horizon, segments)


def _error_spread(model: Any, panel: pd.DataFrame) -> dict[str, tuple[float, int]]:
    """Per segment: RMS of log1p one-step errors over the last months, and their count."""
    featured = add_features(panel)
    cut = panel["month"].max() - pd.DateOffset(months=RESIDUAL_MONTHS)
    rows = featured[(featured["month"] > cut) & featured["lag_1"].notna()]
    if rows.empty:
        return {}
    predicted = np.clip(model.predict(rows), 0.0, None)
    errors = np.log1p(rows["sales"].to_numpy(float)) - np.log1p(predicted)
    frame = pd.DataFrame({"key": rows["series_key"].to_numpy(), "e2": errors**2})
    grouped = frame.groupby("key")["e2"].agg(["mean", "count"])
    return {k: (float(np.sqrt(r["mean"])), int(r["count"])) for k, r in grouped.iterrows()}
