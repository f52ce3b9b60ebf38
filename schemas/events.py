"""Pydantic models of every event on Millrace's topics.

Each event carries ``event_id``, ``schema_version`` and ``occurred_at``. Since schema version 2
``event_id`` and ``occurred_at`` are required (no generated defaults: a publisher's re-send keeps
its id, so it is recognised as a duplicate) and ``occurred_at`` is an ISO 8601 string with a
timezone (naive strings and epoch numbers are refused rather than guessed), stored in UTC.
Only what every store can hold is accepted (see :mod:`schemas.types`): text without control
characters or lone surrogates and within its column's length, finite numbers within sane ranges
(booleans and numeric strings are not numbers), prices non-negative. Unknown extra fields are
ignored so publishers can add fields without breaking consumers.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from schemas.types import (
    MAX_MEASURE,
    EventTime,
    Finite,
    FreeText,
    JsonObject,
    Label,
    Name,
    Price,
    Rate,
    label,
    number,
)

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
    "SCHEMA_VERSION",
    "MAX_QUANTITY",
    "SEGMENT_KEY_MAX",
    "SaleContractEvent",
    "VehicleType",
    "deterministic_id",
]

#: Version of every event contract (2: ``event_id`` and ``occurred_at`` required, ISO strings).
SCHEMA_VERSION = 2
#: Longest segment key: it is also the ``scope`` of drift events and retrain requests.
SEGMENT_KEY_MAX = 120
#: What separates the parts of a segment key (so no part may contain it).
SEGMENT_SEPARATOR = "|"
#: Largest ``quantity`` of one sale event: a make's registrations in a month in a large country,
#: with room; with it a month's sums stay far inside 64-bit counters and float precision.
MAX_QUANTITY = 10_000_000
Quantity = Annotated[int, Strict(), Field(ge=1, le=MAX_QUANTITY)]

# one-line texts sized to the columns (or keys) they end up in
EventId = label(128, min_length=1)
CellId = label(64, min_length=1, strip=True)
Line = label(120, strip=True)
Version = label(64)
Text60 = label(60)
Text20 = label(20)
Text16 = label(16)
Market = label(40, strip=True)
Latitude = number(-90, 90)
Longitude = number(-180, 180)
# physical ranges of the network measurements (what a device can report; a value outside is a
# glitch, a counter reset or a sentinel such as -200 dBm, and becomes missing, see
# NetworkMeasurementEvent.DROPPABLE_FIELDS)
#: reference signal received power, dBm (3GPP NR SS-RSRP report range: -156..-31)
Rsrp = number(-156, -31)
#: reference signal received quality, dB (3GPP NR SS-RSRQ report range: -43..20)
Rsrq = number(-43, 20)
#: signal to noise (and interference) ratio, dB (3GPP NR SS-SINR: -23..40; devices report
#: down to -30, so the bound is generous)
Snr = number(-50, 60)
#: channel quality indicator (3GPP 4-bit CQI table: 0..15)
Cqi = number(0, 15)
#: received signal strength, dBm (never positive)
Rssi = number(-150, 0)
#: a percentage
Percent = number(0, 100)
#: a non-negative duration or speed within the measurement bound
NonNegative = number(0, MAX_MEASURE)
#: a ground speed, km/h (a device on a plane is the fastest case)
Speed = number(0, 1500)


def deterministic_id(*parts: object) -> str:
    """A stable event id from its identifying parts, so a replay never creates work twice."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return str(uuid.UUID(digest[:32]))


class BaseEvent(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="ignore", frozen=True, use_enum_values=True)
    SCHEMA_VERSION: ClassVar[int] = SCHEMA_VERSION
    #: File stem of the generated JSON Schema.
    SCHEMA_NAME: ClassVar[str] = "base"

    event_id: EventId = Field(
        ...,
        description="Unique id of the event, set by the publisher (deterministic from the fact, "
        "so that a re-send is recognised as a duplicate).",
    )
    schema_version: int = Field(
        SCHEMA_VERSION,
        ge=1,
        le=SCHEMA_VERSION,
        strict=True,
        description="Version of this event's contract (newer versions are refused).",
    )
    occurred_at: EventTime = Field(
        ...,
        description="When the fact happened (event time): an ISO 8601 string with a timezone "
        "(Z or an offset; epoch numbers and naive times are refused); stored in UTC.",
    )

    #: optional values whose invalid value is dropped (becomes missing, counted per field and
    #: reason) instead of refusing the whole event; none by default
    DROPPABLE_FIELDS: ClassVar[tuple[str, ...]] = ()

    def has_values(self) -> bool:
        """Whether the event still carries something once its invalid droppable values were
        dropped (False: it is refused)."""
        return True


