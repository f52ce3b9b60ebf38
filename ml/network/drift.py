"""Drift of the network stream: per cell x field change detection on window means, and the
per-field share of cells that changed.

For every output field the online configs forecast, the *monitored* config is the first online
config (in config order) that forecasts it; its window duration is the field's window. Each time
a cell's window of that duration closes, :class:`NetworkDrift` feeds three detectors of
:mod:`ml.drift.detectors` (robust median/MAD reference of the last 48 windows, CUSUMs; parameters in
:class:`DetectorParams`, chosen on the simulator by ``benchmarks/drift_delay.py``):

* ``level_shift``: :class:`~ml.drift.LevelShiftDetector` on the cell's window mean of the field;
* ``variance_shift``: :class:`~ml.drift.VarianceShiftDetector` on the same window means;
* ``error_shift``: :class:`~ml.drift.LevelShiftDetector` on the absolute error of the monitored
  config's forecast of that window (reported only when the error rose; a fall re-arms silently).

Level and variance run as one :class:`~ml.drift.ChangeDetector` suite, so one excursion is one
detection whichever of them sees it first; every detector re-learns its reference after a
detection (a persistent shift is one detection, not a storm). Detectors cost O(window log
window) per closed window, nothing per event.

Per field, the aggregate is the share of *active* cells (a window closed within the last
``recent_windows`` windows of event time) that had a detection within those windows. When the
share reaches ``cell_share`` (``NETWORK_DRIFT_CELL_SHARE``) with at least ``min_cells``
detecting cells, the field *drifts*: one ``cell_share`` detection (scope ``*|<field>``) when it
crosses, re-armed once the share falls below the threshold again.

Memory is bounded by the active cells: a cell quiet for ``forget_windows`` windows loses its
detectors. Everything is plain picklable data, checkpointed with the processor.
"""

from __future__ import annotations

import pickle
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from ml.drift import ChangeDetector, Detection, LevelShiftDetector, VarianceShiftDetector
from ml.drift.detectors import OnlineDetector, compact_indices, expand_indices

__all__ = [
    "AGGREGATE_CELL",
    "CellDetectors",
    "DEFAULT_CELL_SHARE",
    "DEFAULT_MIN_CELLS",
    "DEFAULT_RECENT_WINDOWS",
    "DETECTORS",
    "DetectorParams",
    "FieldDrift",
    "NetworkDrift",
    "drift_scope",
]

#: ``NETWORK_DRIFT_CELL_SHARE`` default: a quarter of the active cells changed.
DEFAULT_CELL_SHARE = 0.25
#: Fewest detecting cells that make a field drift (one cell alone never does).
DEFAULT_MIN_CELLS = 2
#: ``NETWORK_DRIFT_RECENT_WINDOWS`` default: how far back (in windows) "recent" reaches.
DEFAULT_RECENT_WINDOWS = 10
#: (input index, window) pairs a cell keeps, to date its detections' change points.
WINDOWS_KEPT = 32
#: The cell part of the scope of a field's aggregate detection.
AGGREGATE_CELL = "*"
#: Detector names of the drift events, with the statistic each watches.
DETECTORS = {
    "level_shift": "window_mean",
    "variance_shift": "window_mean",
    "error_shift": "abs_error",
    "cell_share": "share_of_active_cells",
}
_SUITE_NAMES = {"level": "level_shift", "variance": "variance_shift"}
#: classes of the input suite's detectors, in order (``CellDetectors``)
_SUITE_TYPES = (LevelShiftDetector, VarianceShiftDetector)


def drift_scope(cell_id: str, field_name: str) -> str:
    """Scope of a network drift event: ``<cell>|<field>`` (``*|<field>``: the field's cells)."""
    return f"{cell_id}|{field_name}"


@dataclass(frozen=True)
class DetectorParams:
    """The CUSUM parameters of every cell (see :mod:`ml.drift.detectors`)."""

    level_h: float = 12.0
    variance_h: float = 18.0
    error_h: float = 12.0
    k: float = 0.5
    ratio: float = 2.0
    window: int = 48
    min_reference: int = 24


