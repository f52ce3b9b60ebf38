"""Event contracts: generated JSON Schema files are current; models enforce the rules."""

from datetime import UTC, datetime

import orjson
import pytest
from pydantic import ValidationError

from schemas.events import (
    EVENT_MODELS,
    SCHEMA_VERSION,
    DeadLetterRecord,
    ModelCommand,
    NetworkMeasurementEvent,
    RetrainRequest,
    SaleContractEvent,
    deterministic_id,
)
from schemas.generate import SCHEMA_DIR, render
from schemas.types import MAX_JSON_DEPTH, MAX_MEASURE, MAX_PRICE

AT = "2024-05-01T12:00:00Z"
SALE = {
    "event_id": "e-1",
    "occurred_at": AT,
    "contract_type": "SALE",
    "vehicle_type": "CAR",
    "brand": "a",
    "model": "b",
}
CELL = {"event_id": "m-1", "occurred_at": AT, "cell_id": "c-1"}
REQUEST = {"event_id": "r-1", "occurred_at": AT, "domain": "demand"}


def refused(event_model: type, /, **fields: object) -> str:
    """The validation error text of ``event_model(**fields)`` (fails if it is accepted)."""
    with pytest.raises(ValidationError) as info:
        event_model.model_validate(fields)
    return str(info.value)


@pytest.mark.parametrize("name", sorted(EVENT_MODELS))
def test_schema_file_is_current(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.schema.json"
    assert path.exists(), f"{path.name} missing: run `millrace schemas`"
    assert path.read_text() == render(name), f"{path.name} is stale: run `millrace schemas`"


@pytest.mark.parametrize("model", list(EVENT_MODELS.values()))
def test_every_event_has_the_common_fields(model: type) -> None:
    assert {"event_id", "schema_version", "occurred_at"} <= set(model.model_fields)


@pytest.mark.parametrize("model", list(EVENT_MODELS.values()))
def test_event_id_and_occurred_at_are_required_without_defaults(model: type) -> None:
    fields = model.model_fields
    assert fields["event_id"].is_required() and fields["occurred_at"].is_required()
    schema = model.model_json_schema()
    assert {"event_id", "occurred_at"} <= set(schema["required"])
    assert schema["properties"]["occurred_at"]["type"] == "string"
    assert schema["properties"]["schema_version"]["default"] == SCHEMA_VERSION == 2


def test_missing_id_or_time_is_refused_not_generated() -> None:
    assert "event_id" in refused(SaleContractEvent, **{**SALE, "event_id": None})
    no_id = {k: v for k, v in SALE.items() if k != "event_id"}
    assert "event_id\n  Field required" in refused(SaleContractEvent, **no_id)
    no_time = {k: v for k, v in SALE.items() if k != "occurred_at"}
    assert "occurred_at\n  Field required" in refused(SaleContractEvent, **no_time)


def test_occurred_at_is_normalised_to_utc() -> None:
    event = SaleContractEvent(**{**SALE, "occurred_at": "2024-05-01T12:00:00+02:00"})
    assert event.occurred_at.tzinfo == UTC and event.occurred_at.hour == 10


@pytest.mark.parametrize(
    "value",
    [0, 1704067200, 1704067200.5, True, "1704067200", "2024-05-01", "May 1 2024", [AT], {}],
)
def test_occurred_at_must_be_an_iso_string(value: object) -> None:
    assert "ISO 8601" in refused(SaleContractEvent, **{**SALE, "occurred_at": value})


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "2024-13-01T00:00:00Z"]
)
def test_unrepresentable_times_are_validation_errors(value: str) -> None:
    refused(SaleContractEvent, **{**SALE, "occurred_at": value})  # not OverflowError


def test_naive_timestamps_and_nan_are_refused() -> None:
    assert "timezone" in refused(SaleContractEvent, **{**SALE, "occurred_at": AT[:-1]})
    refused(SaleContractEvent, **SALE, sale_price=float("nan"))


def test_schema_version_is_bounded_and_strict() -> None:
    assert SaleContractEvent(**SALE).schema_version == SCHEMA_VERSION
    assert SaleContractEvent(**SALE, schema_version=1).schema_version == 1
    refused(SaleContractEvent, **SALE, schema_version=SCHEMA_VERSION + 1)
    refused(SaleContractEvent, **SALE, schema_version="2")
    refused(SaleContractEvent, **SALE, schema_version=2**70)


@pytest.mark.parametrize(
    "text", ["A\x00B", "A\x01", "tab\there", "line\nbreak", "A\x7f", "A\x85B", "A\ud800", "\udfff"]
)
@pytest.mark.parametrize("field", ["brand", "model", "line", "plate", "source"])
def test_control_characters_and_surrogates_are_refused_in_text(field: str, text: str) -> None:
    message = refused(SaleContractEvent, **{**SALE, field: text})
    assert any(why in message for why in ("control character", "surrogate", "unicode string"))


def test_text_of_every_consumed_event_is_checked() -> None:
    assert "U+0000" in refused(NetworkMeasurementEvent, **{**CELL, "cell_id": "c\x00"})
    assert "U+0000" in refused(NetworkMeasurementEvent, **CELL, operator="o\x00")
    assert "U+0000" in refused(RetrainRequest, **{**REQUEST, "scope": "s\x00"})
    assert "U+0000" in refused(RetrainRequest, **REQUEST, requested_by="me\x00")
    command = {**REQUEST, "command": "activate"}
    assert "U+0000" in refused(ModelCommand, **command, version="v\x00")
    assert "U+0000" in refused(ModelCommand, **command, reason="why\x00")
    # free text may span lines; a dead letter holds any payload
    assert ModelCommand(**command, reason="line 1\n\tline 2").reason == "line 1\n\tline 2"
    record = DeadLetterRecord(
        event_id="d",
        occurred_at=AT,
        source_topic="t",
        key="k\x00",
        reason="r",
        error_type="too_old",
        consumer="c",
        payload="\x00\x01",
    )
    assert record.payload == "\x00\x01"


