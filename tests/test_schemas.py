"""Event contracts: generated JSON Schema files are current; models enforce the rules."""

from datetime import UTC

import pytest
from pydantic import ValidationError

from schemas.events import EVENT_MODELS, RetrainRequest, SaleContractEvent, deterministic_id
from schemas.generate import SCHEMA_DIR, render


@pytest.mark.parametrize("name", sorted(EVENT_MODELS))
def test_schema_file_is_current(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.schema.json"
    assert path.exists(), f"{path.name} missing: run `millrace schemas`"
    assert path.read_text() == render(name), f"{path.name} is stale: run `millrace schemas`"


@pytest.mark.parametrize("model", list(EVENT_MODELS.values()))
def test_every_event_has_the_common_fields(model: type) -> None:
    assert {"event_id", "schema_version", "occurred_at"} <= set(model.model_fields)


def test_occurred_at_is_normalised_to_utc() -> None:
    event = SaleContractEvent(
        contract_type="SALE",
        vehicle_type="CAR",
        brand="a",
        model="b",
        occurred_at="2024-05-01T12:00:00+02:00",
    )
    assert event.occurred_at.tzinfo == UTC and event.occurred_at.hour == 10


def test_naive_timestamps_and_nan_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        SaleContractEvent(
            contract_type="SALE",
            vehicle_type="CAR",
            brand="a",
            model="b",
            occurred_at="2024-05-01T12:00:00",
        )
    with pytest.raises(ValidationError):
        SaleContractEvent(
            contract_type="SALE", vehicle_type="CAR", brand="a", model="b", sale_price=float("nan")
        )


def test_deterministic_ids_are_stable() -> None:
    a = RetrainRequest(event_id=deterministic_id("demand", "global", "2024-05"), domain="demand")
    assert a.event_id == deterministic_id("demand", "global", "2024-05")
    assert a.event_id != deterministic_id("demand", "global", "2024-06")
