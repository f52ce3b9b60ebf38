"""Online penalised likelihood-ratio test for one change in the current segment.

:class:`SegmentChangeDetector` keeps the values of the current segment (since the last
detected change; at most ``max_window`` of them, so memory is bounded) and, after each new
value, asks the offline "at most one change" question of that segment: is it better described
as two pieces split at some ``tau`` than as one? Each piece is modelled (``model``) as

* ``"trend"`` (default): a straight line plus Gaussian noise of its own variance; a change of
  level, of slope or of noise level all raise the statistic, and a steady trend does not;
* ``"meanvar"``: a constant plus noise of its own variance;
* ``"mean"``: a constant plus noise of one variance, estimated robustly from first differences
  (``1.4826 * MAD(diff) / sqrt(2)``, see :func:`diff_scale`).

For the two self-normalising models the statistic is twice the log-likelihood ratio::

    2 log LR(tau) = n log s2(0, n) - tau log s2(0, tau) - (n - tau) log s2(tau, n)

with ``s2(a, b)`` the maximum-likelihood residual variance of the piece (prefix sums make each
split O(1)); pieces have at least ``min_size`` points. A change is detected when the largest
statistic exceeds ``penalty * log(n)`` (a BIC-like penalty growing with the segment length, so
a long quiet segment does not raise the false-alarm rate). The change is placed at the
maximising ``tau`` (estimated from the points seen so far: this is the location reported as
``change_point``) and the segment restarts there: points before ``tau`` are forgotten, those
after it start the new segment. So a shift is detected once, ``min_size`` or more points after
it happened, with its start located precisely.

Residual variances are floored at ``(min_scale_ratio * median |x|)^2``: a run of identical
values (a balance that does not move for a week) would otherwise have a zero variance and an
infinite likelihood. With the default ``min_scale_ratio = 0.01``, variations below ~1% of the
series' level count as noise; for series centred near zero, standardise first.

Cost per update: O(n log n) for a segment of ``n <= max_window`` points (a sort for the
variance floor, then one O(1) evaluation per split).

Defaults (``penalty=16, min_size=8, max_window=250, min_scale_ratio=0.01, model="trend"``) are
one global configuration chosen on the TCPD benchmark (``benchmarks/changepoint_tcpd.py``,
never per series), so the benchmark's figures are in-sample.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Literal

from ml.drift.detectors import OnlineDetector

__all__ = ["SegmentChangeDetector", "diff_scale"]

Model = Literal["trend", "meanvar", "mean"]

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


class SegmentChangeDetector(OnlineDetector):
    """Online "at most one change" test of the current segment (see module doc)."""

    name = "segment"

    def __init__(
        self,
        *,
        penalty: float = 16.0,
        min_size: int = 8,
        max_window: int = 250,
        min_scale_ratio: float = 1e-2,
        model: Model = "trend",
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
        if self.last_statistic <= self.penalty * math.log(n) or best_tau >= n - self.min_size:
            # below the penalty, or best split at the newest allowed position: the change may
            # lie later than that, so wait for more points to place it
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
