"""Multi-month forecasts from trained versions: feature parity, intervals, fallback levels."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.demand.candidates import (
    FEATURES,
    GlobalGBM,
    OnlineReplay,
    SeasonalNaive,
    add_features,
    segment_window,
)
from ml.demand.forecast import UnknownSegmentError, build_book, complete_months
from ml.demand.training import demand_panel
from ml.registry.store import Store
from tests.training_data import seed_demand

TODAY = date(2026, 11, 22)


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    path: Path = tmp_path_factory.mktemp("book") / "book.db"
    store = Store.from_url(f"sqlite:///{path}")
    seed_demand(store, months=30, segments=6)
    return demand_panel(store)


def test_next_month_features_equal_the_training_features(panel: pd.DataFrame) -> None:
    """The recursive forecast builds next month's row the way ``add_features`` would."""
    nxt = panel["month"].max() + pd.DateOffset(months=1)
    extra = panel.groupby("series_key").tail(1).assign(month=nxt, sales=np.nan)
    expected = add_features(pd.concat([panel, extra], ignore_index=True))
    expected = expected[expected["month"] == nxt].sort_values("series_key")
    rows = [segment_window(p).row(nxt) for _, p in panel.groupby("series_key")]
    got = pd.DataFrame(rows)
    np.testing.assert_allclose(
        got[FEATURES].to_numpy(float), expected[FEATURES].to_numpy(float), rtol=1e-12
    )


@pytest.mark.parametrize("candidate", [SeasonalNaive, GlobalGBM, OnlineReplay])
def test_book_intervals_are_ordered_and_months_consecutive(panel, candidate) -> None:
    model = candidate().fit(add_features(panel))
    book = build_book(model, panel, "v1.0.0-20261122", horizon=24, today=TODAY)
    key = sorted(book.segments)[0]
    parts = tuple(key.split("|"))
    wide = book.predict(parts, 24, 0.99)
    narrow = book.predict(parts, 24, 0.5)
    assert wide.fallback_level is None and wide.segment == key
    months = [p.month for p in wide.points]
    assert months[0] == (panel["month"].max() + pd.DateOffset(months=1)).date()
    assert all(m.day == 1 for m in months)
    assert all(
        (b.year * 12 + b.month) - (a.year * 12 + a.month) == 1
        for a, b in zip(months, months[1:], strict=False)
    )
    for w, n in zip(wide.points, narrow.points, strict=True):
        assert 0 <= w.lower <= n.lower <= w.value <= n.upper <= w.upper
        assert w.value == n.value
    assert wide.points[-1].upper - wide.points[-1].lower > 0


def test_parent_fallback_and_unknown_segment(panel: pd.DataFrame) -> None:
    book = build_book(SeasonalNaive().fit(panel), panel, "v1", horizon=6, today=TODAY)
    key = sorted(book.segments)[0]
    vehicle_type, brand, model, _ = key.split("|")
    cold = book.predict((vehicle_type, brand, model, "NEW LINE"), 3, 0.95)
    assert cold.fallback_level == "brand_model"
    assert cold.segment == f"{vehicle_type}|{brand}|{model}"
    brand_only = book.predict((vehicle_type, brand, "NO SUCH MODEL", ""), 3, 0.95)
    assert brand_only.fallback_level == "brand"
    with pytest.raises(UnknownSegmentError):
        book.predict((vehicle_type, "NO SUCH BRAND", model, ""), 3, 0.95)
    with pytest.raises(UnknownSegmentError):
        book.predict(("BOAT", brand, model, ""), 3, 0.95)
    with pytest.raises(ValueError):
        book.predict(tuple(key.split("|")), 7, 0.95)


def test_the_month_still_counting_is_not_history(panel: pd.DataFrame) -> None:
    last = panel["month"].max().date()
    assert complete_months(panel, last)["month"].max() < panel["month"].max()
    assert complete_months(panel, TODAY)["month"].max() == panel["month"].max()


def test_answers_are_kept_per_question_and_equal_a_fresh_computation(panel) -> None:
    """The book keeps each answer (it never changes once built): the kept one is what a fresh
    computation gives, another horizon or confidence is another answer, and the memo is
    bounded; a pickled book (as the worker hands it over) answers the same."""
    import pickle

    from ml.demand import book as book_module

    book = build_book(SeasonalNaive().fit(panel), panel, "v1", horizon=6, today=TODAY)
    parts = tuple(sorted(book.segments)[0].split("|"))
    first = book.predict(parts, 6, 0.9)
    assert book.predict(parts, 6, 0.9) is first
    assert first == book._predict(parts, 6, 0.9)
    assert book.predict(parts, 6, 0.8) != first and book.predict(parts, 3, 0.9) != first
    assert pickle.loads(pickle.dumps(book)).predict(parts, 6, 0.9) == first
    for i in range(book_module.MEMO_SIZE + 5):
        book.predict(parts, 1 + i % 6, 0.5 + (i % 40) / 100 + i * 1e-9)
    assert len(book._memo) <= book_module.MEMO_SIZE
