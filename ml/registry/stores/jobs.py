"""Training jobs: queued -> running -> completed | failed | cancelled."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import func, select

from ml.registry import entities as e
from ml.registry.db import Database, where_given
from ml.registry.models import TrainingJob, utcnow

__all__ = ["JobStore"]


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
