"""Pydantic models of every event on Millrace's topics.

Each event carries ``event_id``, ``schema_version`` and ``occurred_at`` (ISO 8601, UTC). Numbers
must be finite (NaN/inf are rejected), prices non-negative, timestamps timezone-aware (naive ones
are rejected rather than guessed). Unknown extra fields are ignored so publishers can add fields
without breaking consumers.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "EVENT_MODELS",
    "BaseEvent",
    "ContractType",
    "DeadLetterRecord",
    "DriftEvent",
    "ModelCommand",
    "ModelCommandType",
    "ModelUpdatedEvent",
    "NetworkMeasurementEvent",
    "RetrainReason",
    "RetrainRequest",
    "SaleContractEvent",
    "VehicleType",
    "deterministic_id",
]


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("occurred_at must carry a timezone (ISO 8601 with Z or an offset)")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Measure = Annotated[float, Field(allow_inf_nan=False)]


def deterministic_id(*parts: object) -> str:
    """A stable event id from its identifying parts, so a replay never creates work twice."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return str(uuid.UUID(digest[:32]))


class BaseEvent(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="ignore", frozen=True, use_enum_values=True)
    SCHEMA_VERSION: ClassVar[int] = 1
    #: File stem of the generated JSON Schema.
    SCHEMA_NAME: ClassVar[str] = "base"

    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        default_factory=lambda: str(uuid.uuid4()),
        description="Unique id of the event; duplicates are recognised by it.",
    )
    schema_version: int = Field(1, ge=1, description="Version of this event's contract.")
    occurred_at: UtcDatetime = Field(
        default_factory=lambda: datetime.now(UTC),
        description="When the fact happened (event time), ISO 8601 with timezone; stored in UTC.",
    )


class ContractType(StrEnum):
    SALE = "SALE"
    PURCHASE = "PURCHASE"


class VehicleType(StrEnum):
    CAR = "CAR"
    MOTORCYCLE = "MOTORCYCLE"


class SaleContractEvent(BaseEvent):
    """A dealership contract: a vehicle sold to (SALE) or bought from (PURCHASE) a client.

    Topic ``sales.transactions``, key = segment key ``vehicle_type|brand|model|line``.
    """

    SCHEMA_NAME: ClassVar[str] = "sale_contract_event"

    contract_type: ContractType
    vehicle_type: VehicleType
    brand: Name
    model: Name
    line: Annotated[str, StringConstraints(strip_whitespace=True, max_length=120)] = ""
    sale_price: Price | None = Field(None, description="Agreed sale price, if any.")
    purchase_price: Price | None = Field(None, description="Price paid to acquire the vehicle.")
    contract_status: str | None = Field(None, max_length=60)
    payment_method: str | None = Field(None, max_length=60)
    plate: str | None = Field(None, max_length=20)
    source: str | None = Field(None, max_length=60, description="Publisher / importer name.")

    @property
    def segment(self) -> tuple[str, str, str, str]:
        """The segment this contract counts toward, normalised to upper case."""
        return (
            str(self.vehicle_type),
            self.brand.upper(),
            self.model.upper(),
            self.line.upper(),
        )

    @property
    def segment_key(self) -> str:
        return "|".join(self.segment)


class NetworkMeasurementEvent(BaseEvent):
    """One 5G/LTE measurement from a device attached to a cell. Missing values are ``null``.

    Topic ``network.measurements``, key = ``cell_id``.
    """

    SCHEMA_NAME: ClassVar[str] = "network_measurement_event"
    FIELDS: ClassVar[tuple[str, ...]] = (
        "rsrp",
        "rsrq",
        "snr",
        "cqi",
        "rssi",
        "dl_bitrate",
        "ul_bitrate",
        "ping_avg",
        "ping_min",
        "ping_max",
        "ping_stdev",
        "ping_loss",
        "nr_rsrp",
        "nr_rsrq",
        "speed",
    )

    cell_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    network_mode: str | None = Field(None, max_length=16, description="5G, LTE, HSPA+ ...")
    operator: str | None = Field(None, max_length=60)
    rsrp: Measure | None = Field(None, description="dBm")
    rsrq: Measure | None = Field(None, description="dB")
    snr: Measure | None = Field(None, description="dB")
    cqi: Measure | None = None
    rssi: Measure | None = Field(None, description="dBm")
    dl_bitrate: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = Field(
        None, description="Downlink kbit/s"
    )
    ul_bitrate: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = Field(
        None, description="Uplink kbit/s"
    )
    ping_avg: Measure | None = Field(None, description="ms")
    ping_min: Measure | None = None
    ping_max: Measure | None = None
    ping_stdev: Measure | None = None
    ping_loss: Measure | None = None
    nr_rsrp: Measure | None = None
    nr_rsrq: Measure | None = None
    speed: Measure | None = Field(None, description="km/h")
    latitude: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = None
    trace: str | None = Field(None, max_length=120, description="Source trace id, if any.")

    def measurements(self) -> dict[str, float]:
        """The measured (non-missing) numeric fields."""
        return {f: v for f in self.FIELDS if (v := getattr(self, f)) is not None}


