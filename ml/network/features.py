"""Supervised rows from a cell's window series: lags of the inputs -> an output steps ahead.

Windows are indexed by ``index = epoch seconds of the window start // window seconds`` (windows
aligned to the epoch, as :func:`ml.periods.window_start`). A cell's series holds, per
closed window, the mean of every field measured in it; a field not measured in a window is
*missing* there (never zero), and a window without any event does not exist.

For a model ``(config, field)`` and an *anchor* window ``a`` the features are, for every input
field ``f`` and lag ``k`` in ``0 .. lookback_steps - 1``:

* ``f_lag{k}``: the mean of ``f`` in window ``a - k``. **Missing values are imputed explicitly**
  with the latest value of ``f`` in the same cell at or before window ``a - k`` (carried
  forward, however old), or ``0.0`` when the cell never measured ``f``;
* ``f_lag{k}_missing``: ``1.0`` when the value was imputed, else ``0.0``;

plus ``<field>_last``, the latest value of the output field at or before ``a`` (the persistence
forecast; also the reference of the online models' residual target) and ``<field>_age``,
``log1p`` of the number of windows since that value was measured. The feature set is always the
same, whatever is missing.

The row's target is the output field's mean in window ``a + forecast_steps``. Rows whose target
is missing are not rows (there is nothing to learn or score). Rows whose cell has never measured
the output field at or before the anchor are *cold*: they have no persistence value, and are
counted, not learnt or scored, until the cell's first value arrives (the cell is never dropped).

The stream (:mod:`ml.network.online`) and the batch trainer (:mod:`ml.network.training`) build
features with this same code, so a model sees the same inputs in both.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ml.network.configs import ModelConfig

__all__ = [
    "CellSeries",
    "Features",
    "SupervisedRow",
    "feature_names",
    "features_at",
    "history_steps",
    "supervised_rows",
]


def history_steps(config: ModelConfig) -> int:
    """Windows a cell's series must keep for ``config``: the lags of the oldest anchor still
    needed (``forecast_steps`` back from the newest window) and the newest window itself."""
    return config.lookback_steps + config.forecast_steps


@dataclass
class CellSeries:
    """Per-window field means of one cell, oldest first, with bounded memory.

    Only windows within ``keep`` indices of the newest are kept; for every field, ``carry``
    holds the latest value dropped from the kept range, so carried-forward imputation is exact
    for any window inside the kept range. ``keep=None`` keeps everything (batch use).
    """

    keep: int | None = None
    indices: list[int] = field(default_factory=list)
    values: dict[int, dict[str, float]] = field(default_factory=dict)
    carry: dict[str, tuple[int, float]] = field(default_factory=dict)

    @property
    def latest(self) -> int | None:
        return self.indices[-1] if self.indices else None

    @property
    def oldest_exact(self) -> int | None:
        """The oldest index for which :meth:`last_seen` is exact (None: any index)."""
        if self.keep is None or not self.indices:
            return None
        return self.indices[-1] - self.keep + 1

    def add(self, index: int, means: Mapping[str, float | None]) -> None:
        """Append window ``index`` (must be newer than the latest) with its field means."""
        if self.indices and index <= self.indices[-1]:
            raise ValueError(f"window {index} is not after the latest window {self.indices[-1]}")
        self.indices.append(index)
        self.values[index] = {
            name: float(v) for name, v in means.items() if v is not None and not math.isnan(v)
        }
        self._prune()

    def _prune(self) -> None:
        if self.keep is None:
            return
        limit = self.indices[-1] - self.keep
        drop = 0
        while drop < len(self.indices) and self.indices[drop] <= limit:
            index = self.indices[drop]
            for name, value in self.values.pop(index).items():
                self.carry[name] = (index, value)
            drop += 1
        if drop:
            del self.indices[:drop]

    def value(self, name: str, index: int) -> float | None:
        """The mean of ``name`` in window ``index`` (None: missing or no such window)."""
        window = self.values.get(index)
        return None if window is None else window.get(name)

    def last_seen(self, name: str, at: int) -> tuple[int, float] | None:
        """``(index, value)`` of the latest value of ``name`` in a window ``<= at``."""
        oldest = self.oldest_exact
        if oldest is not None and at < oldest:
            raise ValueError(f"window {at} is older than the kept history (from {oldest})")
        pos = bisect_right(self.indices, at)
        for i in range(pos - 1, -1, -1):
            value = self.values[self.indices[i]].get(name)
            if value is not None:
                return (self.indices[i], value)
        return self.carry.get(name)


class Features:
    """The inputs of one prediction from ``anchor`` and its persistence value ``last``.

    ``x`` is the feature dict (name -> value); ``names`` and ``values`` the same as a tuple of
    names (shared by every row of a model: the same object) and a tuple of values, which
    vector learners read without building the dict (it is built on first use)."""

    __slots__ = ("anchor", "last", "names", "values", "_x", "_vector")

    def __init__(
        self,
        anchor: int,
        x: Mapping[str, float] | None,
        last: float,
        *,
        names: tuple[str, ...] | None = None,
        values: tuple[float, ...] | None = None,
    ) -> None:
        self.anchor = anchor
        self.last = last
        self._vector: np.ndarray | None = None
        if x is not None:
            self._x: dict[str, float] | None = dict(x)
            self.names, self.values = tuple(self._x), tuple(self._x.values())
        else:
            if names is None or values is None or len(names) != len(values):
                raise ValueError("Features: give x, or names and values of the same length")
            self._x, self.names, self.values = None, names, values

    @property
    def x(self) -> dict[str, float]:
        if self._x is None:
            self._x = dict(zip(self.names, self.values, strict=True))
        return self._x

    def vector(self) -> np.ndarray:
        """``values`` as a float array, made once (read-only: shared by every reader)."""
        if self._vector is None:
            self._vector = np.fromiter(self.values, dtype=float, count=len(self.values))
            self._vector.flags.writeable = False
        return self._vector

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Features):
            return NotImplemented
        return (self.anchor, self.last, self.names, self.values) == (
            other.anchor, other.last, other.names, other.values,
        )  # fmt: skip

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Features(anchor={self.anchor!r}, x={self.x!r}, last={self.last!r})"


@dataclass(frozen=True, slots=True)
class SupervisedRow:
    """One training / scoring example of a model ``(config, field)``."""

    cell_id: str
    anchor: int
    target: int
    x: dict[str, float]
    last: float
    y: float
    #: the cell has a window at ``anchor`` (the stream forecasts when that window closes;
    #: otherwise it predicts when the target window closes, just before learning it)
    anchor_exists: bool


def feature_names(config: ModelConfig, output: str) -> list[str]:
    """Feature names of the model of ``config`` for ``output``, in a fixed order."""
    names = []
    for k in range(config.lookback_steps):
        for name in config.input_fields:
            names += [f"{name}_lag{k}", f"{name}_lag{k}_missing"]
    return names + [f"{output}_last", f"{output}_age"]


@lru_cache(maxsize=256)
def _names(fields: tuple[str, ...], lags: int, output: str) -> tuple[str, ...]:
    """The feature names of ``feature_names``, as one shared tuple."""
    names: list[str] = []
    for k in range(lags):
        for n in fields:
            names += [f"{n}_lag{k}", f"{n}_lag{k}_missing"]
    return (*names, f"{output}_last", f"{output}_age")


_EMPTY: dict[str, float] = {}


def features_at(
    series: CellSeries,
    config: ModelConfig,
    output: str,
    anchor: int,
    previous: Features | None = None,
) -> Features | None:
    """Features of the model ``(config, output)`` from window ``anchor`` (which need not
    exist); None when the cell never measured ``output`` at or before it (a cold row).

    ``previous``: this function's answer for the same series, model and ``anchor - 1`` (a
    cache of the caller's; windows up to an anchor never change once a later one exists). The
    values are then that row's shifted by one lag plus the newest window's: a value imputed in
    window ``w`` is the latest at or before ``w`` whatever the anchor, so the newest lag's
    imputation is the previous row's newest lag. The same values, without scanning the lags.
    Any other ``previous`` is ignored."""
    seen = series.last_seen(output, anchor)
    if seen is None:
        return None
    lags = config.lookback_steps
    fields = config.input_fields
    names = _names(fields, lags, output)
    if (
        previous is not None
        and previous.anchor == anchor - 1
        and (previous.names is names or previous.names == names)
    ):
        window = series.values.get(anchor, _EMPTY)
        before = previous.values
        newest: list[float] = []
        for j, name in enumerate(fields):
            value = window.get(name)
            newest += (before[2 * j], 1.0) if value is None else (value, 0.0)
        return Features(
            anchor,
            None,
            seen[1],
            names=names,
            values=(
                *newest,
                *before[: 2 * len(fields) * (lags - 1)],
                seen[1],
                math.log1p(anchor - seen[0]),
            ),  # fmt: skip
        )
    first = anchor - lags + 1
    get = series.values.get
    windows = [get(i, _EMPTY) for i in range(first, anchor + 1)]
    # per input field, its values from the oldest lag to the newest and their missing flags,
    # carrying forward: one history scan per field at most (for a missing oldest lag), not
    # one per missing value
    columns: list[list[float]] = []
    flags: list[list[float]] = []
    measured = [0.0] * lags
    for name in fields:
        column = [w.get(name) for w in windows]
        if None not in column:
            columns.append(column)  # type: ignore[arg-type]
            flags.append(measured)
            continue
        flag = [0.0] * lags
        carried: float | None = None
        for i, value in enumerate(column):
            if value is not None:
                carried = value
                continue
            if carried is None:
                seen_before = series.last_seen(name, first + i)
                carried = seen_before[1] if seen_before is not None else 0.0
            column[i] = carried
            flag[i] = 1.0
        columns.append(column)  # type: ignore[arg-type]
        flags.append(flag)
    values: list[float] = []
    for k in range(lags - 1, -1, -1):  # lag 0 (the anchor) first
        for column, flag in zip(columns, flags, strict=True):
            values += (column[k], flag[k])
    values += (seen[1], math.log1p(anchor - seen[0]))
    return Features(anchor, None, seen[1], names=names, values=tuple(values))


def supervised_rows(
    windows: Iterable[tuple[str, int, Mapping[str, float | None]]],
    config: ModelConfig,
    output: str,
    cold: list[tuple[str, int]] | None = None,
) -> Iterator[SupervisedRow]:
    """Every row of the model ``(config, output)`` from ``(cell_id, window index, means)``
    windows (any order; one window per cell and index), by cell then target window.

    Cold rows (no output value at or before the anchor) are appended to ``cold`` as
    ``(cell_id, target index)`` when a list is given."""
    by_cell: dict[str, dict[int, Mapping[str, float | None]]] = defaultdict(dict)
    for cell_id, index, means in windows:
        if index in by_cell[cell_id]:
            raise ValueError(f"two windows {index} for cell {cell_id!r}")
        by_cell[cell_id][index] = means
    h = config.forecast_steps
    for cell_id in sorted(by_cell):
        series = CellSeries()
        for index in sorted(by_cell[cell_id]):
            series.add(index, by_cell[cell_id][index])
        for target in series.indices:
            y = series.value(output, target)
            if y is None:
                continue
            feats = features_at(series, config, output, target - h)
            if feats is None:
                if cold is not None:
                    cold.append((cell_id, target))
                continue
            yield SupervisedRow(
                cell_id, target - h, target, feats.x, feats.last, y, (target - h) in series.values
            )