def test_over_long_text_is_refused() -> None:
    assert "at most 120" in refused(SaleContractEvent, **{**SALE, "brand": "B" * 121})
    assert "at most 128" in refused(SaleContractEvent, **{**SALE, "event_id": "i" * 129})
    assert "at most 64" in refused(NetworkMeasurementEvent, **{**CELL, "cell_id": "c" * 65})


def test_segment_key_fits_its_columns_and_has_four_parts() -> None:
    fits = SaleContractEvent(**{**SALE, "brand": "B" * 50, "model": "M" * 50, "line": "L" * 14})
    assert len(fits.segment_key) == 120
    assert "longer than 120" in refused(
        SaleContractEvent, **{**SALE, "brand": "B" * 50, "model": "M" * 50, "line": "L" * 15}
    )
    # upper case can be longer than the text sent ("ß" -> "SS")
    assert "longer than 120" in refused(SaleContractEvent, **{**SALE, "brand": "ß" * 60})
    assert "must not contain '|'" in refused(SaleContractEvent, **{**SALE, "model": "A|B"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sale_price", -5),
        ("sale_price", MAX_PRICE * 10),
        ("sale_price", 1e200),
        ("sale_price", 2**64),
        ("sale_price", True),
        ("sale_price", "25000"),
        ("purchase_price", float("inf")),
    ],
)
def test_prices_are_non_negative_finite_numbers_within_range(field: str, value: object) -> None:
    refused(SaleContractEvent, **{**SALE, field: value})


def test_prices_up_to_the_maximum_and_integers_are_accepted() -> None:
    assert SaleContractEvent(**SALE, sale_price=MAX_PRICE).sale_price == MAX_PRICE
    assert SaleContractEvent(**SALE, sale_price=25000).sale_price == 25000.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rsrp", MAX_MEASURE * 2),
        ("rsrp", -1e300),
        ("dl_bitrate", -1),
        ("snr", False),
        ("latitude", 91),
        ("longitude", "10"),
    ],
)
def test_measurements_are_finite_numbers_within_range(field: str, value: object) -> None:
    refused(NetworkMeasurementEvent, **CELL, **{field: value})


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        ({"a": float("nan")}, "finite"),
        ({"a": [1, {"b": float("inf")}]}, "finite"),
        ({"a": 2**64}, "64-bit"),
        ({"a\x00": 1}, "control character"),
        ({"a": "x\x00"}, "control character"),
        ({"a": "x" * 5000}, "longer than"),
    ],
)
def test_free_form_json_must_fit_a_json_column(evidence: dict, expected: str) -> None:
    assert expected in refused(RetrainRequest, **REQUEST, evidence=evidence)
    command = {**REQUEST, "command": "create_config", "domain": "network"}
    assert expected in refused(ModelCommand, **command, config=evidence)


def test_deep_nesting_is_refused_without_recursion_errors() -> None:
    nested: object = 1
    for _ in range(5000):  # far deeper than the interpreter's recursion limit
        nested = [nested]
    assert f"deeper than {MAX_JSON_DEPTH}" in refused(
        RetrainRequest, **REQUEST, evidence={"a": nested}
    )
    ok: object = 1
    for _ in range(MAX_JSON_DEPTH - 1):
        ok = {"k": ok}
    assert RetrainRequest(**REQUEST, evidence=ok).evidence == ok


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_id": "r", "occurred_at": "2024-05-01T00:00:00Z", "domain": "demand",'
        b' "evidence": {"a": NaN}}',
        b'{"event_id": "r", "occurred_at": "2024-05-01T00:00:00Z", "domain": "demand",'
        b' "evidence": {"a": 1e999}}',
        b'{"event_id": "r", "occurred_at": "2024-05-01T00:00:00Z", "domain": "d\\u0000"}',
        b'{"event_id": "r", "occurred_at": "2024-05-01T00:00:00Z", "domain": "\\ud800"}',
        b'{"event_id": "r", "occurred_at": 1714521600, "domain": "demand"}',
        b'{"occurred_at": "2024-05-01T00:00:00Z", "domain": "demand"}',
        b'{"event_id": "r", "occurred_at": "2024-05-01T00:00:00Z", "domain": "demand",'
        b' "evidence": ' + b"[" * 500 + b"]" * 500 + b"}",
        b'{"event_id": "r", "occurred_at": "2024-05-01T00:00:00Z", "domain": "\xff"}',
    ],
)
def test_trainer_inputs_parsed_from_json_are_refused(raw: bytes) -> None:
    """The trainer parses requests and commands with pydantic's JSON parser."""
    with pytest.raises(ValidationError):
        RetrainRequest.model_validate_json(raw)


def test_valid_events_round_trip_through_json() -> None:
    event = RetrainRequest(**REQUEST, evidence={"a": [1, 2.5, "x", None, True]})
    again = RetrainRequest.model_validate_json(orjson.dumps(event.model_dump(mode="json")))
    assert again == event
    assert again.occurred_at == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_deterministic_ids_are_stable() -> None:
    a = RetrainRequest(
        event_id=deterministic_id("demand", "global", "2024-05"), occurred_at=AT, domain="demand"
    )
    assert a.event_id == deterministic_id("demand", "global", "2024-05")
    assert a.event_id != deterministic_id("demand", "global", "2024-06")
