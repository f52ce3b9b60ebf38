"""Online change detectors on one univariate series: level shifts and variance changes.

Each detector sees every point once, in order, keeps bounded state and is a plain picklable
object (checkpointed with the stream state). The shape follows River's ``DriftDetector``:
``update(x)`` feeds one value and returns whether a change was detected at that point, the
``drift_detected`` property repeats it, and ``change_point`` gives the index (0-based count of
updates, missing values included) where the detected change is estimated to have started.
Missing values (``None``, NaN, +-inf) are skipped: they advance the index and nothing else.

Reference (:class:`RobustReference`)
    The last ``window`` finite values. Centre = median, scale = 1.4826 x MAD (the normal
    standard deviation for Gaussian data, insensitive to a few outliers), floored at
    ``min_scale_ratio`` x |median| and ``min_scale`` so a flat stretch does not make every
    wiggle infinite. The standardised value is ``z = (x - centre) / scale`` clipped to
    ``+-clip``, so one wild point moves a CUSUM by at most ``clip``. The reference follows the
    series slowly (a median over ``window`` points moves only once half of them have moved),
    and is rebuilt after a detection from the points since the estimated change.

Level (:class:`LevelShiftDetector`): two-sided CUSUM (Page 1954) on ``z``::

    S+ = max(0, S+ + z - k)        S- = max(0, S- - z - k)

alarm when either exceeds ``h``. ``k`` is half the smallest shift (in reference scales) worth
detecting; ``h`` trades delay against false alarms (``k=0.5, h=5`` gives an in-control
average run length of ~465 points on Gaussian noise and detects a 2-scale shift in ~4 points).
The change is estimated to start just after the last time the alarming sum was zero.

Variance (:class:`VarianceShiftDetector`): two one-sided CUSUMs of the Gaussian log-likelihood
ratio of ``z`` for a scale multiplied by ``ratio`` (up) or divided by it (down)::

    l_up   = -log(r) + z^2 / 2 * (1 - 1 / r^2)
    l_down =  log(r) - z^2 / 2 * (r^2 - 1)

each accumulated as ``S = max(0, S + l)`` and compared with ``h``.

After a detection a detector re-learns its reference (it cannot fire again before it has
``min_reference`` points of the new regime), so a persistent shift is one detection, not a
storm. These CUSUMs react within a few points but assume a stationary regime between changes:
on trending or wandering series (random walks, growth curves) they fire again and again (on
the TCPD benchmark they score below the no-detection baseline), so the default suite
(:mod:`ml.drift.suite`) uses the segment test of :mod:`ml.drift.segment` instead; they remain
for stationary signals (error rates, residuals) where a fast reaction matters.
"""

from __future__ import annotations

import copyreg
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from typing import Any

__all__ = [
    "LevelShiftDetector",
    "OnlineDetector",
    "RobustReference",
    "VarianceShiftDetector",
    "compact_indices",
    "expand_indices",
    "is_missing",
]

_MAD_TO_SD = 1.4826


def compact_indices(indices: tuple[int, ...]) -> int | tuple[int, ...]:
    """Increasing indices as the first one when they are consecutive (the usual case: it
    pickles as one number), else as they are; :func:`expand_indices` reverses it."""
    if len(indices) > 1 and indices[-1] - indices[0] == len(indices) - 1:
        return indices[0]
    return indices


def expand_indices(compact: int | tuple[int, ...], count: int) -> Sequence[int]:
    """The ``count`` indices :func:`compact_indices` made ``compact`` of."""
    return range(compact, compact + count) if type(compact) is int else compact


def is_missing(x: float | None) -> bool:
    """``None``, NaN and infinities are missing values."""
    return x is None or not math.isfinite(x)


