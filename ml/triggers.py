"""Retrain triggers: degradation test and the per-scope coalescing policy.

:func:`is_degraded` compares a model's score with its baseline. :class:`TriggerPolicy` turns
trigger firings (drift, degradation, latency, staleness, manual) into at most one pending
:class:`~schemas.events.RetrainRequest` per ``(domain, scope)``: while a request is pending (not yet
reported finished with :meth:`TriggerPolicy.job_finished`) or within ``cooldown`` after the last
request or finish, further triggers are coalesced (counted, not requested again).

Everything runs on EVENT time passed in by the caller (never the wall clock), and request ids are
``deterministic_id(domain, scope, reason, key)``, so replaying the same events yields the same
requests with the same ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ml.drift import Detection
from schemas.events import RetrainReason, RetrainRequest, deterministic_id

__all__ = [
    "DEFAULT_DEGRADATION_FACTOR",
    "ERROR_METRICS",
    "HIGHER_IS_BETTER",
    "MAX_COALESCED_REASONS",
    "REASON_BY_DETECTOR",
    "CoalescedTriggers",
    "TriggerPolicy",
    "is_degraded",
    "reason_for",
    "retrain_request",
]

#: Lower is better: degraded when ``score > baseline * factor``.
ERROR_METRICS = frozenset({"rmse", "mae", "mape", "wape", "mase", "mse", "smape"})
#: Higher is better: degraded when ``score < baseline / factor`` (see :func:`is_degraded`).
HIGHER_IS_BETTER = frozenset({"r2"})
#: ``DEGRADATION_FACTOR`` default.
DEFAULT_DEGRADATION_FACTOR = 1.5
#: How many of the latest coalesced reasons are kept per scope.
MAX_COALESCED_REASONS = 10
#: Retrain reason of each :class:`~ml.drift.Detection` detector.
REASON_BY_DETECTOR: dict[str, RetrainReason] = {
    "input_shift": RetrainReason.DRIFT,
    "adwin": RetrainReason.DRIFT,
    "page_hinkley": RetrainReason.DRIFT,
    "latency": RetrainReason.LATENCY,
}

_REL_TOL = 1e-9
_ABS_TOL = 1e-12


def retrain_request(
    *,
    domain: str,
    scope: str,
    reason: RetrainReason | str,
    at: datetime,
    key: str,
    requested_by: str,
    evidence: dict[str, Any],
    id_parts: tuple[object, ...] | None = None,
) -> RetrainRequest:
    """The one way a retrain request is made (stream triggers, field monitor). Its id is
    ``deterministic_id(*id_parts)``, by default ``(domain, scope, reason, key)``: the same
    trigger on the same events always yields the same request, so a replay never adds work."""
    reason = RetrainReason(reason)
    return RetrainRequest(
        event_id=deterministic_id(*(id_parts or (domain, scope, reason, key))),
        occurred_at=at,
        domain=domain,
        scope=scope,
        reason=reason,
        requested_by=requested_by,
        evidence=evidence,
    )


def _worse(error: float, limit: float) -> bool:
    """``error > limit``, with float round-off at the boundary counted as equality."""
    return error > limit and not math.isclose(error, limit, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)


def is_degraded(
    score: float, baseline: float, metric: str, factor: float = DEFAULT_DEGRADATION_FACTOR
) -> bool:
    """Whether ``score`` is worse than ``baseline`` by more than ``factor``. Equality never is.

    The one degradation rule of every process (stream triggers, the trainer's field monitor),
    with ``factor`` from the ``DEGRADATION_FACTOR`` setting:

    * Error metrics (rmse, mae, mape, wape, mase, mse, smape), lower is better: degraded when
      ``score > baseline * factor``. A perfect baseline (0) makes any positive error degraded.
    * R², higher is better (the mirror): degraded when ``score < baseline / factor`` for a
      positive baseline. For a baseline <= 0 (a model no better than the mean) that limit would
      sit *above* the baseline, so there it is ``score < baseline * factor``: always "worse than
      the baseline by the factor".

    Values within float round-off of the limit count as equal (not degraded). ``factor`` must be
    >= 1; NaN inputs raise ``ValueError``; an infinite error score is degraded.
    """
    if factor < 1 or math.isnan(factor):
        raise ValueError(f"factor must be >= 1, got {factor}")
    if math.isnan(score) or math.isnan(baseline):
        raise ValueError("score and baseline must not be NaN")
    name = metric.lower()
    if name in ERROR_METRICS:
        return _worse(score, baseline * factor)
    if name in HIGHER_IS_BETTER:
        limit = baseline / factor if baseline > 0 else baseline * factor
        return _worse(-score, -limit)
    raise ValueError(f"unknown metric {metric!r}")


def reason_for(detection: Detection) -> RetrainReason:
    """The retrain reason of a drift-monitor detection."""
    return REASON_BY_DETECTOR.get(detection.detector, RetrainReason.DRIFT)


@dataclass
class CoalescedTriggers:
    """Triggers merged into a scope's current request (since the last request was issued)."""

    count: int = 0
    reasons: list[str] = field(default_factory=list)  # latest MAX_COALESCED_REASONS

    def add(self, reason: str) -> None:
        self.count += 1
        self.reasons.append(reason)
        del self.reasons[:-MAX_COALESCED_REASONS]


def _require_aware(at: datetime, name: str = "at") -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (event time)")


class TriggerPolicy:
    """One retrain request per (domain, scope) at a time; everything else is coalesced."""

    def __init__(
        self,
        *,
        degradation_factor: float = DEFAULT_DEGRADATION_FACTOR,
        max_latency_seconds: float = 1.0,
        max_model_age: timedelta = timedelta(days=90),
        cooldown: timedelta = timedelta(hours=1),
        requested_by: str = "trigger-policy",
    ) -> None:
        if degradation_factor < 1:
            raise ValueError("degradation_factor must be >= 1")
        if cooldown < timedelta(0):
            raise ValueError("cooldown must be >= 0")
        self.degradation_factor = float(degradation_factor)
        self.max_latency_seconds = float(max_latency_seconds)
        self.max_model_age = max_model_age
        self.cooldown = cooldown
        self.requested_by = requested_by
        self._pending: dict[tuple[str, str], RetrainRequest] = {}
        self._last: dict[tuple[str, str], datetime] = {}
        self.coalesced: dict[tuple[str, str], CoalescedTriggers] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> TriggerPolicy:
        """Build from a :class:`millrace.settings.Settings`-like object."""
        return cls(
            degradation_factor=settings.degradation_factor,
            max_latency_seconds=settings.max_latency_seconds,
            max_model_age=timedelta(days=settings.max_model_age_days),
            cooldown=timedelta(seconds=settings.retrain_cooldown_seconds),
        )

    def degraded(self, score: float, baseline: float, metric: str) -> bool:
        """:func:`is_degraded` with this policy's factor."""
        return is_degraded(score, baseline, metric, self.degradation_factor)

    def consider(
        self,
        *,
        domain: str,
        scope: str,
        reason: RetrainReason | str,
        evidence: dict[str, Any],
        at: datetime,
        key: str,
    ) -> RetrainRequest | None:
        """A retrain request for this trigger, or ``None`` if it is coalesced.

        ``at`` is the event time of what tripped the trigger; ``key`` a stable identifier of it
        (e.g. ``"2024-05/adwin"``). Coalesced while a request is pending, or while
        ``at < last request-or-finish + cooldown``.
        """
        _require_aware(at)
        reason = RetrainReason(reason)
        scope_key = (domain, scope)
        last = self._last.get(scope_key)
        if scope_key in self._pending or (last is not None and at < last + self.cooldown):
            self.coalesced.setdefault(scope_key, CoalescedTriggers()).add(str(reason))
            return None
        request = retrain_request(
            domain=domain,
            scope=scope,
            reason=reason,
            at=at,
            key=key,
            requested_by=self.requested_by,
            evidence={**evidence, "trigger_key": key},
        )
        self._pending[scope_key] = request
        self._last[scope_key] = at
        self.coalesced[scope_key] = CoalescedTriggers()
        return request

    def job_finished(self, domain: str, scope: str, at: datetime) -> None:
        """The scope's job ended (completed, failed or cancelled); cooldown restarts at ``at``."""
        _require_aware(at)
        scope_key = (domain, scope)
        self._pending.pop(scope_key, None)
        last = self._last.get(scope_key)
        self._last[scope_key] = at if last is None else max(last, at)

    def pending(self, domain: str, scope: str) -> RetrainRequest | None:
        return self._pending.get((domain, scope))

    def latency_exceeded(self, avg_latency_seconds: float) -> bool:
        """Average latency strictly over the limit (equality is not over)."""
        return avg_latency_seconds > self.max_latency_seconds

    def check_staleness(
        self,
        domain: str,
        scope: str,
        model_trained_at: datetime,
        at: datetime,
        *,
        key: str | None = None,
    ) -> RetrainRequest | None:
        """A staleness request when the model is older than ``max_model_age`` at ``at``.

        The default key is the model's training time plus ``at`` (both event-derived), so a
        replay reproduces the id.
        """
        _require_aware(model_trained_at, "model_trained_at")
        _require_aware(at)
        age = at - model_trained_at
        if age <= self.max_model_age:
            return None
        return self.consider(
            domain=domain,
            scope=scope,
            reason=RetrainReason.STALENESS,
            evidence={
                "model_trained_at": model_trained_at.isoformat(),
                "age_days": age.total_seconds() / 86400,
                "max_age_days": self.max_model_age.total_seconds() / 86400,
            },
            at=at,
            key=key or f"{model_trained_at.isoformat()}@{at.isoformat()}",
        )
