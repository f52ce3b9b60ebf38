"""Running and batch metrics against numpy references; demand features on a hand-made history."""

import math
import pickle
from datetime import date

import numpy as np
import pytest

from ml.demand.features import FEATURE_NAMES, demand_features
from ml.metrics import RunningMetrics, score, seasonal_naive_mae


def reference(y: np.ndarray, p: np.ndarray) -> dict:
    err = y - p
    nonzero = y != 0
    return {
        "mae": np.mean(np.abs(err)),
        "rmse": np.sqrt(np.mean(err**2)),
        "mape": np.mean(np.abs(err[nonzero] / y[nonzero])),
        "r2": 1 - np.sum(err**2) / np.sum((y - y.mean()) ** 2),
        "mape_excluded": int((~nonzero).sum()),
    }


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    y = rng.poisson(20, 300).astype(float) * rng.uniform(0.5, 50)
    y[rng.choice(300, 25, replace=False)] = 0.0
    p = np.clip(y + rng.normal(0, 8, 300), 0, None)
    return y, p


def test_running_metrics_match_numpy(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    running = RunningMetrics()
    for actual, predicted in zip(y, p, strict=True):
        running.update(actual, predicted)
    got, want = running.get(), reference(y, p)
    assert got["n"] == 300
    assert got["mape_excluded"] == want["mape_excluded"] == 25
    for key in ("mae", "rmse", "mape", "r2"):
        assert got[key] == pytest.approx(want[key], rel=1e-9)


def test_running_metrics_empty_single_and_pickle() -> None:
    running = RunningMetrics()
    assert running.get() == {
        "n": 0,
        "mae": None,
        "rmse": None,
        "mape": None,
        "r2": None,
        "mape_excluded": 0,
    }
    running.update(0, 2)
    assert running.get()["mape"] is None and running.get()["r2"] is None
    assert running.get()["mae"] == 2.0
    running.update(4, 3)
    assert running.get()["r2"] == pytest.approx(1 - (4 + 1) / 8)
    clone = pickle.loads(pickle.dumps(running))
    assert clone.get() == running.get()
    clone.update(1, 1)
    assert clone.n == 3 and running.n == 2


def test_score_matches_numpy(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    train = np.abs(np.sin(np.arange(40) / 2.0)) * 100 + np.arange(40)
    got, want = score(y, p, y_train=train, season=12), reference(y, p)
    for key in ("mae", "rmse", "mape", "r2"):
        assert got[key] == pytest.approx(want[key], rel=1e-9)
    assert got["wape"] == pytest.approx(np.sum(np.abs(y - p)) / np.sum(np.abs(y)))
    naive = np.mean(np.abs(train[12:] - train[:-12]))
    assert got["mase"] == pytest.approx(want["mae"] / naive)


def test_score_mase_fallbacks() -> None:
    assert score([1, 2], [1, 1])["mase"] is None
    # y_train not longer than the season: lag 1 naive.
    assert seasonal_naive_mae([1, 3, 6], season=12) == pytest.approx(2.5)
    assert score([1, 2], [1, 1], y_train=[1, 3, 6])["mase"] == pytest.approx(0.5 / 2.5)
    assert score([1, 2], [1, 1], y_train=[5])["mase"] is None
    assert score([1, 2], [1, 1], y_train=[5, 5, 5])["mase"] is None
    with pytest.raises(ValueError):
        score([1, 2], [1])


def test_demand_features_exact_values() -> None:
    history = [float(v) for v in range(10, 160, 10)]  # 15 months: 10, 20, ..., 150
    f = demand_features(
        history,
        date(2024, 3, 1),
        t_index=15,
        purchases=[4.0, 6.0],
        sale_price=120.0,
        purchase_price=100.0,
    )
    assert tuple(f) == FEATURE_NAMES
    assert f["month_of_year"] == 3 and f["year"] == 2024 and f["trend"] == 15
    assert f["season_sin"] == pytest.approx(1.0)
    assert f["season_cos"] == pytest.approx(0.0, abs=1e-12)
    assert f["lag_1"] == 150 and f["lag_3"] == 130 and f["lag_12"] == 40
    assert f["rolling_mean_3"] == pytest.approx(140)
    assert f["has_lag_3"] == 1 and f["has_lag_12"] == 1
    assert f["purchases_lag_1"] == 6 and f["margin_lag_1"] == 20


def test_demand_features_short_and_empty_history() -> None:
    short = demand_features([5.0, 7.0], date(2024, 12, 1), t_index=2, sale_price=10.0)
    assert short["lag_1"] == short["lag_3"] == short["lag_12"] == 7
    assert short["rolling_mean_3"] == 6
    assert short["has_lag_3"] == 0 and short["has_lag_12"] == 0
    assert short["margin_lag_1"] == 0 and short["purchases_lag_1"] == 0
    assert short["season_sin"] == pytest.approx(0.0, abs=1e-12)
    assert short["season_cos"] == pytest.approx(1.0)
    empty = demand_features([], date(2024, 1, 1), t_index=0)
    assert all(math.isfinite(v) for v in empty.values())
    assert empty["lag_1"] == empty["lag_3"] == empty["lag_12"] == empty["rolling_mean_3"] == 0
