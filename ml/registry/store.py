"""The registry store: one interface over SQLite and PostgreSQL (SQLAlchemy 2).

Every method is one short transaction and returns plain entities (``ml.registry.entities``).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, Select, delete, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ml.aggregates import FieldStats
from ml.observations import ObservationDelta, combine
from ml.registry import entities as e
from ml.registry.db import make_engine
from ml.registry.db import upgrade as migrate
from ml.registry.errors import StaleCheckpoint
from ml.registry.models import (
    Activation,
    DriftEventRecord,
    Forecast,
    ModelVersion,
    Observation,
    ProcessedEvent,
    ScoreHistory,
    StreamCheckpoint,
    StreamFault,
    TrainingJob,
    utcnow,
)

__all__ = ["Store", "OPEN_JOB_STATES"]

#: (consumer, topic, partition)
CheckpointKey = tuple[str, str, int]
OPEN_JOB_STATES = ("queued", "running")


@dataclass(frozen=True, slots=True)
class _Marks:
    """What a stream batch records of its partitions (see ``Store.apply_observations``)."""

    offsets: Mapping[CheckpointKey, int]
    states: Mapping[CheckpointKey, bytes | None]
    expected: Mapping[CheckpointKey, int | None]
    fingerprints: Mapping[CheckpointKey, str | None]


def _utc(value: datetime | str | None) -> datetime | None:
    """Aggregates of datetimes come back as text on SQLite and naive on some drivers."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _obs(row: Observation) -> e.ObservationRow:
    fields = {k: FieldStats.from_dict(v) for k, v in (row.fields or {}).items()}
    return e.ObservationRow(
        row.domain,
        row.series_key,
        row.period_start,
        row.n_events,
        fields,
        row.corrections,
        row.updated_at,
    )


def _version(row: ModelVersion) -> e.ModelVersionRow:
    return e.ModelVersionRow(
        row.domain,
        row.scope,
        row.version,
        row.status,
        row.algorithm,
        list(row.features or []),
        dict(row.metrics or {}),
        row.train_samples,
        row.test_samples,
        row.total_samples,
        row.segments_covered,
        row.artifact_path,
        row.job_id,
        row.reason,
        row.trained_at,
        row.created_at,
    )


def _activation(row: Activation) -> e.ActivationRow:
    return e.ActivationRow(
        row.domain,
        row.scope,
        row.version,
        row.previous_version,
        row.activated_at,
        row.reason,
        row.actor,
        row.command_id,
    )


def _job(row: TrainingJob) -> e.TrainingJobRow:
    return e.TrainingJobRow(
        row.id,
        row.domain,
        row.scope,
        row.status,
        row.trigger,
        list(row.request_ids or []),
        row.start_date,
        row.end_date,
        dict(row.params or {}),
        row.version,
        row.error,
        row.created_at,
        row.started_at,
        row.finished_at,
        row.heartbeat_at,
    )


def _drift(row: DriftEventRecord) -> e.DriftEventRow:
    return e.DriftEventRow(
        row.event_id,
        row.domain,
        row.scope,
        row.detector,
        row.statistic,
        row.value,
        row.threshold,
        row.model_version,
        dict(row.evidence or {}),
        row.occurred_at,
    )


def _score(row: ScoreHistory) -> e.ScoreRow:
    return e.ScoreRow(
        row.domain,
        row.scope,
        row.model_id,
        row.metric,
        row.score,
        row.baseline,
        row.trigger,
        row.recorded_at,
    )


def _forecast(row: Forecast) -> e.ForecastRow:
    return e.ForecastRow(
        row.domain,
        row.series_key,
        row.model_version,
        row.period_start,
        row.value,
        row.lower,
        row.upper,
        row.fallback_level,
        row.created_at,
    )


