"""Drift statistics for one scope: input shift, error drift (ADWIN / Page-Hinkley), latency.

A :class:`DriftMonitor` is fed one observation at a time (event order) and returns the
:class:`Detection` objects that fired at that update. It is a plain picklable object so its state
can be checkpointed with the model state and the consumer offset.

Input shift statistic
---------------------
For each input field the monitor keeps a rolling window of the last ``window`` values and compares
its mean with the reference (training-window) mean of the active model. Under "no drift" both
means estimate the same level, and their difference has standard error::

    se = ref_std * sqrt(1 / n_window + 1 / n_reference)

(the reference mean is itself an estimate; ignoring that makes a small reference a permanent
bias). The shift statistic is ``z = (window_mean - ref_mean) / se``. Because ``ref_std`` comes from
``n_reference`` points, ``z`` is compared with the Student-t quantile (``n_reference - 1`` degrees
of freedom) that has the same two-sided tail probability as ``sigma`` standard deviations of a
normal: with ``sigma=3`` and a 12-point reference the critical ``|z|`` is ~4.26, with a very large
reference it tends to 3.

A full window of 12 monthly points dilutes a recent level change (after k new points only k/12 of
it shows), so two scales are tested: the full window and a short one of the last
``max(1, window // 4)`` points; the tail probability is split between them (Bonferroni). A field
is out of bounds when either scale is. With the defaults (``sigma=3``, ``window=12``, reference
from 12 points) a Poisson(50) -> Poisson(100) level shift is detected within 1-3 observations,
and a stationary Poisson(50) series of 500 steps raises no detection in ~85% of runs: the test
controls the per-step false-alarm rate (~0.27%), not the rate over an unbounded horizon, and the
re-arm rule below keeps one excursion to one detection. The long scale is tested only once the
window holds at least ``min_window`` points; fields whose reference has fewer than
:data:`MIN_REFERENCE_N` points are not tested; a zero reference std is floored at ``min_std``.

Without a reference (or for a field the reference lacks) the monitor uses that field's first
``window`` observations as its reference: a freshly started monitor cannot detect a shift before
it has seen one window.

Re-arming: a field fires once when it goes out of bounds and fires again only after it has come
back within bounds (same for latency), so a persistent shift is one detection, not a storm.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice
from statistics import NormalDist
from typing import Any, Literal

from river.drift import ADWIN, PageHinkley

__all__ = [
    "DEFAULT_ADWIN_PARAMS",
    "DEFAULT_PAGE_HINKLEY_PARAMS",
    "MIN_REFERENCE_N",
    "Detection",
    "DriftMonitor",
    "ReferenceStats",
    "Reference",
    "critical_z",
]

#: Fields whose reference has fewer points than this are not tested for input shift.
MIN_REFERENCE_N = 5
#: ADWIN checks for a cut at every update (``clock=1``): monthly streams are short and cheap.
DEFAULT_ADWIN_PARAMS: Mapping[str, Any] = {"delta": 0.002, "clock": 1}
#: Page-Hinkley watches increases of the error only; ``threshold`` is in the error's units.
DEFAULT_PAGE_HINKLEY_PARAMS: Mapping[str, Any] = {"mode": "up"}

ErrorDetectorName = Literal["adwin", "page_hinkley"]


@dataclass(frozen=True)
class Detection:
    """One detection that fired at an update, with what tripped it."""

    detector: str  # "input_shift", "adwin", "page_hinkley", "latency"
    statistic: str  # input field name, "abs_error", "avg_latency_s"
    value: float
    threshold: float | None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReferenceStats:
    """Mean, sample standard deviation and count of one input field."""

    mean: float
    std: float
    n: int

    @classmethod
    def from_values(cls, values: Sequence[float]) -> ReferenceStats:
        xs = [float(v) for v in values if v is not None and math.isfinite(v)]
        if not xs:
            raise ValueError("no finite values")
        mean = math.fsum(xs) / len(xs)
        var = math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0
        return cls(mean=mean, std=math.sqrt(var), n=len(xs))


@dataclass(frozen=True)
class Reference:
    """Per-field statistics of the active model's reference (training) window."""

    fields: Mapping[str, ReferenceStats]

    @classmethod
    def from_values(cls, values: Mapping[str, Sequence[float]]) -> Reference:
        """Build from raw values per field; fields without any finite value are left out."""
        out: dict[str, ReferenceStats] = {}
        for name, xs in values.items():
            try:
                out[name] = ReferenceStats.from_values(xs)
            except ValueError:
                continue
        return cls(fields=out)

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, float]]) -> Reference:
        return cls(
            fields={
                k: ReferenceStats(mean=float(v["mean"]), std=float(v["std"]), n=int(v["n"]))
                for k, v in data.items()
            }
        )

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {k: asdict(v) for k, v in self.fields.items()}