class RetrainReason(StrEnum):
    DRIFT = "drift"
    DEGRADATION = "degradation"
    LATENCY = "latency"
    STALENESS = "staleness"
    MANUAL = "manual"


class RetrainRequest(BaseEvent):
    """Ask the trainer to rebuild a domain's model for a scope. Topic ``ml.retrain-requests``."""

    SCHEMA_NAME: ClassVar[str] = "retrain_request"

    domain: Name
    scope: Name = Field("global", description="Which model within the domain, e.g. a field.")
    reason: RetrainReason = RetrainReason.MANUAL
    start_date: date | None = None
    end_date: date | None = None
    requested_by: str = Field("system", max_length=120)
    evidence: dict[str, Any] = Field(default_factory=dict, description="What tripped the trigger.")


class ModelCommandType(StrEnum):
    ACTIVATE = "activate"
    ROLLBACK = "rollback"
    CREATE_CONFIG = "create_config"
    DELETE_CONFIG = "delete_config"
    EVALUATE = "evaluate"
    SET_BEST = "set_best"
    MONITOR = "monitor"


class ModelCommand(BaseEvent):
    """Change which version is live, manage model configs, or act on a field's models.
    Topic ``ml.model-commands``.

    - ``activate`` / ``rollback``: ``scope`` + ``version`` (rollback: previous when omitted).
    - ``create_config``: ``config`` (network model config); ``delete_config``: ``scope`` = id.
    - ``evaluate`` / ``monitor``: ``scope`` = output field; ``metric`` for evaluate.
    - ``set_best``: ``scope`` = output field, ``version`` = model (config) id.
    """

    SCHEMA_NAME: ClassVar[str] = "model_command"

    command: ModelCommandType
    domain: Name
    scope: Name = "global"
    version: str | None = Field(None, max_length=64, description="Target version (activate).")
    config: dict[str, Any] | None = Field(None, description="Model config (create_config).")
    metric: Literal["rmse", "mae", "mape", "r2"] | None = Field(
        None, description="Metric of an evaluate command (default rmse)."
    )
    reason: str = Field("", max_length=500)
    requested_by: str = Field("system", max_length=120)


class ModelUpdatedEvent(BaseEvent):
    """A version became active. Topic ``ml.model-updated``."""

    SCHEMA_NAME: ClassVar[str] = "model_updated_event"

    domain: Name
    scope: Name = "global"
    version: str = Field(..., max_length=64)
    previous_version: str | None = Field(None, max_length=64)
    algorithm: str | None = None
    metrics: dict[str, Measure | None] = Field(default_factory=dict)
    reason: str = Field("", max_length=500)


class DriftEvent(BaseEvent):
    """A drift or degradation detection with its evidence. Topic ``ml.drift-events``."""

    SCHEMA_NAME: ClassVar[str] = "drift_event"

    domain: Name
    scope: Name = "global"
    detector: str = Field(..., max_length=60, description="adwin, page_hinkley, input_shift...")
    statistic: str = Field(..., max_length=60)
    value: Measure
    threshold: Measure | None = None
    model_version: str | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)


class DeadLetterRecord(BaseEvent):
    """Input a consumer refused, with why and the original bytes. Topic ``ml.dead-letter``."""

    SCHEMA_NAME: ClassVar[str] = "dead_letter_record"

    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    reason: str = Field(..., description="Human-readable reason, e.g. the validation errors.")
    error_type: Literal[
        "invalid_json", "schema_violation", "oversize", "future_timestamp", "duplicate", "other"
    ]
    consumer: str = Field(..., description="Which consumer rejected it.")
    payload: str = Field(
        ..., description="The original payload (UTF-8, undecodable bytes replaced)."
    )


#: Every event model, by JSON Schema file stem.
EVENT_MODELS: dict[str, type[BaseEvent]] = {
    model.SCHEMA_NAME: model
    for model in (
        SaleContractEvent,
        NetworkMeasurementEvent,
        RetrainRequest,
        ModelCommand,
        ModelUpdatedEvent,
        DriftEvent,
        DeadLetterRecord,
    )
}
