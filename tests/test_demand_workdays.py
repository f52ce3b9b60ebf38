"""The demand calendar features (ml/demand/workdays.py) and their place in featured rows and
recursive forecasts: pure functions, no store, no broker."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd

from ml.demand.candidates import ROW_NAMES, add_features
from ml.demand.features import SeriesWindow
from ml.demand.workdays import (
    CALENDAR_NAMES,
    calendar_features,
    easter,
    movable_holidays,
    working_days,
)


def test_easter_sundays() -> None:
    assert [easter(y) for y in (2000, 2008, 2015, 2016, 2019, 2024, 2025)] == [
        date(2000, 4, 23), date(2008, 3, 23), date(2015, 4, 5), date(2016, 3, 27),
        date(2019, 4, 21), date(2024, 3, 31), date(2025, 4, 20),
    ]  # fmt: skip


def test_working_days_drop_the_easter_linked_holidays_on_weekdays() -> None:
    assert movable_holidays(2016) == {
        date(2016, 3, 24), date(2016, 3, 25), date(2016, 3, 28),  # Thu, Fri, Mon
        date(2016, 5, 5), date(2016, 5, 16),  # Ascension, Whit Monday
    }  # fmt: skip
    assert working_days(2016, 3) == 23 - 3  # Easter in March
    assert working_days(2015, 3) == 22 and working_days(2015, 4) == 22 - 3
    assert working_days(2016, 5) == 22 - 2
    assert working_days(2017, 1) == 22  # no holiday counted: fixed dates are the season's


def test_calendar_features_compare_with_last_year_and_last_month() -> None:
    row = calendar_features(date(2016, 3, 1))
    assert list(row) == list(CALENDAR_NAMES)
    assert row["working_days"] == 20.0
    assert math.isclose(row["working_days_vs_last_year"], math.log(20 / 22))
    assert math.isclose(row["working_days_vs_last_month"], math.log(20 / 21))
    january = calendar_features(pd.Timestamp(2016, 1, 1))  # across the year boundary
    assert math.isclose(january["working_days_vs_last_month"], math.log(21 / 23))


def test_featured_rows_and_forecast_windows_carry_the_same_calendar() -> None:
    months = pd.date_range("2015-01-01", periods=16, freq="MS")
    panel = pd.DataFrame({"series_key": "CAR|A|B|C", "month": months, "sales": 10.0,
                          "purchases": 0.0, "sale_price": float("nan"),
                          "purchase_price": float("nan")})  # fmt: skip
    featured = add_features(panel)
    assert set(CALENDAR_NAMES) <= set(featured.columns) and set(CALENDAR_NAMES) <= set(ROW_NAMES)
    for month, row in zip(months, featured.itertuples(), strict=True):
        assert row.working_days == working_days(month.year, month.month)
    window = SeriesWindow([10.0] * 16, [0.0] * 16, t_index=16)
    ahead = window.row(date(2016, 5, 1), extra=True)
    assert {k: ahead[k] for k in CALENDAR_NAMES} == calendar_features(date(2016, 5, 1))