class CellDetectors:
    """The detectors of one cell x field: level + variance suite on window means, error CUSUM."""

    def __init__(self, params: DetectorParams = DetectorParams()) -> None:  # noqa: B008
        p = params
        ref = {"window": p.window, "min_reference": p.min_reference}
        self.inputs = ChangeDetector(
            [
                LevelShiftDetector(k=p.k, h=p.level_h, **ref),
                VarianceShiftDetector(ratio=p.ratio, h=p.variance_h, **ref),
            ]
        )
        self.error = LevelShiftDetector(k=p.k, h=p.error_h, **ref)
        #: (update index, window index) of the recent window means, to place a change in time
        self.windows: deque[tuple[int, int]] = deque(maxlen=WINDOWS_KEPT)
        self.last_window: int | None = None
        self.detections = 0
        #: this object pickled, as of its last update (None: changed since; not pickled)
        self._pickled: bytes | None = None

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        """Pickled once per update, not once per checkpoint: a checkpoint holds every cell's
        detectors, but only the cells whose window closed since the last one changed (the
        others' bytes are copied as they are)."""
        if self._pickled is None:
            # a flat tuple (the detectors pickle compactly too, see ml.drift.detectors)
            windows = self.windows
            state = (
                self.inputs.snapshot(),
                self.error.snapshot(),
                *_compact_pairs(windows),
                self.last_window,
                self.detections,
            )
            self._pickled = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        return (_load_cell, (self._pickled,))

    def update(
        self, window: int, value: float | None, abs_error: float | None
    ) -> list[tuple[str, float, dict[str, Any]]]:
        """Feed window ``window``'s mean and the forecast's absolute error; the detections as
        ``(detector name, value, evidence)``."""
        self._pickled = None
        self.last_window = window
        out: list[tuple[str, float, dict[str, Any]]] = []
        if value is not None:
            before = _reference(self.inputs.detectors[0])
            index = self.inputs.n
            self.windows.append((index, window))
            point = self.inputs.update(value)
            if point is not None:
                name = _SUITE_NAMES.get(point.detectors[0], point.detectors[0])
                evidence = {
                    **before,
                    "detectors": [_SUITE_NAMES.get(d, d) for d in point.detectors],
                    "change_window": self._window_of(point.start),
                }
                out.append((name, value, evidence))
        if abs_error is not None:
            before = _reference(self.error)
            if self.error.update(abs_error):
                now = _centre(self.error)
                if now is None or "centre" not in before or now >= before["centre"]:
                    out.append((
                        "error_shift",
                        abs_error,
                        {**before, "new_centre": now,
                         "change_updates_ago": self.error.n - 1 - (self.error.change_point or 0)},
                    ))  # fmt: skip
        self.detections += len(out)
        return out

    def _window_of(self, index: int) -> int | None:
        for i, w in self.windows:
            if i == index:
                return w
        return None

    def state(self) -> dict[str, Any]:
        level = self.inputs.detectors[0]
        return {
            "n": self.inputs.n,
            "detections": self.detections,
            "last_window": self.last_window,
            **{f"level_{k}": v for k, v in _reference(level).items()},
        }


def _compact_pairs(pairs: deque[tuple[int, int]]) -> tuple[int, Any, Any]:
    """``(update index, window)`` pairs as their count and both indices compacted."""
    if not pairs:
        return (0, (), ())
    updates, windows = zip(*pairs, strict=True)
    return (len(pairs), compact_indices(updates), compact_indices(windows))


def _load_cell(blob: bytes) -> CellDetectors:
    """A :class:`CellDetectors` from the bytes of its ``__reduce__``."""
    cell = CellDetectors.__new__(CellDetectors)
    state = pickle.loads(blob)  # noqa: S301 - part of our own checkpoint
    cell._pickled = blob
    if isinstance(state, dict):  # a state version 5 wrote: the attributes
        cell.__dict__.update(state)
        cell.windows = deque(state["windows"], maxlen=WINDOWS_KEPT)
        cell._pickled = None
        return cell
    inputs, error, count, updates, windows, last_window, detections = state
    cell.inputs = ChangeDetector.from_snapshot(inputs, _SUITE_TYPES)
    cell.error = LevelShiftDetector.from_snapshot(error)
    cell.windows = deque(
        zip(expand_indices(updates, count), expand_indices(windows, count), strict=True),
        maxlen=WINDOWS_KEPT,
    )
    cell.last_window, cell.detections = last_window, detections
    return cell


def _centre(detector: LevelShiftDetector) -> float | None:
    """Median of the values the detector kept since the change (None: none yet)."""
    return detector.reference.stats()[0] if len(detector.reference) else None


def _reference(detector: OnlineDetector) -> dict[str, Any]:
    """The detector's reference centre and scale (empty before it has one)."""
    reference = getattr(detector, "reference", None)
    if reference is None or not reference.ready:
        return {}
    centre, scale = reference.stats()
    return {"centre": centre, "scale": scale, "h": getattr(detector, "h", None)}


@dataclass
class FieldDrift:
    """The cells of one field: their detectors, activity and recent detections."""

    cells: dict[str, CellDetectors] = field(default_factory=dict)
    #: cell -> window index of its last detection
    detected: dict[str, int] = field(default_factory=dict)
    drifting: bool = False
    share: float | None = None
    active: int = 0
    detecting: int = 0
    detections: int = 0
    field_detections: int = 0
    last_field_window: int | None = None


