"""Plain immutable records returned by the ``Store`` (never ORM objects).

Like MLflow's entities/stores split: callers never hold a session or a lazy-loading object.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ml.aggregates import FieldStats

if TYPE_CHECKING:
    from ml.network.configs import ModelConfig

__all__ = [
    "ACTIVE",
    "CANDIDATE",
    "JOB_OPEN",
    "JOB_OUTCOMES",
    "JOB_STATUSES",
    "REJECTED",
    "RETIRED",
    "SCORE_TRIGGERS",
    "VERSION_STATUSES",
    "ActivationRow",
    "CommandResultRow",
    "ConfigRow",
    "DeadLetterCounts",
    "DeadLetterRow",
    "DriftEventRow",
    "FieldRejectionCount",
    "FieldRejectionTotal",
    "ForecastRow",
    "TrainingJobRow",
    "ModelVersionRow",
    "ObservationRow",
    "OnlineScore",
    "PartitionFault",
    "PartitionProgress",
    "PredictionRow",
    "ProcessorState",
    "ScoreRow",
    "StatisticsChange",
    "StoredCheckpoint",
    "StreamPosition",
    "StreamStatisticRow",
    "plain",
]

CANDIDATE, ACTIVE, REJECTED, RETIRED = "candidate", "active", "rejected", "retired"
VERSION_STATUSES = frozenset({CANDIDATE, ACTIVE, REJECTED, RETIRED})
JOB_STATUSES = frozenset({"queued", "running", "completed", "failed", "cancelled"})
JOB_OPEN = ("queued", "running")
#: what a completed job did with its best candidate
JOB_OUTCOMES = frozenset({"promoted", "rejected"})
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
    #: ``promoted`` / ``rejected`` once completed (None while open or when failed)
    outcome: str | None = None
    #: why: the gate's decision and every candidate's score (or the failure)
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """A message the stream refused, as stored with the batch that refused it."""

    event_id: str
    consumer: str
    topic: str
    partition: int
    offset: int
    key: str | None
    error_type: str
    reason: str
    #: the start of the payload (at most ``DEAD_LETTER_PAYLOAD_CHARS`` characters)
    payload: str
    #: the payload's size in bytes
    payload_bytes: int
    #: when the message was refused
    occurred_at: datetime
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PredictionRow:
    """One prediction served by the API, as the prediction log keeps it."""

    domain: str
    #: the route that answered (``predict``, ``predict-with-history``, ``inference``)
    endpoint: str
    model_version: str
    #: the request's inputs (JSON types)
    inputs: dict[str, Any]
    #: the answer's content (JSON types)
    output: dict[str, Any]
    latency_ms: float
    served_at: datetime
    #: the row id once stored (insertion order)
    id: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterCounts:
    """How many dead letters are stored, in all and by error type and topic."""

    total: int
    by_error_type: dict[str, int]
    by_topic: dict[str, int]


@dataclass(frozen=True, slots=True)
class FieldRejectionCount:
    """Values dropped from accepted events of one partition (the rest of each event was
    kept), for one field and reason; the latest dropped value is kept as the example."""

    topic: str
    partition: int
    domain: str
    field: str
    #: ``below_range`` | ``above_range`` | ``not_finite`` | ``not_a_number``
    reason: str
    count: int
    example_value: str
    example_detail: str
    example_event_id: str
    example_key: str | None
    example_offset: int
    first_seen_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class FieldRejectionTotal:
    """The dropped values of one topic, field and reason over every partition, with the
    latest example."""

    topic: str
    domain: str
    field: str
    reason: str
    count: int
    example_value: str
    example_detail: str
    example_event_id: str
    example_key: str | None
    first_seen_at: datetime
    last_seen_at: datetime


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
    #: stream partition of a running score (None otherwise)
    partition: int | None = None
    #: points behind the score
    n: int | None = None
    #: sufficient statistics to merge it with other partitions' (``RunningMetrics.stats``)
    stats: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ForecastRow:
    """A forecast of one series and period; also what the stream commit upserts."""

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


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """How far one consumer's stored state of a partition has come, and when it last moved
    (what an operator view reads; no state blobs)."""

    consumer: str
    topic: str
    partition: int
    offset: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ProcessorState:
    """A partition processor's pickled state and the format ``version`` it was written in
    (None: written before versions were recorded)."""

    version: int | None
    blob: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """One consumer's stored position of a partition and the processor state it includes."""

    topic: str
    partition: int
    offset: int
    state: ProcessorState | None


#: (scope, name) of a stream statistic
StatisticKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class StatisticsChange:
    """What a stream batch changes in one partition's statistics (``stream_statistics``):
    ``values`` are upserted, ``removed`` deleted; ``replace`` drops every other stored
    statistic of the partition first (``values`` is then the complete set)."""

    domain: str
    values: Mapping[StatisticKey, Any]
    removed: frozenset[StatisticKey] = frozenset()
    replace: bool = False


@dataclass(frozen=True, slots=True)
class StreamStatisticRow:
    """One current statistic of a stream partition (plain JSON ``value``)."""

    domain: str
    topic: str
    partition: int
    scope: str
    name: str
    value: Any
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ConfigRow:
    """A stored model config (network domain) and its life."""

    config: ModelConfig
    created_at: datetime
    deleted_at: datetime | None
    command_id: str | None


@dataclass(frozen=True, slots=True)
class CommandResultRow:
    """What the trainer did with a published command."""

    command_id: str
    command: str
    domain: str
    scope: str
    status: str  # ok | error
    result: dict[str, Any]
    error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OnlineScore:
    """The stream's recent running score of a model: the latest row of every partition within
    the score window, merged (``id``: the newest of them, which changes whenever a partition
    writes; ``recorded_at``: its event time; ``n``: points behind the score, None when
    unknown; ``partitions``: how many were merged)."""

    id: int
    score: float
    recorded_at: datetime
    n: int | None = None
    partitions: int = 1


def plain(value: Any) -> Any:
    """A JSON-safe copy: non-finite floats become None, tuples lists, keys strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
