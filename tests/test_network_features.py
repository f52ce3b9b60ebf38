"""Window series -> supervised rows: lags, explicit imputation of missing values, cold rows."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest

from ml.network.configs import ModelConfig
from ml.network.features import (
    CellSeries,
    feature_names,
    features_at,
    history_steps,
    supervised_rows,
)
from ml.periods import index_start, window_index

CONFIG = ModelConfig(
    id="c",
    architecture="river_linear",
    input_fields=("rsrp", "snr"),
    output_fields=("rsrp",),
    lookback_steps=3,
    forecast_steps=2,
)


def series(windows: dict[int, dict], keep: int | None = None) -> CellSeries:
    s = CellSeries(keep=keep)
    for index in sorted(windows):
        s.add(index, windows[index])
    return s


def test_window_index_is_epoch_aligned() -> None:
    when = datetime(2024, 1, 1, 12, 0, 59, tzinfo=UTC)
    index = window_index(when, 60)
    assert index_start(index, 60) == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert window_index(datetime(2024, 1, 1, 12, 1, tzinfo=UTC), 60) == index + 1
    with pytest.raises(ValueError):
        window_index(datetime(2024, 1, 1), 60)


def test_lags_and_missing_values_are_imputed_with_the_last_seen_value_and_flagged() -> None:
    s = series({10: {"rsrp": -90.0, "snr": 5.0}, 11: {"rsrp": -95.0, "snr": None}, 12: {}})
    feats = features_at(s, CONFIG, "rsrp", 12)
    assert feats is not None and feats.last == -95.0
    x = feats.x
    assert list(x) == feature_names(CONFIG, "rsrp")
    # window 12 exists but measured nothing: carried from 11 (rsrp) and 10 (snr)
    assert (x["rsrp_lag0"], x["rsrp_lag0_missing"]) == (-95.0, 1.0)
    assert (x["snr_lag0"], x["snr_lag0_missing"]) == (5.0, 1.0)
    assert (x["rsrp_lag1"], x["rsrp_lag1_missing"]) == (-95.0, 0.0)
    assert (x["snr_lag1"], x["snr_lag1_missing"]) == (5.0, 1.0)
    assert (x["snr_lag2"], x["snr_lag2_missing"]) == (5.0, 0.0)
    assert x["rsrp_last"] == -95.0
    assert x["rsrp_age"] == pytest.approx(math.log1p(1))


def test_a_field_never_measured_is_zero_and_flagged() -> None:
    s = series({10: {"rsrp": -90.0}})
    x = features_at(s, CONFIG, "rsrp", 10).x
    assert all(x[f"snr_lag{k}"] == 0.0 and x[f"snr_lag{k}_missing"] == 1.0 for k in range(3))
    # lags before the cell's first window: carried nothing, so 0 and flagged
    assert (x["rsrp_lag2"], x["rsrp_lag2_missing"]) == (0.0, 1.0)


def test_no_output_value_at_or_before_the_anchor_is_cold() -> None:
    s = series({10: {"snr": 3.0}, 11: {"rsrp": -90.0}})
    assert features_at(s, CONFIG, "rsrp", 10) is None
    assert features_at(s, CONFIG, "rsrp", 11) is not None


def test_the_anchor_window_need_not_exist() -> None:
    s = series({10: {"rsrp": -90.0, "snr": 1.0}, 20: {"rsrp": -80.0}})
    feats = features_at(s, CONFIG, "rsrp", 15)
    assert feats.last == -90.0 and feats.x["rsrp_age"] == pytest.approx(math.log1p(5))
    assert all(feats.x[f"rsrp_lag{k}_missing"] == 1.0 for k in range(3))


def test_bounded_series_gives_the_same_features_as_the_full_one() -> None:
    rng = random.Random(3)
    windows = {}
    index = 100
    for _ in range(300):
        index += rng.choice([1, 1, 1, 2, 5])
        windows[index] = {
            "rsrp": None if rng.random() < 0.3 else rng.uniform(-110, -70),
            "snr": None if rng.random() < 0.5 else rng.uniform(-5, 30),
        }
    full = series(windows)
    bounded = CellSeries(keep=history_steps(CONFIG))
    checked = 0
    for i in sorted(windows):
        bounded.add(i, windows[i])
        for anchor in (i, i - CONFIG.forecast_steps):
            a, b = (
                features_at(full, CONFIG, "rsrp", anchor),
                features_at(bounded, CONFIG, "rsrp", anchor),
            )
            assert (a is None) == (b is None)
            if a is not None:
                assert a == b
                checked += 1
    assert checked > 400
    assert len(bounded.indices) <= history_steps(CONFIG)
    with pytest.raises(ValueError, match="older than the kept history"):
        bounded.last_seen("rsrp", bounded.indices[-1] - history_steps(CONFIG))


def test_windows_must_arrive_in_order() -> None:
    s = series({10: {"rsrp": 1.0}})
    with pytest.raises(ValueError):
        s.add(10, {})
    with pytest.raises(ValueError):
        s.add(9, {})


def test_supervised_rows_forecast_steps_ahead_and_report_cold_rows() -> None:
    windows = [
        ("b", 1, {"rsrp": -100.0}),
        ("a", 5, {"snr": 2.0}),  # a: no rsrp yet
        ("a", 6, {"rsrp": None, "snr": 3.0}),
        ("a", 7, {"rsrp": -91.0}),  # cold: nothing at or before the anchor 5
        ("a", 8, {"rsrp": -92.0}),  # cold: anchor 6
        ("a", 9, {"rsrp": -93.0}),  # anchor 7 -> row
        ("a", 10, {"snr": 1.0}),  # target missing: no row
        ("a", 11, {"rsrp": -95.0}),  # anchor 9 -> row
        ("b", 3, {"rsrp": -101.0}),  # anchor 1 -> row
    ]
    cold: list = []
    rows = list(supervised_rows(windows, CONFIG, "rsrp", cold=cold))
    assert [(r.cell_id, r.anchor, r.target) for r in rows] == [
        ("a", 7, 9),
        ("a", 9, 11),
        ("b", 1, 3),
    ]
    assert cold == [("a", 7), ("a", 8), ("b", 1)]  # b's first window has no past
    a9 = rows[0]
    assert (a9.y, a9.last, a9.anchor_exists) == (-93.0, -91.0, True)
    assert a9.x["snr_lag0"] == 3.0 and a9.x["snr_lag0_missing"] == 1.0  # carried from 6
    assert {r.cell_id for r in rows} == {"a", "b"}  # no cell dropped
    with pytest.raises(ValueError, match="two windows"):
        list(supervised_rows([("a", 1, {}), ("a", 1, {})], CONFIG, "rsrp"))


def test_a_row_shifted_from_the_previous_anchor_equals_the_one_computed_in_full() -> None:
    """``features_at(..., previous=row at anchor - 1)`` (what the stream does at consecutive
    closes) gives exactly the row computed from the series, gaps and missing values included;
    a ``previous`` of another anchor is ignored."""
    rng = random.Random(11)
    config = CONFIG.model_copy(update={"input_fields": ("rsrp", "snr", "cqi")})
    s = CellSeries(keep=history_steps(config))
    previous = None
    index, checked = 100, 0
    for _ in range(400):
        index += rng.choice([1, 1, 1, 1, 2, 4])
        s.add(
            index,
            {
                "rsrp": None if rng.random() < 0.3 else rng.uniform(-110, -70),
                "snr": None if rng.random() < 0.6 else rng.uniform(-5, 30),
                "cqi": None if index < 300 else rng.uniform(0, 15),  # unmeasured at first
            },
        )
        full = features_at(s, config, "rsrp", index)
        shifted = features_at(s, config, "rsrp", index, previous)
        assert shifted == full
        if full is not None:
            assert shifted.x == full.x and list(full.x) == feature_names(config, "rsrp")
            checked += previous is not None and previous.anchor == index - 1
        previous = full
    assert checked > 200
