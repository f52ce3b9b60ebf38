"""Plain immutable records returned by the ``Store`` (never ORM objects).

Like MLflow's entities/stores split: callers never hold a session or a lazy-loading object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from ml.aggregates import FieldStats

__all__ = [
    "ACTIVE",
    "CANDIDATE",
    "JOB_OPEN",
    "JOB_STATUSES",
    "REJECTED",
    "RETIRED",
    "SCORE_TRIGGERS",
    "VERSION_STATUSES",
    "ActivationRow",
    "DriftEventRow",
    "ForecastRow",
    "TrainingJobRow",
    "ModelVersionRow",
    "ObservationRow",
    "PartitionFault",
    "ScoreRow",
    "StreamPosition",
]

CANDIDATE, ACTIVE, REJECTED, RETIRED = "candidate", "active", "rejected", "retired"
VERSION_STATUSES = frozenset({CANDIDATE, ACTIVE, REJECTED, RETIRED})
JOB_STATUSES = frozenset({"queued", "running", "completed", "failed", "cancelled"})
JOB_OPEN = ("queued", "running")
SCORE_TRIGGERS = frozenset({"evaluate", "monitor", "auto_monitor", "online"})


@dataclass(frozen=True, slots=True)
class ObservationRow:
    """Aggregate of one series in one period."""

    domain: str
    series_key: str
    period_start: datetime
    n_events: int
    fields: dict[str, FieldStats]
    corrections: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ModelVersionRow:
    """A trained model version and its evaluation."""

    domain: str
    scope: str
    version: str
    status: str
    algorithm: str
    features: list[str]
    metrics: dict[str, float]
    train_samples: int
    test_samples: int
    total_samples: int
    segments_covered: int
    artifact_path: str | None
    job_id: str | None
    reason: str
    trained_at: datetime
    created_at: datetime
    #: DB-stored artifact bytes; not shown in reprs
    artifact: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ActivationRow:
    """One activation (or rollback) of a version."""

    domain: str
    scope: str
    version: str
    previous_version: str | None
    activated_at: datetime
    reason: str
    actor: str
    command_id: str | None


@dataclass(frozen=True, slots=True)
class TrainingJobRow:
    """A batch training job."""

    id: str
    domain: str
    scope: str
    status: str
    trigger: str
    request_ids: list[str]
    start_date: date | None
    end_date: date | None
    params: dict[str, Any]
    version: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None


@dataclass(frozen=True, slots=True)
class DriftEventRow:
    """A stored drift detection."""

    event_id: str
    domain: str
    scope: str
    detector: str
    statistic: str
    value: float
    threshold: float | None
    model_version: str | None
    evidence: dict[str, Any]
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """One recorded score of a model on a metric."""

    domain: str
    scope: str
    model_id: str
    metric: str
    score: float
    baseline: float | None
    trigger: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class ForecastRow:
    """A forecast of one series and period; also the input of ``Store.upsert_forecasts``."""

    domain: str
    series_key: str
    model_version: str
    period_start: datetime
    value: float
    lower: float | None = None
    upper: float | None = None
    fallback_level: str | None = None
    #: filled by the store when ``None``
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where one consumer's stored state of a partition ends: the last included ``offset``
    (-1: nothing yet, start from the beginning) and the ``fingerprint`` of that record."""

    topic: str
    partition: int
    offset: int
    fingerprint: str | None


@dataclass(frozen=True, slots=True)
class PartitionFault:
    """A partition a worker refused to consume, and why (see ``millrace checkpoints reset``)."""

    consumer: str
    topic: str
    partition: int
    stored_offset: int
    reason: str
    detected_at: datetime
