"""The monitoring state machine of each output field: MONITORING -> RETRAINING -> EVALUATING.

* MONITORING -> RETRAINING also when the stream reports the field drifting (a retrain request
  of reason ``drift`` for the field, taken by the trainer's hooks: :meth:`FieldMonitor.retrain`
  with ``trigger="drift"``), whether or not a best model was elected.
* MONITORING: on every check (:meth:`FieldMonitor.check`, due every ``interval``; or at once
  when the stream's online score of the best model arrives, :meth:`FieldMonitor.on_online_score`)
  the best model is re-scored (``auto_monitor``). If it is degraded against the field's
  baseline (:func:`ml.triggers.is_degraded`), the field takes its training lock and every model
  of the field is retrained: one job each, through the :class:`JobGateway`; state RETRAINING.
* RETRAINING: :meth:`FieldMonitor.poll` (or :meth:`FieldMonitor.job_finished`) watches the
  jobs. When all have ended: if every one failed, back to MONITORING (best and baseline
  unchanged); otherwise EVALUATING.
* EVALUATING: every model is evaluated on the field's metric and the best elected with a new
  baseline (:meth:`~ml.network.performance.PerformanceTracker.evaluate`); back to MONITORING
  (also when no model can be scored, keeping the previous election). The lock is released.

:meth:`FieldMonitor.start` runs once when the process starts: training locks held by another
owner (a crashed process) are cleared; fields left RETRAINING resume watching their jobs and
fields left EVALUATING evaluate again. Time comes from the injected clock.

:class:`StalenessCheck` (run at the trainer's periodic tick): a model whose live version is older
than ``MAX_MODEL_AGE_DAYS`` (from its training time) gets ONE retrain request, reason
``staleness``, id from the domain, scope, reason and version; later ticks do not repeat it (a
restarted trainer may publish it once more: same id, so the trainer's intake joins the same job).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ml.network.performance import EvaluationError, PerformanceTracker
from ml.network.state import FieldState, MonitoringState
from ml.triggers import DEFAULT_DEGRADATION_FACTOR, TriggerPolicy, is_degraded
from schemas.events import RetrainRequest

__all__ = [
    "DEFAULT_FACTOR",
    "DEFAULT_INTERVAL",
    "JOB_ENDED",
    "FieldMonitor",
    "FieldStatus",
    "JobGateway",
    "LiveVersion",
    "StalenessCheck",
]

#: DEGRADATION_FACTOR default.
DEFAULT_FACTOR = DEFAULT_DEGRADATION_FACTOR
#: MONITORING_INTERVAL_SECONDS default.
DEFAULT_INTERVAL = timedelta(seconds=300)
#: Job statuses that end a job (``unknown``: the job store forgot it, counted as failed).
JOB_ENDED = frozenset({"completed", "failed", "cancelled", "unknown"})
_SUCCEEDED = "completed"


class JobGateway(ABC):
    """Where retraining jobs go (the trainer, through retrain requests) and their status."""

    @abstractmethod
    def submit(
        self, field: str, model_id: str, reason: str, at: datetime, trigger: str = "degradation"
    ) -> str:
        """Request the retraining of one model (``trigger``: degradation or drift); returns the
        job id."""

    @abstractmethod
    def status(self, job_id: str) -> str:
        """``queued`` | ``running`` | ``completed`` | ``failed`` | ``cancelled`` | ``unknown``."""


@dataclass(frozen=True, slots=True)
class FieldStatus:
    """What ``GET /performance/{field}/status`` shows."""

    field: str
    state: MonitoringState
    best_model_id: str | None
    metric: str
    baseline: float | None
    active_jobs: tuple[str, ...]
    next_check_at: datetime | None
    interval_seconds: float
    factor: float
    reason: str


class FieldMonitor:
    """Runs the state machine of every field through a tracker and a job gateway."""

    def __init__(
        self,
        tracker: PerformanceTracker,
        jobs: JobGateway,
        *,
        factor: float = DEFAULT_FACTOR,
        interval: timedelta = DEFAULT_INTERVAL,
        owner: str = "monitor",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if factor < 1:
            raise ValueError("factor must be >= 1")
        if interval <= timedelta(0):
            raise ValueError("interval must be positive")
        self.tracker = tracker
        self.repository = tracker.repository
        self.jobs = jobs
        self.factor = float(factor)
        self.interval = interval
        self.owner = owner
        self.clock = clock or tracker.clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_settings(
        cls, settings: object, tracker: PerformanceTracker, jobs: JobGateway, owner: str
    ) -> FieldMonitor:
        """DEGRADATION_FACTOR / MONITORING_INTERVAL_SECONDS, defaults otherwise."""
        return cls(
            tracker,
            jobs,
            factor=getattr(settings, "degradation_factor", DEFAULT_FACTOR),
            interval=timedelta(
                seconds=getattr(
                    settings, "monitoring_interval_seconds", DEFAULT_INTERVAL.total_seconds()
                )
            ),
            owner=owner,
        )

    # --- reading -----------------------------------------------------------------------------
    def status(self, field: str) -> FieldStatus:
        state = self.tracker.state(field)
        active = tuple(j for j in state.jobs if self.jobs.status(j) not in JOB_ENDED)
        return FieldStatus(
            field,
            state.state,
            state.best_model_id,
            state.metric,
            state.baseline,
            active,
            state.next_check_at,
            self.interval.total_seconds(),
            self.factor,
            state.reason,
        )

    def degraded(self, score: float, baseline: float | None, metric: str) -> bool:
        return baseline is not None and is_degraded(score, baseline, metric, self.factor)

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> list[str]:
        """Clear stale locks (held by another owner) and resume interrupted fields; returns
        the fields whose lock was cleared."""
        cleared = []
        for state in self.repository.all():
            if state.lock_owner is not None and state.lock_owner != self.owner:
                cleared.append(state.field)
                state = replace(state, lock_owner=None, locked_at=None)
                self.repository.save(state)
            if state.state == MonitoringState.RETRAINING:
                self._save(replace(state, lock_owner=self.owner, locked_at=self.clock()))
                self._finish_if_done(state.field)
            elif state.state == MonitoringState.EVALUATING:
                self._evaluate(state.field)
        return cleared

    def check(self, field: str, trigger: str = "auto_monitor") -> bool:
        """Monitor the best model now; retrain the field when degraded. Returns whether a
        retraining started. Does nothing but reschedule outside MONITORING or before any
        election."""
        now = self.clock()
        state = self.tracker.state(field)
        self._save(replace(state, next_check_at=now + self.interval))
        if state.state != MonitoringState.MONITORING or state.best_model_id is None:
            return False
        try:
            result = self.tracker.monitor(field, trigger=trigger)
        except Exception as exc:  # noqa: BLE001 - the next check tries again
            self._save(replace(self.tracker.state(field), reason=f"monitor failed: {exc}"))
            return False
        if not self.degraded(result.score, result.baseline, result.metric):
            return False
        why = (
            f"{result.metric} {result.score:.6g} of {result.model_id} worse than baseline "
            f"{result.baseline:.6g} x {self.factor:g} ({trigger})"
        )
        return self.retrain(field, why)

    def check_due(self, fields: Iterable[str]) -> list[str]:
        """Check the fields whose next check time has come; returns those now retraining."""
        now = self.clock()
        started = []
        for field in fields:
            due = self.tracker.state(field).next_check_at
            if (due is None or due <= now) and self.check(field):
                started.append(field)
        return started

    def on_online_score(self, field: str, model_id: str, metric: str, score: float) -> bool:
        """The stream's running score of a model: retrain at once when it is the best model's,
        on the field's metric, and degraded. Returns whether a retraining started."""
        state = self.tracker.state(field)
        if (
            state.state != MonitoringState.MONITORING
            or model_id != state.best_model_id
            or metric != state.metric
            or not self.degraded(score, state.baseline, metric)
        ):
            return False
        why = (
            f"online {metric} {score:.6g} of {model_id} worse than baseline "
            f"{state.baseline:.6g} x {self.factor:g}"
        )
        return self.retrain(field, why)

    def retrain(self, field: str, reason: str, trigger: str = "degradation") -> bool:
        """Take the training lock and submit one job per model of the field (RETRAINING), with
        ``trigger`` as the jobs' reason (degradation, or drift from the stream). False when the
        field is not in MONITORING or its lock is held."""
        state = self.tracker.state(field)
        if state.state != MonitoringState.MONITORING or state.lock_owner is not None:
            return False
        now = self.clock()
        jobs = []
        for model_id in self.tracker.models(field):
            try:
                jobs.append(self.jobs.submit(field, model_id, reason, now, trigger))
            except Exception:  # noqa: BLE001 - a model that cannot be submitted is a failed job
                continue
        if not jobs:
            self._save(replace(state, reason=f"{reason}; no job could be submitted"))
            return False
        self._save(
            replace(
                state,
                state=MonitoringState.RETRAINING,
                jobs=tuple(jobs),
                lock_owner=self.owner,
                locked_at=now,
                reason=reason,
            )
        )
        return True

    def poll(self) -> list[str]:
        """Advance every RETRAINING field whose jobs all ended; returns those fields."""
        done = []
        for state in self.repository.all():
            if state.state == MonitoringState.RETRAINING and self._finish_if_done(state.field):
                done.append(state.field)
        return done

    def job_finished(self, job_id: str) -> bool:
        """A job ended: advance the field it belongs to. Returns whether the field moved on."""
        for state in self.repository.all():
            if state.state == MonitoringState.RETRAINING and job_id in state.jobs:
                return self._finish_if_done(state.field)
        return False

    # --- transitions -------------------------------------------------------------------------
    def _finish_if_done(self, field: str) -> bool:
        state = self.tracker.state(field)
        statuses = [self.jobs.status(j) for j in state.jobs]
        if any(s not in JOB_ENDED for s in statuses):
            return False
        if _SUCCEEDED not in statuses:
            self._back_to_monitoring(state, f"all {len(statuses)} retraining jobs failed")
            return True
        self._save(
            replace(
                state,
                state=MonitoringState.EVALUATING,
                reason=f"{statuses.count(_SUCCEEDED)}/{len(statuses)} jobs completed",
            )
        )
        self._evaluate(field)
        return True

    def _evaluate(self, field: str) -> None:
        state = self.tracker.state(field)
        try:
            election = self.tracker.evaluate(field, state.metric)
        except EvaluationError as exc:
            self._back_to_monitoring(self.tracker.state(field), f"evaluation failed: {exc}")
            return
        self._back_to_monitoring(
            self.tracker.state(field),
            f"elected {election.best_model_id} ({election.metric} {election.baseline:.6g})",
        )

    def _back_to_monitoring(self, state: FieldState, reason: str) -> None:
        now = self.clock()
        self._save(
            replace(
                state,
                state=MonitoringState.MONITORING,
                jobs=(),
                lock_owner=None,
                locked_at=None,
                next_check_at=now + self.interval,
                reason=reason,
            )
        )

    def _save(self, state: FieldState) -> None:
        self.repository.save(replace(state, updated_at=self.clock()))


