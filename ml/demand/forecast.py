"""Multi-month demand forecasts of one trained version for every segment, with intervals.

A :class:`ForecastBook` is built once per (version, data) snapshot: every segment's recursive
forecast up to ``horizon`` months after the last *complete* month of the panel, each segment's
error scale ``sigma`` and a table of interval half-widths per horizon and confidence level. A
prediction is then a lookup, so the API answers in microseconds and one response never mixes
two versions.

Intervals (normalized split-conformal, in log1p space): the months after the version's
training (``trained_through``; the held-out test window, and any month stored since) are
forecast again from each of their last :data:`CALIBRATION_ORIGINS` origins, recursively, up to
:data:`CALIBRATION_HORIZON` months ahead. A segment's ``sigma`` is the RMS of its one-month-ahead
log errors there, shrunk toward the pooled one (:data:`SHRINK`); each error divided by its
segment's sigma is a score, and the half-width of horizon ``h`` at confidence ``c`` is
``sigma`` times the ``ceil((n + 1) c)``-th smallest of the ``n`` scores of that horizon (the
split-conformal quantile), made non-decreasing in ``h``. Horizons with fewer than
:data:`MIN_SCORES` scores widen the last calibrated one by ``sqrt(h / h_last)``. Levels are
tabulated by hundredths (:data:`LEVELS`); a request's confidence is rounded *up* to the next
one. A version with no held-out month (an artifact of older code, or trained on every month)
falls back to the normal approximation on its last 12 months' one-step errors:
``z(c) * sigma * sqrt(h)``.

Bounds: ``[expm1(log1p(value) - half), expm1(log1p(value) + half)]``, the lower end clipped at
0 and the upper end capped at ``max(value, INTERVAL_CAP x the segment's largest observed
month)``, so ``0 <= lower <= value <= upper`` always holds and no bound runs off to several times
anything the segment ever sold. Cold or unknown segments fall back to the mean per segment of
their nearest parent level (``brand_model``, then ``brand``; within the market for a segment
with one) and say so; a brand the data has never seen (in that market) is unknown.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from ml.demand.book import (
    BOOK_LEVELS,
    INTERVAL_CAP,
    LEVELS,
    ForecastBook,
    Prediction,
    SegmentForecast,
    UnknownSegmentError,
    normal_widths,
)
from ml.demand.candidates import add_features
from ml.demand.training import demand_panel

__all__ = [
    "BOOK_HORIZON",
    "BOOK_LEVELS",
    "CALIBRATION_HORIZON",
    "CALIBRATION_ORIGINS",
    "INTERVAL_CAP",
    "LEVELS",
    "ForecastBook",
    "Prediction",
    "SegmentForecast",
    "UnknownSegmentError",
    "build_book",
    "demand_book",
    "complete_months",
    "conformal_widths",
    "normal_widths",
]

#: Months of one-step errors behind a segment's width when the version has no held-out month.
RESIDUAL_MONTHS = 12
#: Pseudo-count pulling a short segment's error spread toward the pooled one.
SHRINK = 6.0
#: Held-out origins (the latest) and horizons the conformal calibration forecasts from / to.
CALIBRATION_ORIGINS = 12
CALIBRATION_HORIZON = 12
#: A horizon with fewer scores than this widens the previous calibrated horizon instead.
MIN_SCORES = 10


def conformal_widths(scores: list[np.ndarray], horizon: int) -> np.ndarray:
    """Split-conformal half-widths by (h - 1, level) from ``scores[h - 1]`` (normalized
    absolute errors at horizon h): the ``ceil((n + 1) c)``-th smallest score (the largest when
    that is past n), non-decreasing in h; horizons with fewer than :data:`MIN_SCORES` scores
    (and those past the calibrated ones) widen the last calibrated one by ``sqrt(h / h_last)``."""
    table = np.zeros((horizon, len(LEVELS)))
    last: tuple[int, np.ndarray] | None = None
    for h in range(1, horizon + 1):
        sample = np.sort(scores[h - 1]) if h <= len(scores) else np.zeros(0)
        if len(sample) >= MIN_SCORES:
            n = len(sample)
            ranks = np.minimum(np.ceil((n + 1) * np.array(LEVELS)).astype(int), n) - 1
            row = sample[ranks]
            if last is not None:
                row = np.maximum(row, table[h - 2])
            last = (h, row)
        elif last is not None:
            row = last[1] * math.sqrt(h / last[0])
        else:
            raise ValueError(f"fewer than {MIN_SCORES} scores at horizon 1")
        table[h - 1] = row
    return table


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
               today: date | None = None, conformal: bool = True,
               cap: float | None = INTERVAL_CAP) -> ForecastBook:  # fmt: skip
    """Forecast every segment of ``panel`` with ``model`` (a fitted ``DemandCandidate``);
    intervals calibrated on the months after ``model.trained_through`` (``conformal=False``, or
    no such month: the normal fallback), upper bounds capped at ``cap`` x the segment's largest
    month (None: uncapped, the intervals before the cap existed)."""
    panel = complete_months(panel, today)
    if panel.empty:
        return ForecastBook(version, None, horizon, {}, cap=cap)
    last = panel["month"].max()
    paths = model.forecast(panel, horizon)
    held = _held_out_errors(model, panel) if conformal else None
    if held is not None:
        errors, one_step = held
        sigmas = {k: (float(np.sqrt(np.mean(np.square(v)))), len(v)) for k, v in one_step.items()}
    else:
        sigmas = _error_spread(model, panel)
    pooled = float(np.sqrt(np.mean([s**2 for s, _ in sigmas.values()]))) if sigmas else 0.5
    pooled = max(pooled, 1e-3)
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
    if held is None:
        return ForecastBook(version, first, horizon, segments, cap=cap)
    scores = [
        np.array([abs(e) / segments[k].sigma for k, e in by_h if k in segments]) for by_h in errors
    ]
    try:
        widths = conformal_widths(scores, horizon)
    except ValueError:  # too few held-out points: the normal fallback
        return ForecastBook(version, first, horizon, segments, cap=cap)
    return ForecastBook(version, first, horizon, segments, widths=widths, method="conformal",
                        calibration_scores=tuple(len(x) for x in scores), cap=cap)  # fmt: skip


def _held_out_errors(
    model: Any, panel: pd.DataFrame
) -> tuple[list[list[tuple[str, float]]], dict[str, list[float]]] | None:
    """log1p errors of ``model``'s recursive forecasts from the held-out origins (months from
    ``model.trained_through`` on, the latest :data:`CALIBRATION_ORIGINS`): per horizon the
    (segment, error) pairs, and per segment its one-month-ahead errors. None without any."""
    seen = getattr(model, "trained_through", None)
    last = panel["month"].max()
    if seen is None or pd.Timestamp(seen) >= last:
        return None
    months = sorted(m for m in panel["month"].unique() if pd.Timestamp(seen) <= m < last)
    origins = months[-CALIBRATION_ORIGINS:]
    actual = {(k, m): float(v) for k, m, v in
              zip(panel["series_key"], panel["month"], panel["sales"], strict=True)}  # fmt: skip
    errors: list[list[tuple[str, float]]] = [[] for _ in range(CALIBRATION_HORIZON)]
    one_step: dict[str, list[float]] = {}
    for origin in origins:
        origin = pd.Timestamp(origin)
        ahead = min(CALIBRATION_HORIZON, (last.year - origin.year) * 12 + last.month - origin.month)
        paths = model.forecast(panel[panel["month"] <= origin], ahead)
        targets = [origin + pd.DateOffset(months=h) for h in range(1, ahead + 1)]
        for key, path in paths.items():
            for h, month in enumerate(targets, start=1):
                y = actual.get((key, month))
                if y is None:
                    continue
                e = math.log1p(max(y, 0.0)) - math.log1p(max(float(path[h - 1]), 0.0))
                errors[h - 1].append((key, e))
                if h == 1:
                    one_step.setdefault(key, []).append(e)
    return (errors, one_step) if one_step else None


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