class ContractType(StrEnum):
    SALE = "SALE"
    PURCHASE = "PURCHASE"


class VehicleType(StrEnum):
    CAR = "CAR"
    MOTORCYCLE = "MOTORCYCLE"


class SaleContractEvent(BaseEvent):
    """A dealership contract: a vehicle sold to (SALE) or bought from (PURCHASE) a client, or a
    count of them (``quantity``, e.g. one row of a registrations-per-make-and-month feed).

    Topic ``sales.transactions``, key = segment key ``vehicle_type|brand|model|line``, or
    ``market|vehicle_type|brand|model|line`` when the event names a ``market``.
    """

    SCHEMA_NAME: ClassVar[str] = "sale_contract_event"

    contract_type: ContractType
    vehicle_type: VehicleType
    brand: Name
    model: Name
    line: Line = ""
    sale_price: Price | None = Field(None, description="Agreed sale price, if any.")
    purchase_price: Price | None = Field(None, description="Price paid to acquire the vehicle.")
    contract_status: Text60 | None = None
    payment_method: Text60 | None = None
    plate: Text20 | None = None
    source: Text60 | None = Field(None, description="Publisher / importer name.")
    quantity: Quantity = Field(
        1,
        description="How many vehicles this event counts (a count feed publishes one event "
        "per row with its count; a single contract is 1). Counts exactly like that many "
        "events of quantity 1, with the same prices.",
    )
    market: Market | None = Field(
        None,
        description="Optional market (e.g. a country code) above vehicle_type in the segment "
        "key, so several markets share one deployment. Upper-cased; empty means none.",
    )

    @model_validator(mode="after")
    def _segment_fits(self) -> Self:
        """The segment key is a stored series key and a model scope: no part may contain the
        separator, and the whole key must fit :data:`SEGMENT_KEY_MAX` characters. A market
        may not be named like a vehicle type (its parent levels would meet theirs)."""
        for name in ("market", "brand", "model", "line"):
            if SEGMENT_SEPARATOR in (getattr(self, name) or ""):
                raise ValueError(f"{name} must not contain {SEGMENT_SEPARATOR!r}")
        if self.market and self.market.upper() in set(VehicleType):
            raise ValueError(f"market must not be a vehicle type: {self.market!r}")
        if len(self.segment_key) > SEGMENT_KEY_MAX:
            raise ValueError(
                f"segment key [market|]vehicle_type|brand|model|line (upper case) is longer "
                f"than {SEGMENT_KEY_MAX} characters"
            )
        return self

    @property
    def segment(self) -> tuple[str, ...]:
        """The segment this contract counts toward, normalised to upper case:
        ``(vehicle_type, brand, model, line)``, led by the market when there is one."""
        parts = (
            str(self.vehicle_type),
            self.brand.upper(),
            self.model.upper(),
            self.line.upper(),
        )
        return (self.market.upper(), *parts) if self.market else parts

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

    cell_id: CellId
    network_mode: Text16 | None = Field(None, description="5G, LTE, HSPA+ ...")
    operator: Text60 | None = None
    rsrp: Rsrp | None = Field(None, description="dBm, -156..-31")
    rsrq: Rsrq | None = Field(None, description="dB, -43..20")
    snr: Snr | None = Field(None, description="dB, -50..60")
    cqi: Cqi | None = Field(None, description="0..15")
    rssi: Rssi | None = Field(None, description="dBm, -150..0")
    dl_bitrate: Rate | None = Field(None, description="Downlink kbit/s, >= 0")
    ul_bitrate: Rate | None = Field(None, description="Uplink kbit/s, >= 0")
    ping_avg: NonNegative | None = Field(None, description="ms, >= 0")
    ping_min: NonNegative | None = Field(None, description="ms, >= 0")
    ping_max: NonNegative | None = Field(None, description="ms, >= 0")
    ping_stdev: NonNegative | None = Field(None, description="ms, >= 0")
    ping_loss: Percent | None = Field(None, description="%, 0..100")
    nr_rsrp: Rsrp | None = Field(None, description="5G NR RSRP, dBm, -156..-31")
    nr_rsrq: Rsrq | None = Field(None, description="5G NR RSRQ, dB, -43..20")
    speed: Speed | None = Field(None, description="km/h, 0..1500")
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    trace: Label | None = Field(None, description="Source trace id, if any.")

    #: an invalid value of one of these (out of its range, not a number, NaN) becomes missing
    #: and the rest of the measurement is kept (see :mod:`ml.salvage`)
    DROPPABLE_FIELDS: ClassVar[tuple[str, ...]] = (*FIELDS, "latitude", "longitude")

    def measurements(self) -> dict[str, float]:
        """The measured (non-missing) numeric fields."""
        return {f: v for f in self.FIELDS if (v := getattr(self, f)) is not None}

    def has_values(self) -> bool:
        """Whether any measurement is left (one whose every value was invalid is refused)."""
        return any(getattr(self, f) is not None for f in self.FIELDS)


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
    requested_by: Label = "system"
    evidence: JsonObject = Field(default_factory=dict, description="What tripped the trigger.")


