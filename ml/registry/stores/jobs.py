"""Training jobs: queued -> running -> completed | failed | cancelled.

Cancellation: :meth:`JobStore.request_cancel` ends a queued job ``cancelled`` at once and marks
a running one (``params["cancel"]``: who, when, why, the command); the runner honours the mark
at its next checkpoint (:meth:`JobStore.cancel_request`) and ends the job ``cancelled`` without
storing a version. :meth:`JobStore.start_job` never starts a job that is cancelled or marked.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select

from ml.registry import entities as e
from ml.registry.db import Database, where_given
from ml.registry.models import TrainingJob, utcnow

__all__ = ["JobStore", "cancelled_reason"]


class JobStore:
    """Batch training jobs and the retrain requests they answer."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create_job(
        self,
        domain: str,
        scope: str,
        trigger: str,
        *,
        job_id: str | None = None,
        request_ids: list[str] | None = None,
        start_date: date | None = None,
        end_date: date | None = None,
        params: dict[str, Any] | None = None,
        status: str = "queued",
    ) -> e.TrainingJobRow:
        with self._db.session.begin() as session:
            row = TrainingJob(
                id=job_id or str(uuid.uuid4()),
                domain=domain,
                scope=scope,
                status=status,
                trigger=trigger,
                request_ids=request_ids or [],
                start_date=start_date,
                end_date=end_date,
                params=params or {},
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return row.to_entity()

    def get_job(self, job_id: str) -> e.TrainingJobRow | None:
        with self._db.session() as session:
            row = session.get(TrainingJob, job_id)
            return row.to_entity() if row else None

    def update_job(self, job_id: str, **fields: Any) -> e.TrainingJobRow:
        with self._db.session.begin() as session:
            row = session.get(TrainingJob, job_id, with_for_update=self._db.locking)
            if row is None:
                raise KeyError(f"unknown job {job_id!r}")
            for name, value in fields.items():
                setattr(row, name, value)
            session.flush()
            return row.to_entity()

    def start_job(self, job_id: str, at: datetime) -> e.TrainingJobRow | None:
        """Mark the job running (one transaction); None, and the job ended ``cancelled``, when a
        cancel was asked for before it started."""
        with self._db.session.begin() as session:
            row = session.get(TrainingJob, job_id, with_for_update=self._db.locking)
            if row is None:
                raise KeyError(f"unknown job {job_id!r}")
            if row.status == "cancelled":
                return None
            cancel = (row.params or {}).get("cancel")
            if cancel:
                row.status, row.finished_at = "cancelled", at
                row.reason = cancelled_reason(cancel, "before it started")
                return None
            row.status, row.started_at, row.error = "running", at, None
            session.flush()
            return row.to_entity()

    def request_cancel(
        self,
        job_id: str,
        *,
        at: datetime,
        requested_by: str = "system",
        reason: str = "",
        command_id: str | None = None,
    ) -> e.TrainingJobRow:
        """Cancel a job: a queued one ends ``cancelled`` now; a running one is marked and ends
        at its next checkpoint; a finished one is left as it is. Idempotent. Raises KeyError for
        an unknown job."""
        with self._db.session.begin() as session:
            row = session.get(TrainingJob, job_id, with_for_update=self._db.locking)
            if row is None:
                raise KeyError(f"unknown job {job_id!r}")
            cancel = {"requested_by": requested_by, "at": at.isoformat(), "reason": reason,
                      "command_id": command_id}  # fmt: skip
            if row.status == "queued":
                row.status, row.finished_at = "cancelled", at
                row.params = {**(row.params or {}), "cancel": cancel}
                row.reason = cancelled_reason(cancel, "before it started")
            elif row.status == "running" and not (row.params or {}).get("cancel"):
                row.params = {**(row.params or {}), "cancel": cancel}
            session.flush()
            return row.to_entity()

    def cancel_request(self, job_id: str) -> dict[str, Any] | None:
        """The cancel asked for a job (who, when, why), or None."""
        job = self.get_job(job_id)
        if job is None:
            return None
        cancel = job.params.get("cancel")
        return dict(cancel) if cancel else None

    def list_jobs(
        self,
        domain: str | None = None,
        scope: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[e.TrainingJobRow]:
        query = where_given(
            select(TrainingJob), TrainingJob, domain=domain, scope=scope, status=status
        )
        query = query.order_by(TrainingJob.created_at.desc(), TrainingJob.id)
        with self._db.session() as session:
            return [r.to_entity() for r in session.scalars(query.limit(limit).offset(offset))]

    def count_jobs(
        self, domain: str | None = None, scope: str | None = None, status: str | None = None
    ) -> int:
        query = where_given(
            select(func.count(TrainingJob.id)),
            TrainingJob,
            domain=domain,
            scope=scope,
            status=status,
        )
        with self._db.session() as session:
            return int(session.execute(query).scalar_one())

    def job_for_request(self, request_id: str, recent: int = 200) -> e.TrainingJobRow | None:
        """The job created by, or coalescing, the retrain request ``request_id``."""
        job = self.get_job(request_id)
        if job is not None:
            return job
        for job in self.list_jobs(limit=recent):
            if request_id in job.request_ids:
                return job
        return None


def cancelled_reason(cancel: dict[str, Any], when: str) -> str:
    """``cancelled by <who> <when>: <why>``: the reason a cancelled job records."""
    why = f": {cancel['reason']}" if cancel.get("reason") else ""
    return f"cancelled by {cancel.get('requested_by') or 'system'} {when}{why}"
