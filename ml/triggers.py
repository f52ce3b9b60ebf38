"""Retrain triggers: degradation test and the per-scope coalescing policy.

:func:`is_degraded` compares a model's score with its baseline. :class:`TriggerPolicy` turns
trigger firings (drift, degradation, latency, staleness, manual) into at most one pending
:class:`~schemas.events.RetrainRequest` per ``(domain, scope)``: while a request is pending (not yet
reported finished with :meth:`TriggerPolicy.job_finished`) or within ``cooldown`` after the last
request or finish, further triggers are coalesced (counted, not requested again).

Everything runs on EVENT time passed in by the caller, and request ids are
``deterministic_id(domain, scope, reason, key)``, so replaying the same events yields the same
requests with the same ids.

Catch-up mode (``catch_up_lag``, setting ``CATCH_UP_LAG_SECONDS``, default 2 days; ``None``/0
disables it): while the stream replays history, i.e. a trigger's event time ``at`` is more than
``catch_up_lag`` behind the wall clock (the injected ``clock``, never read anywhere else), the
statistics keep updating but no request is issued: the triggers are HELD, coalesced into one per
scope (:class:`HeldTriggers`). :meth:`TriggerPolicy.release` issues them once the stream has
caught up, i.e. when called with the event time of the first event within the lag bound: one
request per scope, its ``occurred_at`` that event time (the moment the request is made, so the
trainer sees every event up to it), its reason and evidence those of the LATEST held trigger
(the current state) plus ``held`` (count, reasons, first and last trigger key and time), and its
id ``deterministic_id(domain, scope, "catch-up", first key, last key)``: the same replay holds
the same triggers and releases the same ids. A released request then follows the ordinary rules
(coalesced into a pending request or the cooldown). So a replay of years of history never
trains mid-replay on partial data.

Staleness (:meth:`TriggerPolicy.check_staleness` with ``version``): one request per stale version
(id from domain, scope, ``staleness`` and the version), never repeated for that version.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from schemas.events import RetrainReason, RetrainRequest, deterministic_id

if TYPE_CHECKING:  # only annotated: the drift detectors (River, scipy) load where they run
    from ml.drift import Detection

__all__ = [
    "DEFAULT_CATCH_UP_LAG",
    "DEFAULT_DEGRADATION_FACTOR",
    "ERROR_METRICS",
    "HIGHER_IS_BETTER",
    "MAX_COALESCED_REASONS",
    "REASON_BY_DETECTOR",
    "CoalescedTriggers",
    "FixedClock",
    "HeldTriggers",
    "TriggerPolicy",
    "degradation_limit",
    "is_degraded",
    "reason_for",
    "retrain_request",
    "utc_now",
]

#: Lower is better: degraded when ``score > baseline * factor``.
ERROR_METRICS = frozenset({"rmse", "mae", "mape", "wape", "mase", "mse", "smape"})
#: Higher is better: degraded when ``score < baseline / factor`` (see :func:`is_degraded`).
HIGHER_IS_BETTER = frozenset({"r2"})
#: ``DEGRADATION_FACTOR`` default.
DEFAULT_DEGRADATION_FACTOR = 1.5
#: ``CATCH_UP_LAG_SECONDS`` default: triggers older than this (event time vs wall clock) are held.
DEFAULT_CATCH_UP_LAG = timedelta(days=2)
#: How many of the latest coalesced reasons are kept per scope.
MAX_COALESCED_REASONS = 10
#: Retrain reason of each :class:`~ml.drift.Detection` detector.
REASON_BY_DETECTOR: dict[str, RetrainReason] = {
    "input_shift": RetrainReason.DRIFT,
    "adwin": RetrainReason.DRIFT,
    "page_hinkley": RetrainReason.DRIFT,
    "latency": RetrainReason.LATENCY,
    # ml.demand.changes: change detectors on a segment's sales ratio and forecast errors
    "sales_level": RetrainReason.DRIFT,
    "sales_variance": RetrainReason.DRIFT,
    "error_level": RetrainReason.DRIFT,
    "error_variance": RetrainReason.DRIFT,
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
    if math.isnan(score):
        raise ValueError("score and baseline must not be NaN")
    limit = degradation_limit(baseline, metric, factor)
    if metric.lower() in ERROR_METRICS:
        return _worse(score, limit)
    return _worse(-score, -limit)


def degradation_limit(
    baseline: float, metric: str, factor: float = DEFAULT_DEGRADATION_FACTOR
) -> float:
    """The score past which :func:`is_degraded` says degraded (the threshold itself is not):
    ``baseline * factor`` for error metrics; for R² ``baseline / factor`` (a positive
    baseline) or ``baseline * factor`` (a baseline <= 0)."""
    if factor < 1 or math.isnan(factor):
        raise ValueError(f"factor must be >= 1, got {factor}")
    if math.isnan(baseline):
        raise ValueError("score and baseline must not be NaN")
    name = metric.lower()
    if name in ERROR_METRICS:
        return baseline * factor
    if name in HIGHER_IS_BETTER:
        return baseline / factor if baseline > 0 else baseline * factor
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


@dataclass
class HeldTriggers:
    """The triggers of one scope held during catch-up (see module doc): the first and the latest
    (its reason and evidence are what the released request carries) and their count."""

    first_key: str
    first_at: datetime
    reason: RetrainReason
    evidence: dict[str, Any]
    key: str
    at: datetime
    count: int = 1
    reasons: list[str] = field(default_factory=list)  # latest MAX_COALESCED_REASONS

    def add(self, reason: RetrainReason, evidence: dict[str, Any], at: datetime, key: str) -> None:
        self.reason, self.evidence, self.at, self.key = reason, evidence, at, key
        self.count += 1
        self.reasons.append(str(reason))
        del self.reasons[:-MAX_COALESCED_REASONS]

    def summary(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "reasons": list(self.reasons),
            "first_key": self.first_key,
            "first_at": self.first_at.isoformat(),
            "last_key": self.key,
            "last_at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class FixedClock:
    """A clock that always reads ``now`` (replays, tests); picklable."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


