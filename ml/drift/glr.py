"""Windowed likelihood-ratio test for one mean change in the current segment (online AMOC).

The detector keeps the values of the current segment (since the last detected change, at most
``max_window`` of them: bounded memory). After each new value it asks the offline "at most one
change" question of that segment: for every split ``tau`` leaving at least ``min_size`` points
on each side, the Gaussian log-likelihood ratio of "mean changes at ``tau``" against "one
mean" (known variance ``sigma^2``) is::

    2 log LR(tau) = (S_tau - tau / n * S_n)^2 * n / (tau * (n - tau)) / sigma^2

(``S_tau`` the sum of the first ``tau`` values). A change is detected when the largest of them
exceeds ``penalty * log(n)`` (a BIC-like penalty growing with the segment length, so a long
quiet segment does not raise the false-alarm rate); the change is placed at the maximising
``tau`` and the segment restarts there: the points before ``tau`` are forgotten and those after
it form the new segment, so the next test starts with evidence about the new regime already in
hand, and one shift gives one detection.

``sigma`` is estimated robustly from first differences, ``1.4826 * MAD(diff) / sqrt(2)``: a
level shift inside the segment moves one difference only, so it barely inflates the estimate
(a plain standard deviation of the values would swallow the very shift being tested). When
more than half the differences are zero (step-like series), the mean absolute difference is
used instead (``sigma = mean|diff| * sqrt(pi) / 2``), floored at ``min_scale_ratio`` times the
median absolute value.

Cost per update: O(n log n) for the segment of n <= ``max_window`` points.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from ml.drift.detectors import OnlineDetector

__all__ = ["MeanChangeDetector", "diff_scale"]

_MAD_TO_SD = 1.4826


def diff_scale(xs: list[float], min_scale_ratio: float = 1e-3, min_scale: float = 1e-9) -> float:
    """Noise standard deviation estimated from first differences (see module doc)."""
    diffs = sorted(abs(b - a) for a, b in zip(xs, xs[1:], strict=False))
    if not diffs:
        return min_scale
    n = len(diffs)
    mad = diffs[n // 2] if n % 2 else 0.5 * (diffs[n // 2 - 1] + diffs[n // 2])
    scale = _MAD_TO_SD * mad / math.sqrt(2.0)
    if scale <= 0.0:
        scale = math.fsum(diffs) / n * math.sqrt(math.pi) / 2.0
    level = sorted(abs(x) for x in xs)[len(xs) // 2]
    return max(scale, min_scale_ratio * level, min_scale)


class MeanChangeDetector(OnlineDetector):
    """Online "at most one change" test of the mean of the current segment."""

    name = "mean"

    def __init__(
        self,
        *,
        penalty: float = 3.0,
        min_size: int = 5,
        max_window: int = 250,
        min_scale_ratio: float = 1e-3,
        model: str = "meanvar",
    ) -> None:
        super().__init__()
        if model not in ("mean", "meanvar", "trend"):
            raise ValueError("model must be 'mean', 'meanvar' or 'trend'")
        self.model = model
        if penalty <= 0 or min_size < 1 or max_window < 2 * min_size + 1:
            raise ValueError("need penalty > 0, min_size >= 1, max_window > 2 * min_size")
        self.penalty = float(penalty)
        self.min_size = int(min_size)
        self.max_window = int(max_window)
        self.min_scale_ratio = float(min_scale_ratio)
        self._segment: deque[tuple[int, float]] = deque(maxlen=self.max_window)
        self.last_statistic = 0.0

    def params(self) -> dict[str, Any]:
        return {
            "penalty": self.penalty,
            "min_size": self.min_size,
            "max_window": self.max_window,
            "min_scale_ratio": self.min_scale_ratio,
            "model": self.model,
        }

    def restart(self, keep_from: int | None = None) -> None:
        kept = [(i, x) for i, x in self._segment if keep_from is not None and i >= keep_from]
        self._segment.clear()
        self._segment.extend(kept)

    def _step(self, index: int, x: float) -> int | None:
        self._segment.append((index, x))
        n = len(self._segment)
        if n < 2 * self.min_size:
            self.last_statistic = 0.0
            return None
        xs = [v for _, v in self._segment]
        if self.model == "trend":
            best, best_tau = self._trend(xs)
        elif self.model == "meanvar":
            best, best_tau = self._meanvar(xs)
        else:
            best, best_tau = self._mean(xs)
        self.last_statistic = best
        if self.last_statistic <= self.penalty * math.log(n):
            return None
        start = self._segment[best_tau][0]
        self.restart(keep_from=start)
        return start

    def _mean(self, xs: list[float]) -> tuple[float, int]:
        n = len(xs)
        sigma = diff_scale(xs, self.min_scale_ratio)
        total = math.fsum(xs)
        best, best_tau, running = 0.0, 0, 0.0
        for tau in range(1, n - self.min_size + 1):
            running += xs[tau - 1]
            if tau < self.min_size:
                continue
            dev = running - tau / n * total
            stat = dev * dev * n / (tau * (n - tau))
            if stat > best:
                best, best_tau = stat, tau
        return best / (sigma * sigma), best_tau

    def _meanvar(self, xs: list[float]) -> tuple[float, int]:
        n = len(xs)
        shift = xs[0]
        ys = [x - shift for x in xs]
        sq = [y * y for y in ys]
        total, total_sq = math.fsum(ys), math.fsum(sq)
        level = sorted(abs(x) for x in xs)[n // 2]
        floor = max(self.min_scale_ratio * level, 1e-9) ** 2

        def cost(s: float, s2: float, m: int) -> float:
            return m * math.log(max(s2 / m - (s / m) ** 2, floor))

        whole = cost(total, total_sq, n)
        best, best_tau, run, run_sq = 0.0, 0, 0.0, 0.0
        for tau in range(1, n - self.min_size + 1):
            run += ys[tau - 1]
            run_sq += sq[tau - 1]
            if tau < self.min_size:
                continue
            stat = whole - cost(run, run_sq, tau) - cost(total - run, total_sq - run_sq, n - tau)
            if stat > best:
                best, best_tau = stat, tau
        return best, best_tau

    def _trend(self, xs: list[float]) -> tuple[float, int]:
        n = len(xs)
        shift = xs[0]
        level = sorted(abs(x) for x in xs)[n // 2]
        floor = max(self.min_scale_ratio * level, 1e-9) ** 2
        # prefix sums of 1, t, t^2, y, y^2, t*y (t = position in the segment)
        pre = [(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)]
        for t, x in enumerate(xs):
            y = x - shift
            c, st, stt, sy, syy, sty = pre[-1]
            pre.append((c + 1, st + t, stt + t * t, sy + y, syy + y * y, sty + t * y))

        def cost(a: int, b: int) -> float:
            lo, hi = pre[a], pre[b]
            m, st, stt, sy, syy, sty = (hi[i] - lo[i] for i in range(6))
            sxx = stt - st * st / m
            rss = syy - sy * sy / m
            if sxx > 0:
                rss -= (sty - st * sy / m) ** 2 / sxx
            return m * math.log(max(rss / m, floor))

        whole = cost(0, n)
        best, best_tau = 0.0, 0
        for tau in range(self.min_size, n - self.min_size + 1):
            stat = whole - cost(0, tau) - cost(tau, n)
            if stat > best:
                best, best_tau = stat, tau
        return best, best_tau

    def state(self) -> dict[str, Any]:
        out = super().state()
        out.update(segment_n=len(self._segment), statistic=self.last_statistic)
        return out
