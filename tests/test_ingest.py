"""Unit tests of ml.ingest: validation reasons and checkpoint-aware batch folding (no Kafka)."""

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ml.domains import get_domain
from ml.ingest import Message, Rejection, fold_batch, validate_message
from schemas.events import SaleContractEvent
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