def critical_z(sigma: float, reference_n: int, tests: int = 1) -> float:
    """Critical ``|z|`` with the two-sided tail of ``sigma`` normal SDs split over ``tests``.

    Student-t quantile with ``reference_n - 1`` degrees of freedom (Cornish-Fisher expansion,
    Abramowitz & Stegun 26.7.5; accurate to ~1% at 4 degrees of freedom, better above).
    """
    tail = 2.0 * (1.0 - NormalDist().cdf(sigma)) / tests
    z = NormalDist().inv_cdf(1.0 - tail / 2.0)
    v = max(reference_n - 1, 1)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / v + g2 / v**2 + g3 / v**3 + g4 / v**4


def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
    n = len(xs)
    mean = math.fsum(xs) / n
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var)


class DriftMonitor:
    """Drift state of ONE scope: rolling inputs vs reference, error detector, latency."""

    def __init__(
        self,
        *,
        sigma: float = 3.0,
        window: int = 12,
        min_window: int | None = None,
        min_std: float = 1e-9,
        error_detector: ErrorDetectorName = "adwin",
        error_params: Mapping[str, Any] | None = None,
        error_direction: Literal["up", "both"] = "up",
        max_latency_seconds: float = 1.0,
        latency_window: int = 100,
        min_latency_n: int = 10,
        reference: Reference | None = None,
    ) -> None:
        if sigma <= 0:
            raise ValueError("sigma must be > 0")
        if window < MIN_REFERENCE_N:
            raise ValueError(f"window must be >= {MIN_REFERENCE_N}")
        if error_detector not in ("adwin", "page_hinkley"):
            raise ValueError(f"unknown error detector {error_detector!r}")
        if latency_window < 1 or max_latency_seconds <= 0:
            raise ValueError("latency_window must be >= 1 and max_latency_seconds > 0")
        self.sigma = float(sigma)
        self.window = int(window)
        self.min_window = int(min_window) if min_window is not None else max(2, window // 2)
        self.short_window = max(1, window // 4)
        self.min_std = float(min_std)
        self.error_detector = error_detector
        defaults = (
            DEFAULT_ADWIN_PARAMS if error_detector == "adwin" else DEFAULT_PAGE_HINKLEY_PARAMS
        )
        self.error_params: dict[str, Any] = {**defaults, **(error_params or {})}
        self.error_direction = error_direction
        self.max_latency_seconds = float(max_latency_seconds)
        self.latency_window = int(latency_window)
        self.min_latency_n = max(1, min(int(min_latency_n), self.latency_window))

        self.n = 0
        self._windows: dict[str, deque[float]] = {}
        self._reference: dict[str, ReferenceStats] = {}
        self._pending_ref: dict[str, list[float]] = {}
        self._shift_out: set[str] = set()
        self._critical: dict[int, float] = {}
        self._errors: deque[float] = deque(maxlen=self.window)
        self._error_n = 0
        self._error_detections = 0
        self._detector = self._new_detector()
        self._latency: deque[float] = deque(maxlen=self.latency_window)
        self._latency_out = False
        self.set_reference(reference)

    # -- public API -------------------------------------------------------------------------

    @property
    def reference(self) -> Reference:
        return Reference(fields=dict(self._reference))

    def set_reference(self, reference: Reference | None) -> None:
        """Use a new reference (e.g. after a promotion); ``None`` re-learns it from new data.

        Resets the error detector and the input-shift re-arm state; rolling windows (data) and
        the latency state (serving, not model) are kept.
        """
        self._reference = dict(reference.fields) if reference is not None else {}
        self._pending_ref = {}
        self._shift_out = set()
        self._detector = self._new_detector()
        self._errors.clear()

    def update(
        self,
        inputs: Mapping[str, float],
        *,
        abs_error: float | None = None,
        latency_seconds: float | None = None,
    ) -> list[Detection]:
        """Feed one observation; return the detections that fired at this update."""
        self.n += 1
        detections: list[Detection] = []
        for name, raw in inputs.items():
            if raw is None or not math.isfinite(raw):
                continue
            detection = self._update_field(name, float(raw))
            if detection is not None:
                detections.append(detection)
        if abs_error is not None and math.isfinite(abs_error):
            detection = self._update_error(abs(float(abs_error)))
            if detection is not None:
                detections.append(detection)
        if latency_seconds is not None and math.isfinite(latency_seconds):
            detection = self._update_latency(float(latency_seconds))
            if detection is not None:
                detections.append(detection)
        return detections

    def stats(self) -> dict[str, Any]:
        """Current state for the API: rolling stats per field, reference, error, latency."""
        fields: dict[str, Any] = {}
        for name in sorted(set(self._windows) | set(self._reference)):
            xs = self._windows.get(name, ())
            mean, std = _mean_std(xs) if xs else (None, None)
            ref = self._reference.get(name)
            test = self._shift_test(name) if ref is not None else None
            fields[name] = {
                "mean": mean,
                "std": std,
                "n": len(xs),
                "reference": asdict(ref) if ref is not None else None,
                "reference_pending_n": len(self._pending_ref.get(name, ())),
                "z": test["z"] if test else None,
                "critical_z": test["critical_z"] if test else None,
                "out_of_bounds": name in self._shift_out,
            }
        latency_avg = math.fsum(self._latency) / len(self._latency) if self._latency else None
        return {
            "n": self.n,
            "sigma": self.sigma,
            "window": self.window,
            "fields": fields,
            "error": {
                "detector": self.error_detector,
                "params": dict(self.error_params),
                "n": self._error_n,
                "recent_mean_abs_error": (
                    math.fsum(self._errors) / len(self._errors) if self._errors else None
                ),
                "detections": self._error_detections,
            },
            "latency": {
                "avg_s": latency_avg,
                "n": len(self._latency),
                "max_s": self.max_latency_seconds,
                "over": self._latency_out,
            },
        }

    # -- internals --------------------------------------------------------------------------

    def _new_detector(self) -> ADWIN | PageHinkley:
        if self.error_detector == "adwin":
            return ADWIN(**self.error_params)
        return PageHinkley(**self.error_params)

    def _critical_z(self, reference_n: int) -> float:
        value = self._critical.get(reference_n)
        if value is None:
            value = critical_z(self.sigma, reference_n, tests=2)
            if len(self._critical) > 64:
                self._critical.clear()
            self._critical[reference_n] = value
        return value

    def _update_field(self, name: str, x: float) -> Detection | None:
        win = self._windows.get(name)
        if win is None:
            win = self._windows[name] = deque(maxlen=self.window)
        win.append(x)
        if name not in self._reference:
            pending = self._pending_ref.setdefault(name, [])
            pending.append(x)
            if len(pending) >= self.window:
                self._reference[name] = ReferenceStats.from_values(pending)
                del self._pending_ref[name]
            return None
        test = self._shift_test(name)
        if test is None or not test["out"]:
            self._shift_out.discard(name)
            return None
        if name in self._shift_out:
            return None
        self._shift_out.add(name)
        mean, w_std = _mean_std(list(self._windows[name])[-test["window_n"] :])
        test.update(window_mean=mean, window_std=w_std)
        return Detection(
            detector="input_shift",
            statistic=name,
            value=test["z"],
            threshold=test["critical_z"],
            evidence=test,
        )

    def _shift_test(self, name: str) -> dict[str, Any] | None:
        """Two-scale z test of the rolling mean against the reference (see module docstring)."""
        ref = self._reference[name]
        win = self._windows.get(name)
        if ref.n < MIN_REFERENCE_N or not win:
            return None
        n = len(win)
        scales = [self.short_window] if n >= self.short_window else []
        if n >= self.min_window:
            scales.append(n)
        if not scales:
            return None
        std = max(ref.std, self.min_std)
        best_z, best_scale = 0.0, 0
        for scale in scales:
            total = sum(win) if scale == n else sum(islice(reversed(win), scale))
            z = (total / scale - ref.mean) / (std * math.sqrt(1.0 / scale + 1.0 / ref.n))
            if best_scale == 0 or abs(z) > abs(best_z):
                best_z, best_scale = z, scale
        crit = self._critical_z(ref.n)
        return {
            "z": best_z,
            "critical_z": crit,
            "out": abs(best_z) > crit,
            "direction": "up" if best_z > 0 else "down",
            "window_n": best_scale,
            "reference_mean": ref.mean,
            "reference_std": ref.std,
            "reference_n": ref.n,
            "sigma": self.sigma,
        }

    def _update_error(self, err: float) -> Detection | None:
        self._error_n += 1
        self._errors.append(err)
        det = self._detector
        before = det.estimation if isinstance(det, ADWIN) else None
        det.update(err)
        if not det.drift_detected:
            return None
        recent = math.fsum(self._errors) / len(self._errors)
        evidence: dict[str, Any] = {"n_errors": self._error_n, "params": dict(self.error_params)}
        if isinstance(det, ADWIN):
            after = det.estimation
            evidence.update(mean_before=before, mean_after=after, width=det.width)
            if self.error_direction == "up" and after <= before:
                return None
            value = after
        else:
            value = recent
        evidence["recent_mean_abs_error"] = recent
        self._error_detections += 1
        threshold = getattr(det, "threshold", None) if isinstance(det, PageHinkley) else None
        return Detection(
            detector=self.error_detector,
            statistic="abs_error",
            value=float(value),
            threshold=float(threshold) if threshold is not None else None,
            evidence=evidence,
        )

    def _update_latency(self, seconds: float) -> Detection | None:
        self._latency.append(seconds)
        if len(self._latency) < self.min_latency_n:
            return None
        avg = math.fsum(self._latency) / len(self._latency)
        if avg <= self.max_latency_seconds:
            self._latency_out = False
            return None
        if self._latency_out:
            return None
        self._latency_out = True
        return Detection(
            detector="latency",
            statistic="avg_latency_s",
            value=avg,
            threshold=self.max_latency_seconds,
            evidence={"n": len(self._latency), "max_s": max(self._latency), "last_s": seconds},
        )
