"""Working days of a calendar month: the demand domain's calendar features.

Registrations and sales happen on working days, so a month's count moves with how many it has.
Fixed-date holidays fall in the same month every year (the season already carries them); what
moves between months from one year to the next is the weekday pattern and the holidays tied to
Easter (dateutil's Gregorian :func:`~dateutil.easter.easter`). ``working_days`` counts Monday to
Friday minus the Easter-linked holidays that fall on them: Maundy Thursday, Good Friday, Easter
Monday, Ascension Day (Easter + 39) and Whit Monday (Easter + 50), public holidays across most
of Europe and the Americas (on Norway by-make they lowered the validation year's MAE more than
Norway's full calendar did: see the README).

:func:`calendar_features` gives a month's row (:data:`CALENDAR_NAMES`): its working days and
their log ratio to the same month last year and to the month before. Known in advance for any
month, so forecasts use them at every horizon.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from dateutil.easter import easter

from ml.periods import add_months

__all__ = ["CALENDAR_NAMES", "easter", "movable_holidays", "working_days", "calendar_features"]

#: The calendar columns of a featured row, in this order.
CALENDAR_NAMES: tuple[str, ...] = (
    "working_days",
    "working_days_vs_last_year",
    "working_days_vs_last_month",
)


def movable_holidays(year: int) -> frozenset[date]:
    """Maundy Thursday, Good Friday, Easter Monday, Ascension Day and Whit Monday of ``year``."""
    sunday = easter(year)
    return frozenset(sunday + timedelta(days=d) for d in (-3, -2, 1, 39, 50))


@lru_cache(maxsize=4096)
def working_days(year: int, month: int) -> int:
    """Mondays to Fridays of the month that are not :func:`movable_holidays`."""
    holidays = movable_holidays(year)
    day = date(year, month, 1)
    count = 0
    while day.month == month:
        if day.weekday() < 5 and day not in holidays:
            count += 1
        day += timedelta(days=1)
    return count


def calendar_features(month: Any) -> dict[str, float]:
    """:data:`CALENDAR_NAMES` of ``month`` (anything with ``.year`` and ``.month``)."""
    first = date(int(month.year), int(month.month), 1)
    days = working_days(first.year, first.month)

    def before(months: int) -> int:
        earlier = add_months(first, -months)
        return working_days(earlier.year, earlier.month)

    return {
        "working_days": float(days),
        "working_days_vs_last_year": math.log(days / before(12)),
        "working_days_vs_last_month": math.log(days / before(1)),
    }