class ModelCommandType(StrEnum):
    ACTIVATE = "activate"
    ROLLBACK = "rollback"
    CREATE_CONFIG = "create_config"
    DELETE_CONFIG = "delete_config"
    EVALUATE = "evaluate"
    SET_BEST = "set_best"
    MONITOR = "monitor"
    CANCEL_JOB = "cancel_job"


class ModelCommand(BaseEvent):
    """Change which version is live, manage model configs, or act on a field's models.
    Topic ``ml.model-commands``.

    - ``activate`` / ``rollback``: ``scope`` + ``version`` (rollback: previous when omitted).
    - ``create_config``: ``config`` (network model config); ``delete_config``: ``scope`` = id.
    - ``evaluate`` / ``monitor``: ``scope`` = output field; ``metric`` for evaluate.
    - ``set_best``: ``scope`` = output field, ``version`` = model (config) id.
    - ``cancel_job``: ``job_id`` (a queued job ends ``cancelled`` at once, a running one at its
      next checkpoint, storing no version).
    """

    SCHEMA_NAME: ClassVar[str] = "model_command"

    command: ModelCommandType
    domain: Name
    scope: Name = "global"
    version: Version | None = Field(None, description="Target version (activate).")
    config: JsonObject | None = Field(None, description="Model config (create_config).")
    metric: Literal["rmse", "mae", "mape", "r2"] | None = Field(
        None, description="Metric of an evaluate command (default rmse)."
    )
    reason: FreeText = ""
    requested_by: Label = "system"
    job_id: Label | None = Field(None, description="The training job (cancel_job).")


class ModelUpdatedEvent(BaseEvent):
    """A version became active. Topic ``ml.model-updated``."""

    SCHEMA_NAME: ClassVar[str] = "model_updated_event"

    domain: Name
    scope: Name = "global"
    version: Version
    previous_version: Version | None = None
    algorithm: Label | None = None
    metrics: dict[str, Finite | None] = Field(default_factory=dict)
    reason: FreeText = ""


class DriftEvent(BaseEvent):
    """A drift or degradation detection with its evidence. Topic ``ml.drift-events``."""

    SCHEMA_NAME: ClassVar[str] = "drift_event"

    domain: Name
    scope: Name = "global"
    detector: Text60 = Field(..., description="adwin, page_hinkley, input_shift...")
    statistic: Text60
    value: Finite
    threshold: Finite | None = None
    model_version: Version | None = None
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
        "invalid_json",
        "schema_violation",
        "oversize",
        "future_timestamp",
        "too_old",
        "duplicate",
        "other",
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
