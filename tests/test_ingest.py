"""Unit tests of ml.ingest: validation reasons and checkpoint-aware batch folding (no Kafka)."""

from datetime import UTC, date, datetime, timedelta

import orjson
import pytest

from ml.demand.domain import DemandDomain
from ml.domains import get_domain
from ml.ingest import Message, Rejection, fold_batch, validate_message
from schemas.events import BaseEvent, SaleContractEvent
from tests.factories import invalid_payloads, sale

DEMAND = get_domain("demand")
LIMITS = {"max_bytes": 4096, "max_future": timedelta(days=1)}


def test_valid_sale_is_parsed() -> None:
    event = validate_message(DEMAND, orjson.dumps(sale(0)), **LIMITS)
    assert isinstance(event, SaleContractEvent)
    assert event.segment_key == "CAR|TOYOTA|COROLLA|XEI"


@pytest.mark.parametrize(("kind", "payload"), invalid_payloads(4096))
def test_invalid_payloads_are_refused_with_reason(kind: str, payload: bytes) -> None:
    result = validate_message(DEMAND, payload, **LIMITS)
    assert isinstance(result, Rejection)
    assert result.error_type == kind
    assert result.reason


def test_offsets_at_or_below_checkpoint_are_skipped() -> None:
    msgs = [Message("s", 0, off, b"k", orjson.dumps(sale(off))) for off in range(10)]
    batch = fold_batch(DEMAND, msgs, {("s", 0): 4}, consumer="c", **LIMITS)
    assert batch.skipped == 5
    assert batch.accepted == 5
    assert batch.offsets == {("s", 0): 9}


def test_dead_letters_carry_reason_payload_and_deterministic_id() -> None:
    msgs = [Message("s", 1, 7, b"k", b"{oops")]
    first = fold_batch(DEMAND, msgs, {}, consumer="c", **LIMITS).dead_letters[0][1]
    again = fold_batch(DEMAND, msgs, {}, consumer="c", **LIMITS).dead_letters[0][1]
    assert first.event_id == again.event_id
    assert first.payload == "{oops" and first.error_type == "invalid_json"
    assert (first.source_topic, first.partition, first.offset) == ("s", 1, 7)


def test_monthly_sales_counts() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    msgs = [Message("s", 0, i, None, orjson.dumps(sale(i))) for i in range(40)]
    batch = fold_batch(DEMAND, msgs, {}, consumer="c", now=now, **LIMITS)
    sales = sum(d.fields["sales"].count for d in batch.deltas if "sales" in d.fields)
    purchases = sum(d.fields["purchases"].count for d in batch.deltas if "purchases" in d.fields)
    assert (sales, purchases) == (20, 20)
    assert {d.period_start.day for d in batch.deltas} == {1}


def test_duplicate_event_ids_are_refused() -> None:
    msgs = [Message("s", 0, off, b"k", orjson.dumps(sale(off % 3))) for off in range(5)]
    batch = fold_batch(DEMAND, msgs, {}, consumer="c", known_ids=lambda ids: {"evt-2"}, **LIMITS)
    # evt-0, evt-1 accepted; evt-2 known before; offsets 3 and 4 repeat evt-0 and evt-1
    assert batch.event_ids == ["evt-0", "evt-1"]
    kinds = [(r.offset, r.error_type) for _, r in batch.dead_letters]
    assert kinds == [(2, "duplicate"), (3, "duplicate"), (4, "duplicate")]


def test_times_before_the_minimum_are_too_old() -> None:
    old = orjson.dumps(sale(0, occurred_at="1999-12-31T23:59:59Z"))
    default = validate_message(DEMAND, old, **LIMITS)
    assert isinstance(default, Rejection) and default.error_type == "too_old"
    assert "1999-12-31" in default.reason and "2000-01-01" in default.reason
    assert isinstance(validate_message(DEMAND, old, min_time=date(1990, 1, 1), **LIMITS), BaseEvent)
    later = validate_message(
        DEMAND, orjson.dumps(sale(0)), min_time=datetime(2024, 6, 1, tzinfo=UTC), **LIMITS
    )
    assert isinstance(later, Rejection) and later.error_type == "too_old"


