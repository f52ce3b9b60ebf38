"""Mergeable summary statistics of one numeric field (count, sum, sum of squares, min, max).

Observations are stored as these so that batches, partitions and late corrections can be merged
in any order with the same result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["FieldStats", "merge_fields"]


@dataclass(slots=True)
class FieldStats:
    """Summary of the values seen for one field."""

    count: int = 0
    total: float = 0.0
    sumsq: float = 0.0
    min: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, value: float, count: int = 1) -> FieldStats:
        """The summary of ``count`` (>= 1) values all equal to ``value``."""
        value = float(value)
        if count == 1:
            return cls(1, value, value**2, value, value)
        return cls(count, count * value, count * value**2, value, value)

    def add(self, value: float, count: int = 1) -> None:
        """Add ``count`` (>= 1) values equal to ``value`` (one count event = that many)."""
        value = float(value)
        self.count += count
        if count == 1:
            self.total += value
            self.sumsq += value**2
        else:
            self.total += count * value
            self.sumsq += count * value**2
        if self.min is None or value < self.min:
            self.min = value
        if self.max is None or value > self.max:
            self.max = value

    def merge(self, other: FieldStats) -> None:
        if other.count == 0:
            return
        self.count += other.count
        self.total += other.total
        self.sumsq += other.sumsq
        if self.min is None or (other.min is not None and other.min < self.min):
            self.min = other.min
        if self.max is None or (other.max is not None and other.max > self.max):
            self.max = other.max

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def std(self) -> float | None:
        if self.count < 2:
            return None
        var = (self.sumsq - self.total**2 / self.count) / (self.count - 1)
        return math.sqrt(max(var, 0.0))

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "count": self.count,
            "sum": self.total,
            "sumsq": self.sumsq,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_dict(cls, data: dict) -> FieldStats:
        return cls(
            int(data["count"]),
            float(data["sum"]),
            float(data["sumsq"]),
            data.get("min"),
            data.get("max"),
        )


def merge_fields(
    into: dict[str, FieldStats], other: dict[str, FieldStats]
) -> dict[str, FieldStats]:
    """Merge ``other`` into ``into`` field by field and return ``into``."""
    for name, stats in other.items():
        mine = into.get(name)
        if mine is None:
            mine = into[name] = FieldStats()
        mine.merge(stats)
    return into
