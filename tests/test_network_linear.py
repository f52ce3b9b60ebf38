"""VectorLinearRegressor: River's standardised linear pipeline on numpy vectors."""

from __future__ import annotations

import pickle
import random

import numpy as np
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


class _FirstVersion(VectorLinearRegressor):
    """The regressor's arithmetic as first written (dict rows, ``np.divide(where=)``), to pin
    that the faster one learns and predicts bit for bit the same."""

    def _row(self, x: dict[str, float]) -> np.ndarray:
        if self.names is None:
            self.names = tuple(x)
            size = len(self.names)
            self.mean, self.var, self.inv_std = np.zeros(size), np.zeros(size), np.zeros(size)
            self.weights, self.g2 = np.zeros(size), np.zeros(size)
        return np.fromiter(x.values(), dtype=float, count=len(self.names))

    def predict_one(self, x: dict[str, float]) -> float:
        if self.names is None:
            return self.y_mean
        raw = float(self.weights @ ((self._row(x) - self.mean) * self.inv_std)) + self.intercept
        return raw * self._y_std() + self.y_mean

    def learn_one(self, x: dict[str, float], y: float) -> None:
        old = self.y_mean
        self.y_n += 1.0
        self.y_mean += (1.0 / self.y_n) * (y - self.y_mean)
        self.y_s += (y - old) * (y - self.y_mean)
        std = self._y_std()
        target = (y - self.y_mean) / std if std else 0.0
        v = self._row(x)
        self.n += 1
        delta = v - self.mean
        self.mean += delta / self.n
        self.var += (delta * (v - self.mean) - self.var) / self.n
        self.inv_std = np.divide(1.0, np.sqrt(self.var), out=np.zeros_like(v), where=self.var != 0)
        xs = (v - self.mean) * self.inv_std
        r = float(self.weights @ xs) + self.intercept - target
        g = r if abs(r) <= self.epsilon else (self.epsilon if r > 0.0 else -self.epsilon)
        g = min(max(g, -self.clip_gradient), self.clip_gradient)
        self.intercept -= self.intercept_lr * g
        grad = xs * g
        self.g2 += grad * grad
        self.weights -= self.lr / np.sqrt(self.g2 + self.eps) * grad


def test_vector_rows_learn_and_predict_bit_for_bit_as_the_first_version() -> None:
    """``learn_vector``/``predict_vector`` on a (shared, read-only) array, through a pickle
    round trip, equal the first version's arithmetic exactly (constant features included)."""
    ours, first = VectorLinearRegressor(), _FirstVersion()
    names = None
    for i, (x, y) in enumerate(rows(800)):
        if names is None:
            names = tuple(x)
        v = np.fromiter(x.values(), dtype=float)
        v.flags.writeable = False
        assert ours.predict_vector(names, v) == first.predict_one(x)
        ours.learn_vector(names, v, y)
        first.learn_one(x, y)
        if i == 400:
            ours = pickle.loads(pickle.dumps(ours))
    for name in ("mean", "var", "inv_std", "weights", "g2"):
        assert np.array_equal(getattr(ours, name), getattr(first, name)), name
    assert (ours.intercept, ours.y_mean, ours.y_s) == (first.intercept, first.y_mean, first.y_s)