def test_fold_batch_passes_the_minimum_time_on() -> None:
    msgs = [Message("s", 0, i, None, orjson.dumps(sale(i))) for i in range(8)]
    batch = fold_batch(DEMAND, msgs, {}, consumer="c", min_time=date(2024, 2, 1), **LIMITS)
    january = {r.offset for _, r in batch.dead_letters if r.error_type == "too_old"}
    assert january == {0, 1, 2, 3} and batch.accepted == 4


def test_an_unbounded_future_limit_does_not_overflow() -> None:
    far = orjson.dumps(sale(0, occurred_at="9999-12-31T23:59:59Z"))
    limits = {"max_bytes": 4096, "max_future": timedelta(days=999_999_999)}
    assert isinstance(validate_message(DEMAND, far, **limits), BaseEvent)
    refused = validate_message(DEMAND, far, **LIMITS)
    assert isinstance(refused, Rejection) and refused.error_type == "future_timestamp"


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"[" * 2000 + b"]" * 2000, "invalid_json"),  # beyond orjson's depth limit
        (
            orjson.dumps(sale(0))[:-1] + b', "x": ' + b"[" * 2000 + b"]" * 2000 + b"}",
            "invalid_json",
        ),
        (orjson.dumps(sale(0))[:-1] + b', "x": ' + b"[" * 1000 + b"]" * 1000 + b"}", None),
        (
            orjson.dumps(sale(0))[:-1] + b', "brand": ' + b"[" * 1000 + b"]" * 1000 + b"}",
            "schema_violation",
        ),
        (b'{"brand": "\\ud800"}', "invalid_json"),  # lone surrogate escape
        (b'{"brand": "\xed\xa0\x80"}', "invalid_json"),  # encoded surrogate
        (b'{"brand": "\xff"}', "invalid_json"),  # invalid UTF-8
        (orjson.dumps(sale(0, sale_price=2**64 - 1)), "schema_violation"),
        (orjson.dumps(sale(0, event_id=7)), "schema_violation"),
        (orjson.dumps(sale(0, occurred_at="9999-12-31T23:59:59-01:00")), "schema_violation"),
        (orjson.dumps({}), "schema_violation"),
        (b"null", "schema_violation"),
        (b'"text"', "schema_violation"),
    ],
)
def test_nesting_encoding_and_type_poison_is_refused(payload: bytes, kind: str | None) -> None:
    result = validate_message(DEMAND, payload, **{**LIMITS, "max_bytes": 1 << 20})
    if kind is None:
        assert isinstance(result, SaleContractEvent)
    else:
        assert isinstance(result, Rejection) and result.error_type == kind, result
        assert result.reason


def test_every_refusal_reason_names_the_field() -> None:
    bad = validate_message(DEMAND, orjson.dumps(sale(0, brand="A\x00B")), **LIMITS)
    assert isinstance(bad, Rejection)
    assert bad.reason.startswith("brand: ") and "U+0000" in bad.reason
    epoch = validate_message(DEMAND, orjson.dumps(sale(0, occurred_at=1704067200)), **LIMITS)
    assert isinstance(epoch, Rejection) and "occurred_at: " in epoch.reason
    assert "epoch numbers are not accepted" in epoch.reason


class _Unobservable(DemandDomain):
    def observe(self, event: BaseEvent) -> list:
        if event.event_id == "evt-1":
            raise OverflowError("numerical result out of range")
        return super().observe(event)


def test_an_event_that_cannot_be_folded_is_dead_lettered_not_raised() -> None:
    msgs = [Message("s", 0, i, None, orjson.dumps(sale(i))) for i in range(3)]
    batch = fold_batch(_Unobservable(), msgs, {}, consumer="c", **LIMITS)
    assert batch.event_ids == ["evt-0", "evt-2"]
    [(_, record)] = batch.dead_letters
    assert (record.offset, record.error_type) == (1, "schema_violation")
    assert "out of range" in record.reason and record.occurred_at.tzinfo is not None
