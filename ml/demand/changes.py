"""Change detection on one demand segment: its monthly sales and its online forecast's errors.

Each segment runs two domain-free :class:`~ml.drift.ChangeDetector` suites (one report per
excursion), each of a level CUSUM and a variance CUSUM on a robust reference
(:mod:`ml.drift.detectors`):

* ``sales``: the year-over-year log ratio of the month's sales,
  ``log1p(sales[t]) - log1p(sales[t - 12])`` (seasonality cancels out; a level shift x2 moves
  it by log 2 for twelve months). Both directions count.
* ``error``: the online forecast's absolute error of the month. Only increases count (a
  forecast getting better is not a reason to retrain).

After a detection both detectors of the suite re-learn from the detection on (not from the
estimated start of the change), so one excursion gives one detection.

Detector names in drift events: ``sales_level``, ``sales_variance``, ``error_level``,
``error_variance`` (mapped to the ``drift`` reason in :data:`ml.triggers.REASON_BY_DETECTOR`).

Why these series and parameters (measured with ``millrace.importers.simulate.simulate_demand``,
8 seeds x 8 segments, 60 months, x2 level shift at month 36; ``benchmarks/drift_delay.py``
gives the figures through the whole processor): on the year-over-year ratio the level CUSUM
(``h=10``) detects in 2 months (median; 90% within 4) with no false alarm in ~2,300 armed
stationary points; on raw log counts it needs 3 months and raises ~1 false alarm per 1,000
points (seasonality inflates the reference scale); the segment test of the default suite
(:class:`~ml.drift.SegmentChangeDetector`) needs ``min_size`` (8) months after a change to
place it, too slow for a monthly series. The error suite reacts in 1 month (median; 90% within
3) with ~2 false alarms per 1,000 points. Both need ``min_reference`` (12) points of a series
before they are armed: a new segment is watched after 24 months of sales (12 for the ratio to
exist, 12 of reference), its errors after 12.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from ml.drift import (
    ChangeDetector,
    Detection,
    LevelShiftDetector,
    OnlineDetector,
    VarianceShiftDetector,
)

__all__ = ["SALES_STATISTIC", "ERROR_STATISTIC", "SegmentChanges", "yoy_log_ratio"]

#: ``statistic`` of the sales detections
SALES_STATISTIC = "yoy_log_ratio"
#: ``statistic`` of the error detections
ERROR_STATISTIC = "abs_error"

_WINDOW = 24
_MIN_REFERENCE = 12


def yoy_log_ratio(history: deque[float] | list[float]) -> float | None:
    """``log1p`` of the last month's sales minus that of the same month a year before (needs
    13 months of history)."""
    if len(history) <= 12:
        return None
    return math.log1p(history[-1]) - math.log1p(history[-13])


def _suite(level_h: float, variance_h: float | None) -> ChangeDetector:
    detectors: list[OnlineDetector] = [
        LevelShiftDetector(h=level_h, window=_WINDOW, min_reference=_MIN_REFERENCE)
    ]
    if variance_h is not None:
        detectors.append(
            VarianceShiftDetector(h=variance_h, window=_WINDOW, min_reference=_MIN_REFERENCE)
        )
    return ChangeDetector(detectors)


class SegmentChanges:
    """The two change-detection suites of one segment (see module doc); picklable."""

    def __init__(self) -> None:
        self.sales = _suite(level_h=10.0, variance_h=22.0)
        self.error = _suite(level_h=14.0, variance_h=None)

    def update(self, yoy: float | None, abs_error: float | None) -> list[Detection]:
        """Feed the month's sales ratio and forecast error; the detections at this month."""
        out = []
        detection = _feed("sales", SALES_STATISTIC, self.sales, yoy, up_only=False)
        if detection is not None:
            out.append(detection)
        detection = _feed("error", ERROR_STATISTIC, self.error, abs_error, up_only=True)
        if detection is not None:
            out.append(detection)
        return out

    def stats(self) -> dict[str, Any]:
        """Plain statistics of both suites (for the API)."""
        return {"sales": self.sales.state(), "error": self.error.state()}


def _feed(
    series: str, statistic: str, suite: ChangeDetector, x: float | None, *, up_only: bool
) -> Detection | None:
    before = {d.name: d.state() for d in suite.detectors}
    point = suite.update(x)
    if point is None:
        return None
    for detector in suite.detectors:
        # re-learn from the detection on: the estimated start can be early (a level shift that
        # fired the variance CUSUM first), and old-regime points in the new reference would
        # report the same excursion again
        detector.restart(keep_from=point.index)
    fired = [d for d in suite.detectors if d.name in point.detectors]
    if up_only:
        fired = [d for d in fired if getattr(d, "alarm_side", None) == 0]
        if not fired:
            return None
    first = fired[0]
    side = getattr(first, "alarm_side", None)
    ref = before[first.name]
    return Detection(
        detector=f"{series}_{first.name}",
        statistic=statistic,
        value=float(getattr(first, "alarm_statistic", None) or 0.0),
        threshold=float(getattr(first, "h", 0.0)),
        evidence={
            "series": series,
            "x": x,
            "direction": "up" if side == 0 else "down",
            "detectors": list(point.detectors),
            "change_index": point.index,
            "change_start": point.start,
            "months_since_start": point.index - point.start + 1,
            "reference_centre": ref.get("centre"),
            "reference_scale": ref.get("scale"),
        },
    )
