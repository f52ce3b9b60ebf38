"""Event contracts: one pydantic model per event, with generated JSON Schema files beside them.

Publishers in other languages validate against the ``*.schema.json`` files in this folder;
``millrace schemas`` regenerates them and a test fails when one is stale.
"""

from schemas.events import (
    EVENT_MODELS,
    BaseEvent,
    ContractType,
    DeadLetterRecord,
    DriftEvent,
    ModelCommand,
    ModelCommandType,
    ModelUpdatedEvent,
    NetworkMeasurementEvent,
    RetrainReason,
    RetrainRequest,
    SaleContractEvent,
    VehicleType,
    deterministic_id,
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
    "SaleContractEvent",
    "VehicleType",
    "deterministic_id",
]