class NetworkDrift:
    """Per cell x field detectors and the per-field aggregate over cells (see module doc)."""

    def __init__(
        self,
        *,
        cell_share: float = DEFAULT_CELL_SHARE,
        recent_windows: int = DEFAULT_RECENT_WINDOWS,
        min_cells: int = DEFAULT_MIN_CELLS,
        forget_windows: int = 1440,
        detectors: DetectorParams | None = None,
    ) -> None:
        if not 0 < cell_share <= 1:
            raise ValueError("cell_share must be in (0, 1]")
        if recent_windows < 1 or min_cells < 1 or forget_windows < recent_windows:
            raise ValueError("need recent_windows >= 1, min_cells >= 1, forget >= recent")
        self.cell_share = float(cell_share)
        self.recent_windows = int(recent_windows)
        self.min_cells = int(min_cells)
        self.forget_windows = int(forget_windows)
        self.detectors = detectors or DetectorParams()
        self.fields: dict[str, FieldDrift] = {}

    def observe(
        self, cell_id: str, field_name: str, window: int, value: float | None,
        abs_error: float | None,
    ) -> list[Detection]:  # fmt: skip
        """One closed window of a cell: the cell's detections for ``field_name``."""
        drift = self.fields.setdefault(field_name, FieldDrift())
        cell = drift.cells.get(cell_id)
        if cell is None:
            cell = drift.cells[cell_id] = CellDetectors(self.detectors)
        found = cell.update(window, value, abs_error)
        if not found:
            return []
        drift.detected[cell_id] = window
        drift.detections += len(found)
        return [
            Detection(
                detector=name,
                statistic=DETECTORS[name],
                value=float(x),
                threshold=None,
                evidence={"cell_id": cell_id, "field": field_name, "window": window, **evidence},
            )
            for name, x, evidence in found
        ]

    def close_window(self, field_name: str, window: int) -> Detection | None:
        """All cells of ``window`` were observed: update the field's share of detecting cells;
        the ``cell_share`` detection when the field starts drifting."""
        drift = self.fields.get(field_name)
        if drift is None:
            return None
        recent = window - self.recent_windows
        gone = window - self.forget_windows
        for cell_id in [c for c, d in drift.cells.items() if (d.last_window or 0) <= gone]:
            del drift.cells[cell_id]
        active = sum(1 for d in drift.cells.values() if (d.last_window or 0) > recent)
        for cell_id in [c for c, w in drift.detected.items() if w <= recent]:
            del drift.detected[cell_id]
        detecting = len(drift.detected)
        share = detecting / active if active else 0.0
        drift.share, drift.active, drift.detecting = share, active, detecting
        over = detecting >= self.min_cells and share >= self.cell_share
        if not over:
            drift.drifting = False
            return None
        if drift.drifting:
            return None
        drift.drifting = True
        drift.field_detections += 1
        drift.last_field_window = window
        return Detection(
            detector="cell_share",
            statistic=DETECTORS["cell_share"],
            value=share,
            threshold=self.cell_share,
            evidence={
                "field": field_name,
                "window": window,
                "share": share,
                "active_cells": active,
                "detecting_cells": detecting,
                "cells": sorted(drift.detected)[:50],
                "recent_windows": self.recent_windows,
                "min_cells": self.min_cells,
            },
        )

    def params(self) -> dict[str, Any]:
        """The aggregate's and the detectors' parameters (for reports)."""
        return {
            "cell_share": self.cell_share,
            "recent_windows": self.recent_windows,
            "min_cells": self.min_cells,
            "forget_windows": self.forget_windows,
            **asdict(self.detectors),
        }

    def statistics(self, field_name: str) -> dict[str, Any]:
        """Plain statistics of one field (for ``stream_statistics``)."""
        drift = self.fields.get(field_name, FieldDrift())
        return {
            "cells": len(drift.cells),
            "active_cells": drift.active,
            "detecting_cells": drift.detecting,
            "share": drift.share,
            "cell_share_threshold": self.cell_share,
            "drifting": drift.drifting,
            "detections": drift.detections,
            "field_detections": drift.field_detections,
            "last_field_window": drift.last_field_window,
            "recent_detections": dict(sorted(drift.detected.items())[:50]),
        }

    def cell_statistics(self, field_name: str, cell_id: str) -> dict[str, Any] | None:
        drift = self.fields.get(field_name)
        cell = drift.cells.get(cell_id) if drift else None
        return cell.state() if cell else None