class RobustReference:
    """Median / MAD of the last ``window`` values, with floors on the scale (see module doc)."""

    def __init__(
        self,
        window: int = 24,
        min_points: int = 8,
        min_scale: float = 1e-9,
        min_scale_ratio: float = 1e-3,
    ) -> None:
        if window < 2 or not 2 <= min_points <= window:
            raise ValueError("need window >= 2 and 2 <= min_points <= window")
        self.window = int(window)
        self.min_points = int(min_points)
        self.min_scale = float(min_scale)
        self.min_scale_ratio = float(min_scale_ratio)
        #: the kept values and their indices, oldest first (two deques: cheap to copy out)
        self._values: deque[float] = deque(maxlen=self.window)
        self._indices: deque[int] = deque(maxlen=self.window)
        self._cache: tuple[float, float] | None = None

    def __len__(self) -> int:
        return len(self._values)

    def snapshot(self) -> tuple[Any, ...]:
        """The reference as a flat tuple of plain numbers (:meth:`from_snapshot` reverses it):
        checkpoints hold thousands of references, and objects with attribute names pickle
        several times slower (a deque goes through ``copyreg._slotnames`` every time)."""
        indices = self._indices
        if indices and indices[-1] - indices[0] == len(indices) - 1:
            first: int | tuple[int, ...] = indices[0]  # consecutive: the first is enough
        else:
            first = tuple(indices)
        return (
            self.window,
            self.min_points,
            self.min_scale,
            self.min_scale_ratio,
            first,
            tuple(self._values),
            self._cache,
        )

    def same_as(self, other: object) -> bool:
        """Whether ``other`` is a reference of the same parameters and values (the cached
        statistics, a function of them, aside)."""
        if type(other) is not type(self):
            return False
        assert isinstance(other, RobustReference)
        return (
            self._values == other._values
            and self._indices == other._indices
            and (self.window, self.min_points, self.min_scale, self.min_scale_ratio)
            == (other.window, other.min_points, other.min_scale, other.min_scale_ratio)
        )

    @classmethod
    def from_snapshot(cls, snapshot: tuple[Any, ...]) -> RobustReference:
        window, min_points, min_scale, min_scale_ratio, indices, values, cache = snapshot
        ref = cls.__new__(cls)
        ref.window, ref.min_points = window, min_points
        ref.min_scale, ref.min_scale_ratio = min_scale, min_scale_ratio
        ref._values = deque(values, maxlen=window)
        ref._indices = deque(expand_indices(indices, len(values)), maxlen=window)
        ref._cache = cache
        return ref

    def __reduce__(self) -> tuple[Any, ...]:
        return (_load_reference, (type(self), self.snapshot()))

    def __setstate__(self, state: dict[str, Any]) -> None:
        # states pickled before ``__reduce__`` (a dict, ``_values`` a list of (index, value))
        self.__dict__.update(state)
        pairs = state["_values"]
        self._values = deque((x for _, x in pairs), maxlen=self.window)
        self._indices = deque((i for i, _ in pairs), maxlen=self.window)

    @property
    def ready(self) -> bool:
        return len(self._values) >= self.min_points

    def add(self, index: int, x: float) -> None:
        self._values.append(x)
        self._indices.append(index)
        self._cache = None

    def clear(self, keep_from: int | None = None) -> None:
        """Forget the values; with ``keep_from``, keep those at index >= ``keep_from``."""
        kept = [
            (i, x)
            for i, x in zip(self._indices, self._values, strict=True)
            if keep_from is not None and i >= keep_from
        ]
        self._values.clear()
        self._indices.clear()
        self._values.extend(x for _, x in kept)
        self._indices.extend(i for i, _ in kept)
        self._cache = None

    def stats(self) -> tuple[float, float]:
        """``(centre, scale)``; needs at least one value."""
        if self._cache is None:
            xs = sorted(self._values)
            centre = _median(xs)
            mad = _median(sorted(abs(x - centre) for x in xs))
            floor = max(self.min_scale, self.min_scale_ratio * abs(centre))
            self._cache = (centre, max(_MAD_TO_SD * mad, floor))
        return self._cache


def _load_reference(cls: type[RobustReference], snapshot: tuple[Any, ...]) -> RobustReference:
    return cls.from_snapshot(snapshot)


def _median(sorted_xs: list[float]) -> float:
    n = len(sorted_xs)
    mid = n // 2
    return sorted_xs[mid] if n % 2 else 0.5 * (sorted_xs[mid - 1] + sorted_xs[mid])