def utc_now() -> datetime:
    """The wall clock (the default ``clock``; a module-level function, so a policy pickles)."""
    return datetime.now(UTC)


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
        catch_up_lag: timedelta | None = None,
        clock: Callable[[], datetime] = utc_now,
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
        self.catch_up_lag = catch_up_lag if catch_up_lag else None
        self.clock = clock
        self._held: dict[tuple[str, str], HeldTriggers] = {}
        self._stale_versions: dict[tuple[str, str], str] = {}
        self._pending: dict[tuple[str, str], RetrainRequest] = {}
        self._last: dict[tuple[str, str], datetime] = {}
        self.coalesced: dict[tuple[str, str], CoalescedTriggers] = {}

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        clock: Callable[[], datetime] | None = None,
        requested_by: str = "trigger-policy",
    ) -> TriggerPolicy:
        """Build from a :class:`millrace.settings.Settings`-like object (``clock``: the wall
        clock of catch-up mode, :func:`utc_now` by default)."""
        lag = getattr(settings, "catch_up_lag_seconds", DEFAULT_CATCH_UP_LAG.total_seconds())
        return cls(
            degradation_factor=settings.degradation_factor,
            max_latency_seconds=settings.max_latency_seconds,
            max_model_age=timedelta(days=settings.max_model_age_days),
            cooldown=timedelta(seconds=settings.retrain_cooldown_seconds),
            catch_up_lag=timedelta(seconds=lag) if lag else None,
            clock=clock or utc_now,
            requested_by=requested_by,
        )

    # --- catch-up mode ---------------------------------------------------------------------
    def catching_up(self, at: datetime) -> bool:
        """Whether event time ``at`` is more than ``catch_up_lag`` behind the wall clock."""
        _require_aware(at)
        return self.catch_up_lag is not None and self.clock() - at > self.catch_up_lag

    def first_caught_up(self, times: Iterable[datetime]) -> datetime | None:
        """The first of ``times`` (event times, in order) within the lag bound, with one
        reading of the clock; ``None`` if none is (or catch-up mode is off)."""
        if self.catch_up_lag is None:
            return None
        bound = self.clock() - self.catch_up_lag
        return next((at for at in times if at >= bound), None)

    def held(self, domain: str, scope: str) -> HeldTriggers | None:
        """The triggers of a scope held during catch-up, if any."""
        return self._held.get((domain, scope))

    def release(self, at: datetime) -> list[RetrainRequest]:
        """Issue the held triggers (one request per scope, sorted by scope) if the event time
        ``at`` is within the lag bound; nothing otherwise. Call it with the time of the first
        event of a batch that is within the bound (see module doc)."""
        if not self._held or self.catching_up(at):
            return []
        out = []
        for (domain, scope), held in sorted(self._held.items()):
            request = self._issue(
                domain=domain,
                scope=scope,
                reason=held.reason,
                evidence={**held.evidence, "held": held.summary()},
                at=at,
                key=held.key,
                id_parts=(domain, scope, "catch-up", held.first_key, held.key),
            )
            if request is not None:
                out.append(request)
        self._held.clear()
        return out

    def release_caught_up(self, times: Iterable[datetime]) -> list[RetrainRequest]:
        """After a batch (``times``: its event times, in order): the held triggers, issued at the
        first of ``times`` within the lag bound (their ``occurred_at``); nothing, without
        scanning ``times``, while nothing is held."""
        if not self._held:
            return []
        caught_up = self.first_caught_up(times)
        return self.release(caught_up) if caught_up is not None else []

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
        ``at < last request-or-finish + cooldown``; held while catching up (module doc).
        """
        _require_aware(at)
        reason = RetrainReason(reason)
        if self.catching_up(at):
            held = self._held.get((domain, scope))
            if held is None:
                self._held[(domain, scope)] = HeldTriggers(
                    key, at, reason, dict(evidence), key, at, reasons=[str(reason)]
                )
            else:
                held.add(reason, dict(evidence), at, key)
            return None
        return self._issue(
            domain=domain, scope=scope, reason=reason, evidence=evidence, at=at, key=key
        )

    def _issue(
        self,
        *,
        domain: str,
        scope: str,
        reason: RetrainReason,
        evidence: dict[str, Any],
        at: datetime,
        key: str,
        id_parts: tuple[object, ...] | None = None,
    ) -> RetrainRequest | None:
        """The request, unless coalesced into a pending one or within the cooldown."""
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
            id_parts=id_parts,
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

    def forget_staleness(self, domain: str, scope: str) -> None:
        """The scope's staleness request was not delivered: its version may be requested again."""
        self._stale_versions.pop((domain, scope), None)

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
        version: str | None = None,
    ) -> RetrainRequest | None:
        """A staleness request when the model is older than ``max_model_age`` at ``at``.

        With ``version`` (the stale live version): at most ONE request per version, its key
        ``version:<version>`` (id from domain, scope, ``staleness`` and the version); once it
        is issued or held (catch-up), later checks of the same version return ``None``. While
        it is coalesced (another request of the scope pending, or the cooldown) it is checked
        again at the next call.
        Without it, the default key is the model's training time plus ``at`` (both
        event-derived), so a replay reproduces the id.
        """
        _require_aware(model_trained_at, "model_trained_at")
        _require_aware(at)
        age = at - model_trained_at
        if age <= self.max_model_age:
            return None
        if version is not None:
            if self._stale_versions.get((domain, scope)) == version:
                return None
            key = f"version:{version}"
        request = self.consider(
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
        held = self._held.get((domain, scope))
        if version is not None and (request is not None or (held and held.key == key)):
            self._stale_versions[(domain, scope)] = version  # issued or held: never again
        return request
