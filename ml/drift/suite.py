"""The change-detection suite: runs a set of online detectors on one series, one report each.

:class:`ChangeDetector` feeds every value to each of its detectors. When any fires, it reports
one :class:`ChangePoint` (the index where it was detected, the estimated start of the change,
the names of the detectors that fired) and makes all of them re-learn from that start, so a
slower detector does not report the same excursion again: one excursion, one detection.

Default set (:func:`default_detectors`): one :class:`~ml.drift.segment.SegmentChangeDetector`
(penalised likelihood-ratio test for a change of level, slope or noise in the current
segment). The parameters are one global configuration for every series (no per-series
tuning), chosen on the TCPD benchmark (``benchmarks/changepoint_tcpd.py``): its figures are
in-sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ml.drift.detectors import OnlineDetector
from ml.drift.segment import SegmentChangeDetector

__all__ = ["ChangeDetector", "ChangePoint", "default_detectors"]


@dataclass(frozen=True)
class ChangePoint:
    """One detected change: where it was detected, where it is estimated to start, by whom."""

    index: int
    start: int
    detectors: tuple[str, ...]
    evidence: dict[str, Any] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Any, ...]:
        # a plain tuple: a frozen dataclass pickles through copyreg, several times slower
        return (ChangePoint, (self.index, self.start, self.detectors, self.evidence))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_detectors() -> list[OnlineDetector]:
    """The default set: the segment change test with its default parameters."""
    return [SegmentChangeDetector()]


class ChangeDetector:
    """Runs a set of detectors on one series; one :class:`ChangePoint` per excursion.

    When any detector fires, all of them re-learn from the estimated start of the change (the
    earliest start among those that fired), so the same excursion is not reported again by a
    slower detector. Missing values are skipped (the index still advances).
    """

    def __init__(self, detectors: list[OnlineDetector] | None = None) -> None:
        self.detectors = detectors if detectors is not None else default_detectors()
        if not self.detectors:
            raise ValueError("need at least one detector")
        self.n = 0
        self.detections = 0
        self.last: ChangePoint | None = None

    def snapshot(self) -> tuple[Any, ...]:
        """The suite as a flat tuple of plain values (its detectors' ``snapshot(earlier)``s:
        they must have one, given the detectors before them, which may share a reference's
        values), without attribute names or classes: checkpoints hold thousands of suites.
        :meth:`from_snapshot` with the detectors' classes reverses it."""
        last, detectors = self.last, self.detectors
        snapshots = [d.snapshot(detectors[:i]) for i, d in enumerate(detectors)]  # type: ignore
        return (
            tuple(snapshots),
            self.n,
            self.detections,
            None if last is None else (last.index, last.start, last.detectors, last.evidence),
        )

    @classmethod
    def from_snapshot(cls, snapshot: tuple[Any, ...], types: Sequence[type]) -> ChangeDetector:
        detectors, n, detections, last = snapshot
        suite = cls.__new__(cls)
        suite.detectors = []
        for t, d in zip(types, detectors, strict=True):
            suite.detectors.append(t.from_snapshot(d, suite.detectors))  # type: ignore
        suite.n, suite.detections = n, detections
        suite.last = None if last is None else ChangePoint(*last)
        return suite

    @property
    def drift_detected(self) -> bool:
        return self.last is not None and self.last.index == self.n - 1

    def update(self, x: float | None) -> ChangePoint | None:
        """Feed the next value; the change point detected at it, if any."""
        index = self.n
        self.n += 1
        fired = [d for d in self.detectors if d.update(x)]
        if not fired:
            return None
        start = min(d.change_point for d in fired if d.change_point is not None)
        for d in self.detectors:
            if d not in fired:
                d.restart(keep_from=start)
        self.detections += 1
        self.last = ChangePoint(
            index=index,
            start=start,
            detectors=tuple(d.name for d in fired),
            evidence={d.name: d.change_point for d in fired},
        )
        return self.last

    def describe(self) -> list[dict[str, Any]]:
        """Name, class and parameters of each detector (for reports)."""
        return [{"name": d.name, "class": type(d).__name__, **d.params()} for d in self.detectors]

    def state(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "detections": self.detections,
            "detectors": {d.name: d.state() for d in self.detectors},
        }
