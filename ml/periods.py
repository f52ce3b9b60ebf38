"""Calendar-month and fixed-window arithmetic (UTC), the one place every domain takes it from.

Months are identified by their first instant (``month_start``) or, for compact series, by a
month index (``year * 12 + month - 1``). Windows are ``seconds``-long, aligned to the epoch, and
identified by their start or their index (``timestamp // seconds``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

__all__ = [
    "add_months",
    "index_month",
    "index_start",
    "month_index",
    "month_start",
    "next_month",
    "window_index",
    "window_start",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def month_start(when: datetime) -> datetime:
    """First instant (UTC) of the calendar month containing ``when``."""
    when = when.astimezone(UTC)
    return datetime(when.year, when.month, 1, tzinfo=UTC)


def next_month(month: datetime) -> datetime:
    """First instant of the month after ``month`` (a month start)."""
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def month_index(month: date) -> int:
    """Months since year 0 of the month of ``month``: consecutive months differ by one."""
    return month.year * 12 + month.month - 1


def index_month(index: int) -> date:
    """First day of the month ``index`` (inverse of :func:`month_index`)."""
    return date(index // 12, index % 12 + 1, 1)


def add_months(start: date, months: int) -> datetime:
    """First instant (UTC) of the month ``months`` after the month of ``start``."""
    month = index_month(month_index(start) + months)
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def window_index(when: datetime, seconds: int) -> int:
    """Index of the ``seconds``-long window (aligned to the epoch) containing ``when``."""
    if when.tzinfo is None:
        raise ValueError("when must be timezone-aware")
    return int(when.timestamp()) // seconds


def index_start(index: int, seconds: int) -> datetime:
    """Start (UTC) of window ``index`` of ``seconds``-long windows."""
    return datetime.fromtimestamp(index * seconds, tz=UTC)


def window_start(when: datetime, seconds: int) -> datetime:
    """Start of the ``seconds``-long window (aligned to the epoch) containing ``when``."""
    offset = int((when - _EPOCH).total_seconds()) // seconds * seconds
    return datetime.fromtimestamp(offset, tz=UTC)
