"""Small builders of valid and invalid event payloads shared by tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson

SEGMENTS = [
    ("CAR", "Toyota", "Corolla", "XEI"),
    ("CAR", "Mazda", "3", "Touring"),
    ("MOTORCYCLE", "Yamaha", "MT-09", ""),
    ("CAR", "Renault", "Duster", "Intens"),
]


def fresh(at: datetime | None = None) -> dict[str, object]:
    """The fields a publisher must set on a new fact: a new ``event_id`` and an explicit
    ``occurred_at`` (now unless ``at``), e.g. ``RetrainRequest(**fresh(), domain="demand")``."""
    return {"event_id": str(uuid.uuid4()), "occurred_at": at or datetime.now(UTC)}


def sale(i: int, *, months: int = 6, start: datetime | None = None, **overrides: object) -> dict:
    """A valid SALE (even i) or PURCHASE (odd i) payload spread over ``months`` months."""
    start = start or datetime(2024, 1, 1, tzinfo=UTC)
    vehicle_type, brand, model, line = SEGMENTS[i % len(SEGMENTS)]
    month = (i // len(SEGMENTS)) % months
    when = (start.replace(month=1 + month) if month < 12 else start) + timedelta(hours=i % 500)
    body = {
        "event_id": f"evt-{i}",
        "occurred_at": when.isoformat().replace("+00:00", "Z"),
        "contract_type": "SALE" if i % 2 == 0 else "PURCHASE",
        "vehicle_type": vehicle_type,
        "brand": brand,
        "model": model,
        "line": line,
        "sale_price": 25000.0 + i,
        "purchase_price": 20000.0 + i,
    }
    body.update(overrides)
    return body


def invalid_payloads(max_bytes: int) -> list[tuple[str, bytes]]:
    """(expected error_type, payload) for every kind of bad input the ingest path refuses."""
    good = sale(1)
    cases: list[tuple[str, bytes]] = [
        ("invalid_json", b"{not json"),
        ("invalid_json", b'{"sale_price": NaN}'),
        ("invalid_json", b'{"sale_price": 1e999}'),
        ("invalid_json", b""),
        ("schema_violation", orjson.dumps({k: v for k, v in good.items() if k != "brand"})),
        ("schema_violation", orjson.dumps({**good, "sale_price": -5})),
        ("schema_violation", orjson.dumps({**good, "vehicle_type": "TRUCK"})),
        ("schema_violation", orjson.dumps({**good, "occurred_at": "2024-01-01T10:00:00"})),
        ("schema_violation", orjson.dumps([good])),
        ("future_timestamp", orjson.dumps({**good, "occurred_at": "2100-01-01T00:00:00Z"})),
        ("oversize", orjson.dumps({**good, "source": "x" * max_bytes})),
        # poison the store cannot hold, refused by the contract (schema version 2)
        ("schema_violation", orjson.dumps({**good, "brand": "A\u0000B"})),
        ("schema_violation", orjson.dumps({**good, "model": "line\nbreak"})),
        ("schema_violation", orjson.dumps({**good, "sale_price": 1e200})),
        ("schema_violation", orjson.dumps({**good, "occurred_at": 1704067200})),
        ("schema_violation", orjson.dumps({k: v for k, v in good.items() if k != "event_id"})),
        ("schema_violation", orjson.dumps({k: v for k, v in good.items() if k != "occurred_at"})),
        ("too_old", orjson.dumps({**good, "occurred_at": "0001-01-01T00:00:00Z"})),
    ]
    return cases


def poison(max_bytes: int) -> list[tuple[str, str, bytes]]:
    """(kind, expected error_type, payload): every kind of poison a sales topic may carry, each
    with its own ``event_id`` (so none is a duplicate of another) unless the id is the poison.

    The last one re-sends ``sale(0)``: published after it, it is a ``duplicate``."""
    base = sale(0, event_id="poison")

    def body(kind: str, **changes: object) -> dict:
        return {**base, "event_id": f"poison-{kind}", **changes}

    def without(kind: str, field: str) -> bytes:
        return orjson.dumps({k: v for k, v in body(kind).items() if k != field})

    def raw(kind: str, field: str, literal: bytes) -> bytes:
        """``body(kind)`` with ``field`` set to a raw JSON literal (what orjson won't write)."""
        head = orjson.dumps({k: v for k, v in body(kind).items() if k != field})[:-1]
        return head + b', "' + field.encode() + b'": ' + literal + b"}"

    s = "schema_violation"
    cases: list[tuple[str, str, dict | bytes]] = [
        ("nul_in_brand", s, body("nul", brand="A\u0000B")),
        ("control_char_in_model", s, body("ctrl", model="Corolla\u0001")),
        ("newline_in_line", s, body("newline", line="XEI\nXLI")),
        ("del_in_plate", s, body("del", plate="ABC\u007f123")),
        ("c1_control_in_brand", s, body("c1", brand="Toy\u0085ota")),
        ("escape_in_source", s, body("esc", source="\u001b[31mred")),
        ("lone_surrogate_escape", "invalid_json", raw("surrogate", "brand", b'"\\ud800"')),
        ("encoded_surrogate", "invalid_json", raw("surrogate-bytes", "brand", b'"\xed\xa0\x80"')),
        ("invalid_utf8", "invalid_json", raw("utf8", "brand", b'"Toyota\xff"')),
        ("ten_megabytes", "oversize", body("10mb", source="x" * 10_000_000)),
        ("over_limit_by_one", "oversize", b""),  # filled below: exactly max_bytes + 1
        ("brand_over_column", s, body("long-brand", brand="B" * 121)),
        ("segment_key_over_120", s, body("long-key", brand="B" * 60, model="M" * 60)),
        ("event_id_over_128", s, body("x", event_id="i" * 129)),
        ("pipe_in_model", s, body("pipe", model="A|B")),
        ("blank_brand", s, body("blank", brand="   ")),
        ("year_0001", "too_old", body("y1", occurred_at="0001-01-01T00:00:00Z")),
        ("year_1999", "too_old", body("y1999", occurred_at="1999-12-31T23:59:59Z")),
        ("year_9999", "future_timestamp", body("y9999", occurred_at="9999-12-31T23:59:59Z")),
        ("year_9999_offset", s, body("y9999o", occurred_at="9999-12-31T23:59:59-01:00")),
        ("year_0001_offset", s, body("y1o", occurred_at="0001-01-01T00:00:00+01:00")),
        ("integer_timestamp", s, body("epoch", occurred_at=1704067200)),
        ("float_timestamp", s, body("epoch-f", occurred_at=1704067200.5)),
        ("numeric_string_timestamp", s, body("epoch-s", occurred_at="1704067200")),
        ("naive_timestamp", s, body("naive", occurred_at="2024-01-01T10:00:00")),
        ("date_only", s, body("date", occurred_at="2024-01-01")),
        ("missing_event_id", s, without("no-id", "event_id")),
        ("missing_occurred_at", s, without("no-time", "occurred_at")),
        ("null_event_id", s, body("null-id", event_id=None)),
        ("integer_event_id", s, body("int-id", event_id=12345)),
        ("deep_nesting", "invalid_json", raw("deep", "extra", b"[" * 5000 + b"]" * 5000)),
        ("nesting_in_field", s, raw("deep-field", "brand", b"[" * 1000 + b"]" * 1000)),
        ("huge_price", s, body("1e200", sale_price=1e200)),
        ("price_over_maximum", s, body("1e13", sale_price=1e13)),
        ("overflow_literal", "invalid_json", raw("1e309", "sale_price", b"1e309")),
        ("nan_literal", "invalid_json", raw("nan", "sale_price", b"NaN")),
        ("u64_price", s, body("u64", sale_price=2**64 - 1)),
        ("int_beyond_64_bits", s, raw("i128", "sale_price", b"1" + b"0" * 40)),
        ("negative_price", s, body("neg", sale_price=-1.0)),
        ("boolean_price", s, body("bool", sale_price=True)),
        ("string_price", s, body("str-price", sale_price="25000")),
        ("number_as_brand", s, body("num-brand", brand=42)),
        ("array_as_brand", s, body("arr-brand", brand=["Toyota"])),
        ("unknown_vehicle_type", s, body("truck", vehicle_type="TRUCK")),
        ("unknown_contract_type", s, body("lease", contract_type="LEASE")),
        ("newer_schema_version", s, body("v3", schema_version=3)),
        ("array_payload", s, orjson.dumps([body("array")])),
        ("empty_object", s, b"{}"),
        ("null_payload", s, b"null"),
        ("string_payload", s, b'"SALE"'),
        ("empty_payload", "invalid_json", b""),
        ("truncated_json", "invalid_json", orjson.dumps(body("cut"))[:-10]),
        ("binary_garbage", "invalid_json", bytes(range(256))),
        ("resent_duplicate", "duplicate", orjson.dumps(sale(0))),
    ]
    out = []
    for kind, error_type, payload in cases:
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        if kind == "over_limit_by_one":
            padded = orjson.dumps(body(kind, source=""))
            data = padded[:-1] + b" " * (max_bytes + 1 - len(padded)) + b"}"
        out.append((kind, error_type, data))
    return out