class OnlineDetector(ABC):
    """One online detector: ``update(x) -> bool``, ``drift_detected``, ``change_point``."""

    #: name used in :class:`ChangePoint` and detections
    name: str = "detector"

    def __init__(self) -> None:
        self.n = 0
        self._drift_detected = False
        self.change_point: int | None = None

    @property
    def drift_detected(self) -> bool:
        """Whether a change was detected at the last update."""
        return self._drift_detected

    def update(self, x: float | None) -> bool:
        """Feed the next value (``None``/NaN skipped); ``True`` when a change is detected."""
        index = self.n
        self.n += 1
        self._drift_detected = False
        if x is None or not math.isfinite(x):  # is_missing, inlined (every update)
            return False
        start = self._step(index, float(x))
        if start is not None:
            self._drift_detected = True
            self.change_point = start
        return self._drift_detected

    @abstractmethod
    def _step(self, index: int, x: float) -> int | None:
        """Consume one finite value; return the estimated start of a detected change."""

    @abstractmethod
    def restart(self, keep_from: int | None = None) -> None:
        """Forget the regime (re-learn); keep reference values from index ``keep_from`` on."""

    def state(self) -> dict[str, Any]:
        """Current statistics, for monitoring."""
        return {"n": self.n, "change_point": self.change_point}

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The parameters the detector was built with."""


#: positions of the reference and the sums' lists in ``_CusumDetector._FIELDS``
_REFERENCE, _ZERO_AT, _SUMS = 5, 6, 7


def _load_detector(cls: type[_CusumDetector], snapshot: tuple[Any, ...]) -> _CusumDetector:
    return cls.from_snapshot(snapshot)


class _CusumDetector(OnlineDetector):
    """Shared part: a robust reference, standardisation, re-learning after a detection.

    :meth:`snapshot` is the detector as a flat tuple of plain values (its attributes in
    ``_FIELDS`` order, without their names, the reference's own snapshot in place of the
    reference): a checkpoint holds thousands of detectors. It pickles that way too."""

    _FIELDS: tuple[str, ...] = (
        "n", "_drift_detected", "change_point", "h", "clip", "reference", "_zero_at", "_sums",
        "alarm_statistic", "alarm_side",
    )  # fmt: skip

    def __init__(
        self,
        *,
        h: float,
        window: int,
        min_reference: int,
        clip: float,
        min_scale_ratio: float,
    ) -> None:
        super().__init__()
        if h <= 0 or clip <= 0:
            raise ValueError("h and clip must be > 0")
        self.h = float(h)
        self.clip = float(clip)
        self.reference = RobustReference(window, min_reference, min_scale_ratio=min_scale_ratio)
        self._zero_at: list[int] = []  # per sum: index of the last point where it was zero
        self._sums: list[float] = []
        #: the CUSUM that crossed ``h`` at the last detection (its value, which side)
        self.alarm_statistic: float | None = None
        self.alarm_side: int | None = None

    def snapshot(self, earlier: Sequence[Any] = ()) -> tuple[Any, ...]:
        """The detector as a flat tuple (see the class doc); ValueError for an instance with
        attributes ``_FIELDS`` does not name (a subclass that did not list them).

        ``earlier``: detectors snapshotted before this one in the same tuple (a suite's): when
        one of their references holds the same values (detectors fed the same series usually
        do), its position replaces this reference's snapshot (:meth:`from_snapshot` with the
        same detectors restores a copy)."""
        state = self.__dict__
        if len(state) != len(self._FIELDS):
            raise ValueError(f"{type(self).__name__} has attributes _FIELDS does not name")
        values = list(map(state.__getitem__, self._FIELDS))
        ref = values[_REFERENCE]
        for i, other in enumerate(earlier):
            if ref.same_as(getattr(other, "reference", None)):
                values[_REFERENCE] = i
                break
        else:
            values[_REFERENCE] = ref.snapshot()
        values[_ZERO_AT], values[_SUMS] = tuple(values[_ZERO_AT]), tuple(values[_SUMS])
        return tuple(values)

    @classmethod
    def from_snapshot(
        cls, snapshot: tuple[Any, ...], earlier: Sequence[Any] = ()
    ) -> _CusumDetector:
        detector = cls.__new__(cls)
        state = dict(zip(cls._FIELDS, snapshot, strict=True))
        ref = state["reference"]
        if type(ref) is int:  # the same values as that earlier detector's reference
            ref = earlier[ref].reference.snapshot()
        state["reference"] = RobustReference.from_snapshot(ref)
        state["_zero_at"], state["_sums"] = list(state["_zero_at"]), list(state["_sums"])
        detector.__dict__.update(state)
        return detector

    def __reduce__(self) -> tuple[Any, ...]:
        try:
            return (_load_detector, (type(self), self.snapshot()))
        except ValueError:
            return (copyreg.__newobj__, (type(self),), self.__dict__.copy())

    assert (_FIELDS[_REFERENCE], _FIELDS[_ZERO_AT], _FIELDS[_SUMS]) == (
        "reference", "_zero_at", "_sums",
    )  # fmt: skip

    def _common_params(self) -> dict[str, Any]:
        ref = self.reference
        return {
            "h": self.h,
            "window": ref.window,
            "min_reference": ref.min_points,
            "clip": self.clip,
            "min_scale_ratio": ref.min_scale_ratio,
        }

    def _standardise(self, x: float) -> float:
        centre, scale = self.reference.stats()
        return max(-self.clip, min(self.clip, (x - centre) / scale))

    def _increments(self, z: float) -> list[float]:
        raise NotImplementedError

    def _step(self, index: int, x: float) -> int | None:
        ref = self.reference
        if len(ref._values) < ref.min_points:  # not ready: learn the reference
            ref.add(index, x)
            if self._sums:  # zeros since the last reset: only the positions move
                self._zero_at = [index] * len(self._sums)
            else:
                self._reset_sums(index)
            return None
        z = self._standardise(x)
        ref.add(index, x)
        fired: int | None = None
        for i, inc in enumerate(self._increments(z)):
            s = self._sums[i] + inc
            if s <= 0.0:
                self._sums[i], self._zero_at[i] = 0.0, index
            else:
                self._sums[i] = s
                if s > self.h and fired is None:
                    fired = i
        if fired is None:
            return None
        self.alarm_statistic, self.alarm_side = self._sums[fired], fired
        start = self._zero_at[fired] + 1
        self.restart(keep_from=start)
        return start

    def _reset_sums(self, index: int) -> None:
        k = len(self._sums) or len(self._increments(0.0))  # the same count every time
        self._sums = [0.0] * k
        self._zero_at = [index] * k

    def restart(self, keep_from: int | None = None) -> None:
        self.reference.clear(keep_from)
        self._reset_sums(self.n - 1)

    def state(self) -> dict[str, Any]:
        out = super().state()
        if self.reference.ready:
            centre, scale = self.reference.stats()
            out.update(centre=centre, scale=scale)
        out.update(sums=list(self._sums), h=self.h, reference_n=len(self.reference))
        return out


class LevelShiftDetector(_CusumDetector):
    """Two-sided CUSUM on robustly standardised values (see module doc)."""

    name = "level"
    _FIELDS = (*_CusumDetector._FIELDS, "k")

    def __init__(
        self,
        *,
        k: float = 0.5,
        h: float = 8.0,
        window: int = 24,
        min_reference: int = 16,
        clip: float = 4.0,
        min_scale_ratio: float = 1e-3,
    ) -> None:
        if k < 0:
            raise ValueError("k must be >= 0")
        self.k = float(k)
        super().__init__(
            h=h,
            window=window,
            min_reference=min_reference,
            clip=clip,
            min_scale_ratio=min_scale_ratio,
        )

    def _increments(self, z: float) -> list[float]:
        return [z - self.k, -z - self.k]

    def params(self) -> dict[str, Any]:
        return {"k": self.k, **self._common_params()}


class VarianceShiftDetector(_CusumDetector):
    """Two one-sided CUSUMs of the log-likelihood ratio for a scale change (see module doc)."""

    name = "variance"
    _FIELDS = (*_CusumDetector._FIELDS, "ratio", "_log_r")

    def __init__(
        self,
        *,
        ratio: float = 2.0,
        h: float = 14.0,
        window: int = 24,
        min_reference: int = 16,
        clip: float = 6.0,
        min_scale_ratio: float = 1e-3,
    ) -> None:
        if ratio <= 1:
            raise ValueError("ratio must be > 1")
        self.ratio = float(ratio)
        self._log_r = math.log(ratio)
        super().__init__(
            h=h,
            window=window,
            min_reference=min_reference,
            clip=clip,
            min_scale_ratio=min_scale_ratio,
        )

    def _increments(self, z: float) -> list[float]:
        r2 = self.ratio * self.ratio
        half = 0.5 * z * z
        return [-self._log_r + half * (1.0 - 1.0 / r2), self._log_r - half * (r2 - 1.0)]

    def params(self) -> dict[str, Any]:
        return {"ratio": self.ratio, **self._common_params()}
