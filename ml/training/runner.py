"""Run one training job: build the set, fit and score candidates, gate, version, activate.

The job's outcome is stored before anything is announced. An artifact is written atomically
before its version row exists, and a version becomes active only through an activation
recorded after that, so a crash at any point never leaves a partial artifact active.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml.domains import Domain, get_domain
from ml.metrics import score
from ml.registry.entities import TrainingJobRow
from ml.registry.errors import is_transient
from ml.registry.store import Store
from ml.registry.stores.jobs import cancelled_reason
from ml.training.base import Candidate, TrainingSet
from ml.training.errors import TrainingDataError
from ml.training.versioning import (
    artifact_path,
    load_model,
    next_version,
    to_bytes,
    write_artifact,
)

__all__ = [
    "CandidateResult",
    "JobCancelled",
    "JobOutcome",
    "TrainingRunner",
    "describe_candidates",
]


class JobCancelled(Exception):
    """A cancel was asked for the running job (raised at a checkpoint, with the reason)."""


@dataclass(frozen=True)
class CandidateResult:
    """One candidate's scores on the test window and its fit time."""

    algorithm: str
    metrics: dict[str, float | None]
    fit_seconds: float


@dataclass
class JobOutcome:
    """What a job came to: its status, the version it stored and whether it went live."""

    job_id: str
    status: str  # completed | failed | cancelled
    version: str | None = None
    promoted: bool = False
    previous_version: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    reason: str = ""
    candidates: list[CandidateResult] = field(default_factory=list)

    @property
    def decision(self) -> str | None:
        """``promoted`` / ``rejected`` for a completed job, None for a failed or cancelled one."""
        if self.status != "completed":
            return None
        return "promoted" if self.promoted else "rejected"


