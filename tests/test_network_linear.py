"""VectorLinearRegressor: River's standardised linear pipeline on numpy vectors."""

from __future__ import annotations

import pickle
import random

import pytest
from river import compose, linear_model, optim, preprocessing

from ml.network.linear import VectorLinearRegressor


def rivers() -> object:
    """What ``river_linear`` was: River's own pipeline with the same parameters."""
    return preprocessing.TargetStandardScaler(
        compose.Pipeline(
            preprocessing.StandardScaler(),
            linear_model.LinearRegression(
                optimizer=optim.AdaGrad(0.05), loss=optim.losses.Huber(1.0), intercept_lr=0.01
            ),
        )
    )


def rows(n: int, seed: int = 2) -> list[tuple[dict[str, float], float]]:
    """20 features of different scales, a constant one and a binary one; a level jump."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x = {f"f{j}": rng.gauss(j, 1 + 10 * j) for j in range(20)}
        x["constant"] = 1.0
        x["flag"] = float(i % 2)
        out.append((x, 3 * x["f1"] - x["f5"] + rng.gauss(0, 5) + (500.0 if i > n // 2 else 0.0)))
    return out


def test_predictions_match_rivers_pipeline_to_rounding() -> None:
    ours, theirs = VectorLinearRegressor(), rivers()
    for x, y in rows(1500):
        expected = theirs.predict_one(x)
        assert ours.predict_one(x) == pytest.approx(expected, rel=1e-9, abs=1e-9)
        ours.learn_one(x, y)
        theirs.learn_one(x, y)
    assert ours.intercept == pytest.approx(theirs.regressor["LinearRegression"].intercept)


def test_pickles_and_continues_identically_and_refuses_another_feature_set() -> None:
    data = rows(300)
    live = VectorLinearRegressor()
    for x, y in data[:150]:
        live.learn_one(x, y)
    back = pickle.loads(pickle.dumps(live))
    for x, y in data[150:]:
        assert back.predict_one(x) == live.predict_one(x)
        live.learn_one(x, y)
        back.learn_one(x, y)
    with pytest.raises(ValueError, match="another feature set"):
        live.learn_one({"other": 1.0}, 1.0)
    assert VectorLinearRegressor().predict_one(data[0][0]) == 0.0  # untrained: River's 0