@dataclass(frozen=True, slots=True)
class LiveVersion:
    """A model scope's live version and when it was trained."""

    scope: str
    version: str
    trained_at: datetime


class StalenessCheck:
    """One staleness retrain request per stale live version (see module doc)."""

    def __init__(
        self,
        domain: str,
        max_model_age: timedelta,
        live_versions: Callable[[], Iterable[LiveVersion]],
        submit: Callable[[RetrainRequest], Any],
        clock: Callable[[], datetime] | None = None,
        interval: timedelta = timedelta(0),
    ) -> None:
        self.domain = domain
        self.interval = interval
        self._next_at: datetime | None = None
        self.policy = TriggerPolicy(
            max_model_age=max_model_age, cooldown=timedelta(0), requested_by="staleness-check"
        )
        self.live_versions = live_versions
        self.submit = submit
        self.clock = clock or (lambda: datetime.now(UTC))

    def run(self) -> list[RetrainRequest]:
        """Check every live version (at most every ``interval``); submit (and return) the new
        staleness requests. A request that cannot be submitted raises, and its version is
        checked again at the next run."""
        now = self.clock()
        if self._next_at is not None and now < self._next_at:
            return []
        self._next_at = now + self.interval
        out = []
        for live in self.live_versions():
            request = self.policy.check_staleness(
                self.domain, live.scope, live.trained_at, now, version=live.version
            )
            if request is None:
                continue
            self.policy.job_finished(self.domain, live.scope, now)  # the version dedups
            try:
                self.submit(request)
            except Exception:
                self.policy.forget_staleness(self.domain, live.scope)
                raise
            out.append(request)
        return out
