"""Small builders of valid and invalid event payloads shared by tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

SEGMENTS = [
    ("CAR", "Toyota", "Corolla", "XEI"),
    ("CAR", "Mazda", "3", "Touring"),
    ("MOTORCYCLE", "Yamaha", "MT-09", ""),
    ("CAR", "Renault", "Duster", "Intens"),
]


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
    ]
    return cases