class Store:
    """Registry store over one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)
        self._locking = engine.dialect.name == "postgresql"
        #: positional parameter marker of the driver (plain SQL on the stream's hot path)
        self._mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"

    @classmethod
    def from_url(cls, url: str, upgrade: bool = True) -> Store:
        """Open the database at ``url``, migrating it to the latest schema first by default."""
        if upgrade:
            migrate(url)
        return cls(make_engine(url))

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # --- observations and checkpoints ------------------------------------------------------
    def apply_observations(
        self,
        deltas: Iterable[ObservationDelta],
        checkpoints: Mapping[CheckpointKey, int] | None = None,
        states: Mapping[CheckpointKey, bytes | None] | None = None,
        event_ids: Iterable[tuple[str, str]] = (),
        corrections: Iterable[tuple[str, str, datetime]] = (),
        drift_events: Iterable[dict[str, Any]] = (),
        forecasts: Iterable[e.ForecastRow] = (),
        scores: Iterable[dict[str, Any]] = (),
        *,
        expected: Mapping[CheckpointKey, int | None] | None = None,
        fingerprints: Mapping[CheckpointKey, str | None] | None = None,
        attempts: int = 3,
    ) -> None:
        """Commit one stream batch in ONE transaction: merge ``deltas`` into the observations,
        record the partitions' ``checkpoints`` (offsets, with the ``fingerprints`` of the records
        at them) and processor ``states``, the processed ``event_ids``, late-event
        ``corrections`` per observation, new ``drift_events`` (deduped by event id),
        ``forecasts`` (upserted) and score-history rows.

        ``expected`` fences the batch: for each key it names, the stored offset must still be
        the given one (None: no row yet), otherwise :class:`StaleCheckpoint` is raised and
        nothing is written (another worker took the partition and moved on).

        Checkpoints are written first so that, on SQLite, the write lock is held before the
        observation rows are read (no lost update between processes). A unique-key race on a new
        row (two workers during a rebalance hand-over) rolls back and retries the whole batch.
        """
        combined = sorted(combine(deltas).items(), key=lambda kv: kv[0])
        ids = [(domain, event_id) for domain, event_id in event_ids]
        late = Counter(corrections)
        extras = (list(drift_events), list(forecasts), list(scores))
        marks = _Marks(checkpoints or {}, states or {}, expected or {}, fingerprints or {})
        for attempt in range(1, attempts + 1):
            try:
                self._apply(combined, marks, ids, late, extras)
                return
            except IntegrityError:
                if attempt == attempts:
                    raise

    def _apply(
        self,
        combined: list[tuple[tuple[str, str, datetime], ObservationDelta]],
        marks: _Marks,
        event_ids: list[tuple[str, str]],
        late: Counter[tuple[str, str, datetime]],
        extras: tuple[list[dict[str, Any]], list[e.ForecastRow], list[dict[str, Any]]],
    ) -> None:
        now = utcnow()
        with self._session.begin() as session:
            keys = sorted(set(marks.offsets) | set(marks.states))
            stored = self._stored_checkpoints(session, keys)
            for key, want in marks.expected.items():
                row = stored.get(key)
                if (row.offset if row is not None else None) != want:
                    raise StaleCheckpoint(
                        f"{key[1]}[{key[2]}] of {key[0]}: stored offset is "
                        f"{row.offset if row is not None else 'none'}, this batch starts after "
                        f"{want}; another worker committed it"
                    )
            for key in keys:
                self._put_checkpoint(session, key, marks, now, stored)
            session.flush()
            if event_ids:  # the driver's executemany: no per-row work in SQLAlchemy
                mark = self._mark
                session.connection().exec_driver_sql(
                    f"INSERT INTO {ProcessedEvent.__tablename__} (domain, event_id)"
                    f" VALUES ({mark}, {mark})",
                    event_ids,
                )
            existing = self._existing_observations(session, [key for key, _ in combined])
            for (domain, series, start), delta in combined:
                row = existing.get((domain, series, start))
                if row is None:
                    row = Observation(
                        domain=domain,
                        series_key=series,
                        period_start=start,
                        n_events=0,
                        fields={},
                        corrections=0,
                    )
                    session.add(row)
                fields = {k: FieldStats.from_dict(v) for k, v in (row.fields or {}).items()}
                for name, stats in delta.fields.items():
                    fields.setdefault(name, FieldStats()).merge(stats)
                row.fields = {k: v.to_dict() for k, v in fields.items()}
                row.n_events = (row.n_events or 0) + delta.n_events
                row.corrections = (row.corrections or 0) + late[(domain, series, start)]
                row.updated_at = now
            self._add_drift_events(session, extras[0])
            self._upsert_forecasts(session, extras[1])
            session.add_all(ScoreHistory(**row) for row in extras[2])

    def _existing_observations(
        self, session: Session, keys: list[tuple[str, str, datetime]]
    ) -> dict[tuple[str, str, datetime], Observation]:
        """The stored rows among ``keys``, read (and locked on PostgreSQL) in one query."""
        if not keys:
            return {}
        query = select(Observation).where(
            Observation.domain.in_({k[0] for k in keys}),
            Observation.series_key.in_({k[1] for k in keys}),
            Observation.period_start.in_({k[2] for k in keys}),
        )
        if self._locking:
            query = query.with_for_update()
        wanted = set(keys)
        rows = session.scalars(query)
        return {key: r for r in rows if (key := (r.domain, r.series_key, r.period_start)) in wanted}

    @staticmethod
    def _stored_checkpoints(
        session: Session, keys: list[CheckpointKey]
    ) -> dict[CheckpointKey, StreamCheckpoint]:
        """The stored checkpoint rows among ``keys``, read in one query."""
        if not keys:
            return {}
        query = select(StreamCheckpoint).where(
            StreamCheckpoint.consumer.in_({k[0] for k in keys}),
            StreamCheckpoint.topic.in_({k[1] for k in keys}),
            StreamCheckpoint.partition.in_({k[2] for k in keys}),
        )
        return {(r.consumer, r.topic, r.partition): r for r in session.scalars(query)}

    def _put_checkpoint(
        self,
        session: Session,
        key: CheckpointKey,
        marks: _Marks,
        now: datetime,
        stored: Mapping[CheckpointKey, StreamCheckpoint],
    ) -> None:
        consumer, topic, partition = key
        offset, states = marks.offsets.get(key), marks.states
        row = stored.get(key)
        if row is None:
            if offset is None:
                raise ValueError(f"a new checkpoint needs an offset: {key}")
            row = StreamCheckpoint(consumer=consumer, topic=topic, partition=partition)
            session.add(row)
        if offset is not None:
            if not isinstance(offset, int) or offset < 0:
                raise ValueError(f"checkpoint offset must be a non-negative int, got {offset!r}")
            row.offset = offset
            row.fingerprint = marks.fingerprints.get(key)
        if key in states:
            row.state = states[key]
        row.updated_at = now

    def known_event_ids(self, domain: str, event_ids: Iterable[str]) -> set[str]:
        """Which of ``event_ids`` were already processed for ``domain``."""
        ids = list(set(event_ids))
        found: set[str] = set()
        mark = self._mark
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                # plain driver SQL: building 500 bound parameters through the ORM cost ~2 us
                # per event on the stream's path
                sql = (
                    f"SELECT event_id FROM {ProcessedEvent.__tablename__} WHERE domain = {mark}"
                    f" AND event_id IN ({', '.join([mark] * len(chunk))})"
                )
                found.update(row[0] for row in conn.exec_driver_sql(sql, (domain, *chunk)))
        return found

    def positions(self, consumer: str) -> dict[tuple[str, int], e.StreamPosition]:
        """Where ``consumer``'s stored state ends, per (topic, partition) (no state blobs)."""
        query = select(
            StreamCheckpoint.topic,
            StreamCheckpoint.partition,
            StreamCheckpoint.offset,
            StreamCheckpoint.fingerprint,
        ).where(StreamCheckpoint.consumer == consumer)
        with self.engine.connect() as conn:
            return {(r[0], r[1]): e.StreamPosition(*r) for r in conn.execute(query)}

    def reset_positions(
        self, consumer: str, topic: str, offsets: Mapping[int, int] | None = None
    ) -> int:
        """Move ``consumer``'s stored positions on ``topic``: to ``offsets`` (partition -> last
        offset to treat as included) or, without it, to the beginning (-1). Observations and
        processor state stay; the positions lose their fingerprint and the topic's faults are
        cleared. Returns how many positions were moved."""
        now = utcnow()
        with self._session.begin() as session:
            rows = session.scalars(
                select(StreamCheckpoint).where(
                    StreamCheckpoint.consumer == consumer, StreamCheckpoint.topic == topic
                )
            ).all()
            moved = 0
            for row in rows:
                target = -1 if offsets is None else offsets.get(row.partition)
                if target is None:
                    continue
                row.offset, row.fingerprint, row.updated_at = target, None, now
                moved += 1
            session.execute(
                delete(StreamFault).where(
                    StreamFault.consumer == consumer, StreamFault.topic == topic
                )
            )
        return moved

    def record_fault(
        self, consumer: str, topic: str, partition: int, stored_offset: int, reason: str
    ) -> None:
        """Note that ``consumer`` refused a partition (replaces an earlier note)."""
        with self._session.begin() as session:
            row = session.get(StreamFault, (consumer, topic, partition))
            if row is None:
                row = StreamFault(consumer=consumer, topic=topic, partition=partition)
                session.add(row)
            row.stored_offset, row.reason, row.detected_at = stored_offset, reason, utcnow()

    def clear_fault(self, consumer: str, topic: str, partition: int) -> None:
        with self._session.begin() as session:
            row = session.get(StreamFault, (consumer, topic, partition))
            if row is not None:
                session.delete(row)

    def faults(self, consumer: str | None = None) -> list[e.PartitionFault]:
        """Partitions refused by a worker (of ``consumer``, or of any)."""
        query = select(StreamFault).order_by(StreamFault.topic, StreamFault.partition)
        if consumer is not None:
            query = query.where(StreamFault.consumer == consumer)
        with self._session() as session:
            return [
                e.PartitionFault(
                    r.consumer, r.topic, r.partition, r.stored_offset, r.reason, r.detected_at
                )
                for r in session.scalars(query)
            ]

    def checkpoints(self, consumer: str) -> dict[tuple[str, int], tuple[int, bytes | None]]:
        with self._session() as session:
            rows = session.scalars(
                select(StreamCheckpoint).where(StreamCheckpoint.consumer == consumer)
            )
            return {(r.topic, r.partition): (r.offset, r.state) for r in rows}

    def observations(
        self,
        domain: str,
        series_key: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[e.ObservationRow]:
        query = select(Observation).where(Observation.domain == domain)
        if series_key is not None:
            query = query.where(Observation.series_key == series_key)
        if start is not None:
            query = query.where(Observation.period_start >= start)
        if end is not None:
            query = query.where(Observation.period_start < end)
        query = query.order_by(Observation.series_key, Observation.period_start)
        with self._session() as session:
            return [_obs(r) for r in session.scalars(query)]

    def observation_totals(self, domain: str) -> dict[str, int]:
        query = (
            select(Observation.series_key, func.sum(Observation.n_events))
            .where(Observation.domain == domain)
            .group_by(Observation.series_key)
        )
        with self._session() as session:
            return {k: int(v) for k, v in session.execute(query)}

    def count_events(self, domain: str) -> int:
        query = select(func.coalesce(func.sum(Observation.n_events), 0)).where(
            Observation.domain == domain
        )
        with self._session() as session:
            return int(session.execute(query).scalar_one())

    def observation_stats(self) -> list[dict[str, Any]]:
        """Per domain: events folded in, distinct series, latest period."""
        query = select(
            Observation.domain,
            func.sum(Observation.n_events),
            func.count(func.distinct(Observation.series_key)),
            func.max(Observation.period_start),
        ).group_by(Observation.domain)
        with self._session() as session:
            out = []
            for domain, events, series, latest in session.execute(query):
                if isinstance(latest, str):  # SQLite returns aggregates of datetimes as text
                    latest = datetime.fromisoformat(latest)
                if latest is not None and latest.tzinfo is None:
                    latest = latest.replace(tzinfo=UTC)
                out.append(
                    {
                        "domain": domain,
                        "events": int(events or 0),
                        "series": int(series),
                        "latest_period": latest,
                    }
                )
            return out

    # --- model versions and activations ----------------------------------------------------
    def add_version(self, **fields: Any) -> e.ModelVersionRow:
        fields.setdefault("trained_at", utcnow())
        fields.setdefault("status", "candidate")
        with self._session.begin() as session:
            row = ModelVersion(**fields)
            session.add(row)
            session.flush()
            return _version(row)

    def get_version(self, domain: str, scope: str, version: str) -> e.ModelVersionRow | None:
        with self._session() as session:
            row = session.scalars(
                select(ModelVersion).where(
                    ModelVersion.domain == domain,
                    ModelVersion.scope == scope,
                    ModelVersion.version == version,
                )
            ).one_or_none()
            return _version(row) if row else None

    def get_artifact(self, domain: str, scope: str, version: str) -> bytes | None:
        with self._session() as session:
            return session.scalars(
                select(ModelVersion.artifact).where(
                    ModelVersion.domain == domain,
                    ModelVersion.scope == scope,
                    ModelVersion.version == version,
                )
            ).one_or_none()

    def list_versions(
        self,
        domain: str | None = None,
        scope: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[e.ModelVersionRow]:
        query = select(ModelVersion)
        if domain is not None:
            query = query.where(ModelVersion.domain == domain)
        if scope is not None:
            query = query.where(ModelVersion.scope == scope)
        if status is not None:
            query = query.where(ModelVersion.status == status)
        query = query.order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
        with self._session() as session:
            return [_version(r) for r in session.scalars(query.limit(limit).offset(offset))]

    def count_versions(
        self, domain: str | None = None, scope: str | None = None, status: str | None = None
    ) -> int:
        query = select(func.count(ModelVersion.id))
        if domain is not None:
            query = query.where(ModelVersion.domain == domain)
        if scope is not None:
            query = query.where(ModelVersion.scope == scope)
        if status is not None:
            query = query.where(ModelVersion.status == status)
        with self._session() as session:
            return int(session.execute(query).scalar_one())

    def set_version_status(
        self, domain: str, scope: str, version: str, status: str, reason: str | None = None
    ) -> None:
        with self._session.begin() as session:
            row = session.scalars(
                select(ModelVersion).where(
                    ModelVersion.domain == domain,
                    ModelVersion.scope == scope,
                    ModelVersion.version == version,
                )
            ).one()
            row.status = status
            if reason is not None:
                row.reason = reason

    @staticmethod
    def _live_query(domain: str, scope: str, at: datetime | None = None) -> Select[Any]:
        """The version of the latest activation of a scope (at or before ``at``)."""
        query = select(Activation.version).where(
            Activation.domain == domain, Activation.scope == scope
        )
        if at is not None:
            query = query.where(Activation.activated_at <= at)
        return query.order_by(Activation.activated_at.desc(), Activation.id.desc()).limit(1)

    def live_activation(self, domain: str, scope: str = "global") -> e.ActivationRow | None:
        """The latest activation of a scope (which version is live, since when)."""
        query = (
            select(Activation)
            .where(Activation.domain == domain, Activation.scope == scope)
            .order_by(Activation.activated_at.desc(), Activation.id.desc())
            .limit(1)
        )
        with self._session() as session:
            row = session.scalars(query).first()
            return _activation(row) if row else None

    def active_version(self, domain: str, scope: str = "global") -> str | None:
        with self._session() as session:
            return session.scalars(self._live_query(domain, scope)).first()

    def record_activation(
        self,
        domain: str,
        scope: str,
        version: str,
        reason: str,
        actor: str = "system",
        command_id: str | None = None,
        at: datetime | None = None,
    ) -> e.ActivationRow:
        """Make ``version`` the live one; the previous one is retired; all in one transaction."""
        at = at or utcnow()
        with self._session.begin() as session:
            target = session.scalars(
                select(ModelVersion)
                .where(
                    ModelVersion.domain == domain,
                    ModelVersion.scope == scope,
                    ModelVersion.version == version,
                )
                .with_for_update()
            ).one_or_none()
            if target is None:
                raise KeyError(f"unknown version {version!r} for {domain}/{scope}")
            previous = session.scalars(self._live_query(domain, scope)).first()
            for row in session.scalars(
                select(ModelVersion).where(
                    ModelVersion.domain == domain,
                    ModelVersion.scope == scope,
                    ModelVersion.status == "active",
                )
            ):
                row.status = "retired"
            target.status = "active"
            activation = Activation(
                domain=domain,
                scope=scope,
                version=version,
                previous_version=previous,
                activated_at=at,
                reason=reason,
                actor=actor,
                command_id=command_id,
            )
            session.add(activation)
            session.flush()
            return _activation(activation)

    def activations(self, domain: str, scope: str = "global") -> list[e.ActivationRow]:
        query = (
            select(Activation)
            .where(Activation.domain == domain, Activation.scope == scope)
            .order_by(Activation.activated_at, Activation.id)
        )
        with self._session() as session:
            return [_activation(r) for r in session.scalars(query)]

    def live_at(self, domain: str, scope: str, at: datetime) -> str | None:
        """The version that was live at instant ``at`` (None before the first activation)."""
        with self._session() as session:
            return session.scalars(self._live_query(domain, scope, at)).first()

    # --- training jobs -----------------------------------------------------------------------
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
        with self._session.begin() as session:
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
            return _job(row)

    def get_job(self, job_id: str) -> e.TrainingJobRow | None:
        with self._session() as session:
            row = session.get(TrainingJob, job_id)
            return _job(row) if row else None

    def update_job(self, job_id: str, **fields: Any) -> e.TrainingJobRow:
        with self._session.begin() as session:
            row = session.get(TrainingJob, job_id, with_for_update=self._locking)
            if row is None:
                raise KeyError(f"unknown job {job_id!r}")
            for name, value in fields.items():
                setattr(row, name, value)
            session.flush()
            return _job(row)

    def list_jobs(
        self,
        domain: str | None = None,
        scope: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[e.TrainingJobRow]:
        query = self._jobs_query(select(TrainingJob), domain, scope, status)
        query = query.order_by(TrainingJob.created_at.desc(), TrainingJob.id)
        with self._session() as session:
            return [_job(r) for r in session.scalars(query.limit(limit).offset(offset))]

    def count_jobs(
        self, domain: str | None = None, scope: str | None = None, status: str | None = None
    ) -> int:
        query = self._jobs_query(select(func.count(TrainingJob.id)), domain, scope, status)
        with self._session() as session:
            return int(session.execute(query).scalar_one())

    @staticmethod
    def _jobs_query(
        query: Select[Any], domain: str | None, scope: str | None, status: str | None
    ) -> Select[Any]:
        if domain is not None:
            query = query.where(TrainingJob.domain == domain)
        if scope is not None:
            query = query.where(TrainingJob.scope == scope)
        if status is not None:
            query = query.where(TrainingJob.status == status)
        return query

    def job_for_request(self, request_id: str, recent: int = 200) -> e.TrainingJobRow | None:
        """The job created by, or coalescing, the retrain request ``request_id``."""
        job = self.get_job(request_id)
        if job is not None:
            return job
        for job in self.list_jobs(limit=recent):
            if request_id in job.request_ids:
                return job
        return None

    def open_job(self, domain: str, scope: str) -> e.TrainingJobRow | None:
        """The queued or running job of a scope, if any."""
        query = (
            select(TrainingJob)
            .where(
                TrainingJob.domain == domain,
                TrainingJob.scope == scope,
                TrainingJob.status.in_(OPEN_JOB_STATES),
            )
            .order_by(TrainingJob.created_at)
            .limit(1)
        )
        with self._session() as session:
            row = session.scalars(query).first()
            return _job(row) if row else None

    def series_summary(self, domain: str) -> list[dict[str, Any]]:
        """Per series: first and last period observed, periods and events."""
        query = (
            select(
                Observation.series_key,
                func.min(Observation.period_start),
                func.max(Observation.period_start),
                func.count(Observation.id),
                func.sum(Observation.n_events),
            )
            .where(Observation.domain == domain)
            .group_by(Observation.series_key)
            .order_by(Observation.series_key)
        )
        with self._session() as session:
            return [
                {
                    "series_key": key,
                    "first_period": _utc(first),
                    "last_period": _utc(last),
                    "periods": int(periods),
                    "events": int(events or 0),
                }
                for key, first, last, periods, events in session.execute(query)
            ]

    def latest_scores(self, domain: str, model_id: str, metric: str) -> dict[str, float]:
        """The most recent score of ``model_id`` on ``metric`` per scope."""
        newest = (
            select(ScoreHistory.scope, func.max(ScoreHistory.id).label("id"))
            .where(
                ScoreHistory.domain == domain,
                ScoreHistory.model_id == model_id,
                ScoreHistory.metric == metric,
            )
            .group_by(ScoreHistory.scope)
            .subquery()
        )
        query = select(ScoreHistory.scope, ScoreHistory.score).join(
            newest, ScoreHistory.id == newest.c.id
        )
        with self._session() as session:
            return {scope: float(score) for scope, score in session.execute(query)}

    # --- drift, scores, forecasts --------------------------------------------------------------
    def add_drift_event(
        self,
        *,
        event_id: str,
        domain: str,
        scope: str,
        detector: str,
        statistic: str,
        value: float,
        occurred_at: datetime,
        threshold: float | None = None,
        model_version: str | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> bool:
        """Store a drift event; False if one with this ``event_id`` exists already."""
        row = dict(
            event_id=event_id,
            domain=domain,
            scope=scope,
            detector=detector,
            statistic=statistic,
            value=value,
            threshold=threshold,
            model_version=model_version,
            evidence=evidence or {},
            occurred_at=occurred_at,
        )
        with self._session.begin() as session:
            return self._add_drift_events(session, [row]) == 1

    @staticmethod
    def _add_drift_events(session: Session, rows: list[dict[str, Any]]) -> int:
        """Insert the drift events whose ``event_id`` is new; return how many."""
        if not rows:
            return 0
        known = set(
            session.scalars(
                select(DriftEventRecord.event_id).where(
                    DriftEventRecord.event_id.in_([r["event_id"] for r in rows])
                )
            )
        )
        fresh = {r["event_id"]: r for r in rows if r["event_id"] not in known}
        session.add_all(
            DriftEventRecord(**{**r, "evidence": r.get("evidence") or {}}) for r in fresh.values()
        )
        return len(fresh)

    def drift_events(
        self, domain: str | None = None, scope: str | None = None, limit: int = 100
    ) -> list[e.DriftEventRow]:
        query = select(DriftEventRecord)
        if domain is not None:
            query = query.where(DriftEventRecord.domain == domain)
        if scope is not None:
            query = query.where(DriftEventRecord.scope == scope)
        query = query.order_by(
            DriftEventRecord.occurred_at.desc(), DriftEventRecord.id.desc()
        ).limit(limit)
        with self._session() as session:
            return [_drift(r) for r in session.scalars(query)]

    def add_score(
        self,
        *,
        domain: str,
        scope: str,
        model_id: str,
        metric: str,
        score: float,
        trigger: str,
        baseline: float | None = None,
        recorded_at: datetime | None = None,
    ) -> e.ScoreRow:
        with self._session.begin() as session:
            row = ScoreHistory(
                domain=domain,
                scope=scope,
                model_id=model_id,
                metric=metric,
                score=score,
                baseline=baseline,
                trigger=trigger,
                recorded_at=recorded_at or utcnow(),
            )
            session.add(row)
            session.flush()
            return _score(row)

    def score_history(
        self, domain: str, scope: str, model_id: str | None = None
    ) -> list[e.ScoreRow]:
        query = select(ScoreHistory).where(
            ScoreHistory.domain == domain, ScoreHistory.scope == scope
        )
        if model_id is not None:
            query = query.where(ScoreHistory.model_id == model_id)
        query = query.order_by(ScoreHistory.recorded_at, ScoreHistory.id)
        with self._session() as session:
            return [_score(r) for r in session.scalars(query)]

    def upsert_forecasts(self, rows: Iterable[e.ForecastRow]) -> int:
        """Insert or replace forecasts keyed by (domain, series, version, period)."""
        with self._session.begin() as session:
            return self._upsert_forecasts(session, rows)

    @staticmethod
    def _upsert_forecasts(session: Session, rows: Iterable[e.ForecastRow]) -> int:
        """Insert or replace forecasts; the existing ones are read in one query."""
        latest = {(f.domain, f.series_key, f.model_version, f.period_start): f for f in rows}
        if not latest:
            return 0
        keys = list(latest)
        existing = {
            (r.domain, r.series_key, r.model_version, r.period_start): r
            for r in session.scalars(
                select(Forecast).where(
                    Forecast.domain.in_({k[0] for k in keys}),
                    Forecast.series_key.in_({k[1] for k in keys}),
                    Forecast.model_version.in_({k[2] for k in keys}),
                    Forecast.period_start.in_({k[3] for k in keys}),
                )
            )
        }
        now = utcnow()
        for key, f in latest.items():
            row = existing.get(key)
            if row is None:
                row = Forecast(
                    domain=f.domain,
                    series_key=f.series_key,
                    model_version=f.model_version,
                    period_start=f.period_start,
                )
                session.add(row)
            row.value, row.lower, row.upper = f.value, f.lower, f.upper
            row.fallback_level, row.created_at = f.fallback_level, now
        return len(latest)

    def forecasts(
        self, domain: str, series_key: str, model_version: str | None = None
    ) -> list[e.ForecastRow]:
        query = select(Forecast).where(Forecast.domain == domain, Forecast.series_key == series_key)
        if model_version is not None:
            query = query.where(Forecast.model_version == model_version)
        with self._session() as session:
            return [_forecast(r) for r in session.scalars(query.order_by(Forecast.period_start))]
