"""Monthly books: months close by event-time watermark plus lateness; late events are flagged."""

from datetime import UTC, datetime, timedelta

from ml.demand.months import MonthlyBook
from ml.periods import next_month
from schemas.events import SaleContractEvent


def ev(day: str, brand: str = "A", kind: str = "SALE") -> SaleContractEvent:
    return SaleContractEvent(
        event_id=f"{day}/{brand}/{kind}",
        contract_type=kind,
        vehicle_type="CAR",
        brand=brand,
        model="M",
        occurred_at=f"{day}T12:00:00Z",
        sale_price=10.0,
        purchase_price=8.0,
    )


def test_next_month_wraps_year() -> None:
    assert next_month(datetime(2024, 12, 1, tzinfo=UTC)) == datetime(2025, 1, 1, tzinfo=UTC)


def test_months_close_after_lateness_in_order_with_zero_months() -> None:
    book = MonthlyBook(allowed_lateness=timedelta(days=10))
    for day in ("2024-01-05", "2024-01-20", "2024-02-10"):
        book.add(ev(day))
    book.add(ev("2024-01-07", brand="B", kind="PURCHASE"))
    assert book.close_ready() == []
    book.add(ev("2024-02-12"))  # watermark passes Feb 1 + 10 days: January closes
    [jan] = book.close_ready()
    assert jan.month == datetime(2024, 1, 1, tzinfo=UTC)
    a, b = ("CAR", "A", "M", ""), ("CAR", "B", "M", "")
    assert jan.counts[a].sales == 2 and jan.counts[b].purchases == 1
    assert jan.counts[b].sales == 0
    book.add(ev("2024-04-20"))  # Feb and an empty March close
    closed = book.close_ready()
    assert [c.month.month for c in closed] == [2, 3]
    assert closed[0].counts[a].sales == 2
    assert closed[1].counts[a].sales == 0 and closed[1].counts[b].sales == 0


def test_late_event_is_flagged_not_counted() -> None:
    book = MonthlyBook(allowed_lateness=timedelta(0))
    book.add(ev("2024-01-05"))
    book.add(ev("2024-02-05"))
    assert [c.month.month for c in book.close_ready()] == [1]
    assert book.add(ev("2024-01-30")) is False
    assert book.late_events == 1
    assert datetime(2024, 1, 1, tzinfo=UTC) not in book.open
