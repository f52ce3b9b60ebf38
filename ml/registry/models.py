"""SQLAlchemy 2 table definitions of the registry store (the Alembic migrations mirror them)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ml.aggregates import FieldStats
from ml.registry import entities as e

if TYPE_CHECKING:
    from ml.network.state import FieldState

__all__ = [
    "Base",
    "UtcDateTime",
    "utcnow",
    "as_utc",
    "Observation",
    "ProcessedEvent",
    "StreamCheckpoint",
    "StreamFault",
    "StreamStatistic",
    "ModelVersion",
    "Activation",
    "TrainingJob",
    "DriftEventRecord",
    "ScoreHistory",
    "Forecast",
    "ModelConfigRecord",
    "FieldStateRecord",
    "CommandResult",
    "DeadLetter",
    "FieldRejection",
    "PredictionLogRecord",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | str | None) -> datetime | None:
    """Aggregates of datetimes come back as text on SQLite and naive on some drivers."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops tzinfo on its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Observation(Base):
    """Aggregate of one series (segment / cell) over one period (month / window)."""

    __tablename__ = "observations"
    __table_args__ = (
        UniqueConstraint("domain", "series_key", "period_start", name="uq_observation"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(40))
    series_key: Mapped[str] = mapped_column(String(255))
    period_start: Mapped[datetime] = mapped_column(UtcDateTime)
    n_events: Mapped[int] = mapped_column(BigInteger, default=0)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    corrections: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def field_stats(self) -> dict[str, FieldStats]:
        return {k: FieldStats.from_dict(v) for k, v in (self.fields or {}).items()}

    def to_entity(self) -> e.ObservationRow:
        return e.ObservationRow(
            self.domain,
            self.series_key,
            self.period_start,
            self.n_events,
            self.field_stats(),
            self.corrections,
            self.updated_at,
        )


class ProcessedEvent(Base):
    """Ids of events already folded into observations (a re-published duplicate is refused)."""

    __tablename__ = "processed_events"

    domain: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)