class TrainingRunner:
    """Runs jobs against one store and artifact folder."""

    def __init__(
        self,
        store: Store,
        model_dir: Path,
        *,
        min_periods: int = 12,
        artifacts_in_db: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        domains: Mapping[str, Domain] | None = None,
    ) -> None:
        #: the domains as the process configures them (default: as registered)
        self.domains = domains or {}
        self.store = store
        self.model_dir = Path(model_dir)
        self.min_periods = min_periods
        self.artifacts_in_db = artifacts_in_db
        self.clock = clock

    def run(self, job: TrainingJobRow) -> JobOutcome:
        """Run ``job`` to completed, failed or cancelled; never raises for a job's own failure.

        The job row records the outcome (``promoted`` / ``rejected``; none for a failed or
        cancelled job) and the reason, which names every candidate with its score. A cancel
        asked for while the job runs is honoured at the next checkpoint (before the set is
        built, before each candidate, before the version is stored): the job ends
        ``cancelled`` and stores no version."""
        if self.store.jobs.start_job(job.id, self.clock()) is None:
            row = self.store.jobs.get_job(job.id)
            return JobOutcome(job.id, "cancelled", reason=(row.reason or "") if row else "")
        try:
            outcome = self._train(job)
        except JobCancelled as exc:
            outcome = JobOutcome(job.id, "cancelled", reason=str(exc))
        except TrainingDataError as exc:
            outcome = JobOutcome(job.id, "failed", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - recorded on the job, the trainer goes on
            if is_transient(exc):
                raise  # the store went away: not the job's failure, it runs again later
            outcome = JobOutcome(job.id, "failed", reason=f"{type(exc).__name__}: {exc}")
        self.store.jobs.update_job(
            job.id,
            status=outcome.status,
            finished_at=self.clock(),
            version=outcome.version,
            error=outcome.reason if outcome.status == "failed" else None,
            outcome=outcome.decision,
            reason=outcome.reason,
        )
        return outcome

    def _train(self, job: TrainingJobRow) -> JobOutcome:
        domain = self.domains.get(job.domain) or get_domain(job.domain)
        trainer = domain.trainer(job.scope, self.store)
        if trainer is None:
            raise TrainingDataError(f"domain {job.domain!r} has no batch trainer")
        self._checkpoint(job, "before building the training set")
        data = trainer.training_set(self.store, job.start_date, job.end_date, self.min_periods)
        if data.test.empty:
            raise TrainingDataError("No test rows in the last 20% of the period")
        results: list[tuple[Candidate, CandidateResult]] = []
        for candidate in trainer.candidates():
            self._checkpoint(job, f"before candidate {candidate.algorithm}")
            started = time.perf_counter()
            candidate.fit(data.train)
            metrics = score(data.y_test, candidate.predict(data.test), scale=data.scale)
            elapsed = time.perf_counter() - started
            results.append((candidate, CandidateResult(candidate.algorithm, metrics, elapsed)))
        if not results:
            raise TrainingDataError(f"domain {job.domain!r} offered no candidate")
        metric = trainer.metric
        # ties go to the earlier candidate: the baseline (first) wins a tie
        best_model, best = min(results, key=lambda r: _value(r[1].metrics, metric))
        scores = [r for _, r in results]
        baseline = getattr(trainer, "baseline", "") or scores[0].algorithm
        promoted, why = self._gate(job, data, metric, best)
        why = f"{why}; {metric} of the candidates: {describe_candidates(scores, metric, baseline)}"
        self._checkpoint(job, "before storing the version")
        return self._store_version(job, domain.schema_major, data, best_model, best, promoted,
                                   why, scores)  # fmt: skip

    def _checkpoint(self, job: TrainingJobRow, where: str) -> None:
        """Raise :class:`JobCancelled` when a cancel was asked for the job."""
        cancel = self.store.jobs.cancel_request(job.id)
        if cancel is not None:
            raise JobCancelled(cancelled_reason(cancel, where))

    def _gate(
        self, job: TrainingJobRow, data: TrainingSet, metric: str, best: CandidateResult
    ) -> tuple[bool, str]:
        """Whether ``best`` goes live, and why. The first version of a scope (no live version)
        always does, whichever candidate it is (a baseline is a model too); a later one must
        beat the live version re-scored on the same test window."""
        value = _value(best.metrics, metric)
        active = self.store.models.active_version(job.domain, job.scope)
        if active is None:
            return True, (
                f"first version of {job.domain}/{job.scope}: the best candidate "
                f"{best.algorithm} goes live ({metric} {value:.4g}; no live version to beat)"
            )
        try:
            live = load_model(self.store, job.domain, job.scope, active)
        except (KeyError, FileNotFoundError) as exc:
            raise TrainingDataError(f"active version {active} cannot be loaded: {exc}") from exc
        live_value = _value(score(data.y_test, live.predict(data.test)), metric)
        if value < live_value:
            return True, (
                f"{best.algorithm} {metric} {value:.4g} beats active {active} re-scored on "
                f"the same window ({live_value:.4g})"
            )
        return False, (
            f"{best.algorithm} {metric} {value:.4g} does not beat active {active} re-scored "
            f"on the same window ({live_value:.4g})"
        )

    def _store_version(
        self,
        job: TrainingJobRow,
        major: int,
        data: TrainingSet,
        model: Candidate,
        best: CandidateResult,
        promoted: bool,
        why: str,
        results: list[CandidateResult],
    ) -> JobOutcome:
        latest = self.store.models.list_versions(domain=job.domain, scope=job.scope, limit=1)
        previous = latest[0] if latest else None
        same = previous is not None and (previous.algorithm, previous.features) == (
            model.algorithm,
            list(model.features),
        )
        version = next_version(
            previous.version if previous else None,
            major=major,
            same_model=same,
            today=self.clock().date(),
        )
        path, blob = None, None
        if self.artifacts_in_db:
            blob = to_bytes(model)
        else:
            target = artifact_path(self.model_dir, job.domain, job.scope, version)
            path = write_artifact(model, target)
        n_train, n_test = len(data.train), len(data.test)
        metrics = dict(best.metrics)
        self.store.models.add_version(
            domain=job.domain,
            scope=job.scope,
            version=version,
            status="candidate" if promoted else "rejected",
            algorithm=model.algorithm,
            features=list(model.features),
            metrics={**metrics, "candidates": {r.algorithm: r.metrics for r in results}},
            train_samples=n_train,
            test_samples=n_test,
            total_samples=n_train + n_test,
            segments_covered=data.segments,
            artifact_path=str(path) if path else None,
            artifact=blob,
            job_id=job.id,
            reason=why,
            trained_at=self.clock(),
        )
        previous_active = self.store.models.active_version(job.domain, job.scope)
        if promoted:
            self.store.models.record_activation(
                job.domain, job.scope, version, reason=f"{job.trigger}: {why}", actor="trainer"
            )
        return JobOutcome(
            job.id,
            "completed",
            version=version,
            promoted=promoted,
            previous_version=previous_active,
            metrics=metrics,
            reason=why,
            candidates=results,
        )


def describe_candidates(results: list[CandidateResult], metric: str, baseline: str = "") -> str:
    """``seasonal_naive 0.359 (baseline), lightgbm 0.37, ...``: every candidate's ``metric``."""
    parts = []
    for r in results:
        value = r.metrics.get(metric)
        text = "n/a" if value is None else f"{float(value):.4g}"
        parts.append(f"{r.algorithm} {text}" + (" (baseline)" if r.algorithm == baseline else ""))
    return ", ".join(parts)


def _value(metrics: dict[str, Any], metric: str) -> float:
    value = metrics.get(metric)
    return float("inf") if value is None else float(value)