class StreamCheckpoint(Base):
    """Last offset included in the stored state of one consumer's partition, and that state."""

    __tablename__ = "stream_checkpoints"

    consumer: Mapped[str] = mapped_column(String(120), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    offset: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: format version of ``state`` (``PartitionProcessor.STATE_VERSION`` of its writer)
    state_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: identifies the record at ``offset`` (None: not verifiable, e.g. after a reset)
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def to_entity(self) -> e.StoredCheckpoint:
        state = None
        if self.state is not None:
            state = e.ProcessorState(self.state_version, self.state)
        return e.StoredCheckpoint(self.topic, self.partition, self.offset, state)


class StreamFault(Base):
    """A partition a worker refused: the broker no longer holds what its checkpoint includes."""

    __tablename__ = "stream_faults"

    consumer: Mapped[str] = mapped_column(String(120), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    stored_offset: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def to_entity(self) -> e.PartitionFault:
        return e.PartitionFault(
            self.consumer,
            self.topic,
            self.partition,
            self.stored_offset,
            self.reason,
            self.detected_at,
        )


class StreamStatistic(Base):
    """One current statistic of a stream partition's processor (drift statistics, running
    scores), written with the batch that changed it: readable without the processor's class."""

    __tablename__ = "stream_statistics"
    __table_args__ = (Index("ix_stream_statistics_domain", "domain", "scope"),)

    consumer: Mapped[str] = mapped_column(String(120), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: what the statistic is about (a segment, a field, ``global``: the whole partition)
    scope: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    domain: Mapped[str] = mapped_column(String(40))
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def to_entity(self) -> e.StreamStatisticRow:
        return e.StreamStatisticRow(
            self.domain,
            self.topic,
            self.partition,
            self.scope,
            self.name,
            self.value,
            self.updated_at,
        )


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("domain", "scope", "version", name="uq_model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(String(120))
    version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    algorithm: Mapped[str] = mapped_column(String(120))
    features: Mapped[list[Any]] = mapped_column(JSON, default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    train_samples: Mapped[int] = mapped_column(Integer, default=0)
    test_samples: Mapped[int] = mapped_column(Integer, default=0)
    total_samples: Mapped[int] = mapped_column(Integer, default=0)
    segments_covered: Mapped[int] = mapped_column(Integer, default=0)
    artifact_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    artifact: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    trained_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def to_entity(self) -> e.ModelVersionRow:
        return e.ModelVersionRow(
            self.domain,
            self.scope,
            self.version,
            self.status,
            self.algorithm,
            list(self.features or []),
            dict(self.metrics or {}),
            self.train_samples,
            self.test_samples,
            self.total_samples,
            self.segments_covered,
            self.artifact_path,
            self.job_id,
            self.reason,
            self.trained_at,
            self.created_at,
        )


class Activation(Base):
    """Audit of which version went live when, replacing which, why and on whose word."""

    __tablename__ = "activations"
    __table_args__ = (Index("ix_activation_scope_time", "domain", "scope", "activated_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(String(120))
    version: Mapped[str] = mapped_column(String(64))
    previous_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    activated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(120), default="system")
    command_id: Mapped[str | None] = mapped_column(String(64), nullable=True)

    def to_entity(self) -> e.ActivationRow:
        return e.ActivationRow(
            self.domain,
            self.scope,
            self.version,
            self.previous_version,
            self.activated_at,
            self.reason,
            self.actor,
            self.command_id,
        )


class TrainingJob(Base):
    __tablename__ = "training_jobs"
    __table_args__ = (Index("ix_job_scope_status", "domain", "scope", "status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    domain: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(20))
    trigger: Mapped[str] = mapped_column(String(40))
    request_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    start_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    end_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    def to_entity(self) -> e.TrainingJobRow:
        return e.TrainingJobRow(
            self.id,
            self.domain,
            self.scope,
            self.status,
            self.trigger,
            list(self.request_ids or []),
            self.start_date,
            self.end_date,
            dict(self.params or {}),
            self.version,
            self.error,
            self.created_at,
            self.started_at,
            self.finished_at,
            self.heartbeat_at,
            self.outcome,
            self.reason,
        )


class DriftEventRecord(Base):
    __tablename__ = "drift_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    domain: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(String(120))
    detector: Mapped[str] = mapped_column(String(60))
    statistic: Mapped[str] = mapped_column(String(60))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def to_entity(self) -> e.DriftEventRow:
        return e.DriftEventRow(
            self.event_id,
            self.domain,
            self.scope,
            self.detector,
            self.statistic,
            self.value,
            self.threshold,
            self.model_version,
            dict(self.evidence or {}),
            self.occurred_at,
        )


class DeadLetter(Base):
    """A refused stream message, written in the transaction of the batch that refused it; one
    row per message position (its ``event_id`` derives from topic/partition/offset)."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        Index("ix_dead_letters_error_type", "error_type"),
        Index("ix_dead_letters_topic", "topic"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    consumer: Mapped[str] = mapped_column(String(120))
    topic: Mapped[str] = mapped_column(String(255))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error_type: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    payload_bytes: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def to_entity(self) -> e.DeadLetterRow:
        return e.DeadLetterRow(
            self.event_id,
            self.consumer,
            self.topic,
            self.partition,
            self.offset,
            self.key,
            self.error_type,
            self.reason,
            self.payload,
            self.payload_bytes,
            self.occurred_at,
            self.created_at,
        )


class FieldRejection(Base):
    """Values dropped from accepted stream events (invalid, the rest of the event kept),
    counted per topic, partition, field and reason in the transaction of each batch. One row
    per partition: only the worker owning a partition writes its rows (fenced batches)."""

    __tablename__ = "field_rejections"
    __table_args__ = (
        UniqueConstraint("topic", "partition", "field", "reason", name="uq_field_rejections"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(255))
    partition: Mapped[int] = mapped_column(Integer)
    domain: Mapped[str] = mapped_column(String(60))
    field: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(40))
    count: Mapped[int] = mapped_column(BigInteger)
    example_value: Mapped[str] = mapped_column(String(64))
    example_detail: Mapped[str] = mapped_column(Text)
    example_event_id: Mapped[str] = mapped_column(String(128))
    example_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    example_offset: Mapped[int] = mapped_column(BigInteger)
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PredictionLogRecord(Base):
    """One prediction the API served: its inputs, its answer, the version and the latency."""

    __tablename__ = "prediction_log"
    __table_args__ = (Index("ix_prediction_log_served_at", "served_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(40))
    endpoint: Mapped[str] = mapped_column(String(60))
    model_version: Mapped[str] = mapped_column(String(64))
    #: JSON text (orjson, written in batches: the stdlib encoder was most of a flush's cost)
    inputs: Mapped[str] = mapped_column(Text)
    output: Mapped[str] = mapped_column(Text)
    latency_ms: Mapped[float] = mapped_column(Float)
    served_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def to_entity(self) -> e.PredictionRow:
        return e.PredictionRow(
            self.domain,
            self.endpoint,
            self.model_version,
            orjson.loads(self.inputs),
            orjson.loads(self.output),
            self.latency_ms,
            self.served_at,
            self.id,
        )


class ScoreHistory(Base):
    __tablename__ = "score_history"
    __table_args__ = (
        Index("ix_score_scope", "domain", "scope", "recorded_at"),
        Index("ix_score_model", "domain", "scope", "model_id", "metric", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(String(120))
    model_id: Mapped[str] = mapped_column(String(120))
    metric: Mapped[str] = mapped_column(String(20))
    score: Mapped[float] = mapped_column(Float)
    baseline: Mapped[float | None] = mapped_column(Float, nullable=True)
    trigger: Mapped[str] = mapped_column(String(20))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    #: the stream partition whose running score this is (None: not a per-partition score)
    partition: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: points behind ``score`` (for MAPE: those with a non-zero actual)
    n: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: sufficient statistics of the score (``RunningMetrics.stats``; ``baseline``: the
    #: baseline's), so partitions' scores merge exactly
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    def to_entity(self) -> e.ScoreRow:
        return e.ScoreRow(
            self.domain,
            self.scope,
            self.model_id,
            self.metric,
            self.score,
            self.baseline,
            self.trigger,
            self.recorded_at,
            self.partition,
            self.n,
            self.stats,
        )


class Forecast(Base):
    __tablename__ = "forecasts"
    __table_args__ = (
        UniqueConstraint(
            "domain", "series_key", "model_version", "period_start", name="uq_forecast"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(40))
    series_key: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[datetime] = mapped_column(UtcDateTime)
    value: Mapped[float] = mapped_column(Float)
    lower: Mapped[float | None] = mapped_column(Float, nullable=True)
    upper: Mapped[float | None] = mapped_column(Float, nullable=True)
    fallback_level: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def to_entity(self) -> e.ForecastRow:
        return e.ForecastRow(
            self.domain,
            self.series_key,
            self.model_version,
            self.period_start,
            self.value,
            self.lower,
            self.upper,
            self.fallback_level,
            self.created_at,
        )


class ModelConfigRecord(Base):
    """A model config of a domain (network: architecture, fields, windows...); deleting one
    keeps the row with ``deleted_at`` set, so history and versions still resolve."""

    __tablename__ = "model_configs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    domain: Mapped[str] = mapped_column(String(40))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    command_id: Mapped[str | None] = mapped_column(String(128), nullable=True)

    def to_entity(self) -> e.ConfigRow:
        from ml.network.configs import parse_config

        return e.ConfigRow(
            parse_config(self.config), self.created_at, self.deleted_at, self.command_id
        )


class FieldStateRecord(Base):
    """Performance and monitoring state of one output field (``ml.network.state.FieldState``)."""

    __tablename__ = "field_states"

    field: Mapped[str] = mapped_column(String(60), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))
    metric: Mapped[str] = mapped_column(String(10))
    best_model_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    baseline: Mapped[float | None] = mapped_column(Float, nullable=True)
    elected_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    jobs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    lock_owner: Mapped[str | None] = mapped_column(String(120), nullable=True)
    locked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    next_check_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    def to_entity(self) -> FieldState:
        from ml.network.state import FieldState, MonitoringState

        return FieldState(
            field=self.field,
            state=MonitoringState(self.state),
            metric=self.metric,
            best_model_id=self.best_model_id,
            baseline=self.baseline,
            elected_at=self.elected_at,
            jobs=tuple(self.jobs or ()),
            lock_owner=self.lock_owner,
            locked_at=self.locked_at,
            next_check_at=self.next_check_at,
            reason=self.reason or "",
            updated_at=self.updated_at,
        )

    def update_from(self, state: FieldState) -> None:
        self.state = str(state.state)
        self.metric = state.metric
        self.best_model_id = state.best_model_id
        self.baseline = state.baseline
        self.elected_at = state.elected_at
        self.jobs = list(state.jobs)
        self.lock_owner = state.lock_owner
        self.locked_at = state.locked_at
        self.next_check_at = state.next_check_at
        self.reason = state.reason
        self.updated_at = state.updated_at or utcnow()


class CommandResult(Base):
    """What the trainer did with a published command (the API answers with it)."""

    __tablename__ = "command_results"

    command_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    command: Mapped[str] = mapped_column(String(40))
    domain: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(10))  # ok | error
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def to_entity(self) -> e.CommandResultRow:
        return e.CommandResultRow(
            self.command_id,
            self.command,
            self.domain,
            self.scope,
            self.status,
            dict(self.result or {}),
            self.error,
            self.created_at,
        )
