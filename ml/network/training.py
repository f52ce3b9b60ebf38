"""The network domain's batch trainer: supervised rows per field from the stored windows.

Scopes. A job's scope is either a model config id (train that config: persistence, then the
config's own architecture) or an output field name (train the field's batch candidates:
persistence, LightGBM, and ``ann`` / ``lstm`` when PyTorch is importable), on the features of
the field's first batch config (else its first config). :meth:`NetworkTrainer.for_scope` makes
the trainer of a scope.

Training set. The stored observations (one row per cell and ``base_window_seconds`` window,
with per-field statistics) are merged into the config's windows (a multiple of the stored
window), then turned into supervised rows by :func:`ml.network.features.supervised_rows`,
exactly the rows the stream learns. Split in time: the test part is the rows whose target
window is among the last 20 % of the distinct target windows (or ``test_periods`` of them).

Candidates predict ``forecast_steps`` windows ahead from the same rows, so they are scored on
the same test rows: ``persistence`` (the latest value, the baseline, always first), ``lightgbm``
(on the persistence residual), ``river_*`` (the online learner replayed over the training rows
in the stream's order, then predicting and learning through the test rows), ``ann``/``lstm``
(:mod:`ml.network.neural`, optional).
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.aggregates import FieldStats
from ml.network.candidates import NetworkCandidate
from ml.network.configs import (
    BATCH_ARCHITECTURES,
    DEFAULT_CONFIGS,
    FIELDS,
    Architecture,
    ModelConfig,
    configs_for_field,
)
from ml.network.features import SupervisedRow, feature_names, supervised_rows
from ml.network.online import OnlineModel, replay
from ml.periods import index_start
from ml.training.base import DomainTrainer, TrainingSet, check_date_range
from ml.training.errors import ExtraNotInstalled, TrainingDataError, UnknownScope

__all__ = [
    "MIN_WINDOWS",
    "NetworkGBM",
    "NetworkTrainer",
    "OnlineReplay",
    "Persistence",
    "rows_frame",
    "torch_available",
    "windows_from_observations",
]

DOMAIN = "network"
#: Fewest distinct target windows a training set may have (or the runner's minimum if larger).
MIN_WINDOWS = 20
#: Columns of a rows frame besides the features.
META = ["cell_id", "anchor", "target", "period", "anchor_exists", "last"]


def torch_available() -> bool:
    """Whether PyTorch can be imported (the ``ann`` / ``lstm`` candidates need it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        return False


def windows_from_observations(
    observations: Iterable[Any], window_seconds: int, base_window_seconds: int
) -> list[tuple[str, int, dict[str, float | None]]]:
    """``(cell_id, window index, field means)`` of ``window_seconds`` windows from stored
    observation rows (``series_key``, ``period_start``, ``fields`` of FieldStats) of
    ``base_window_seconds`` windows, merged exactly (sums and counts)."""
    if window_seconds % base_window_seconds:
        raise TrainingDataError(
            f"window_duration_seconds {window_seconds} is not a multiple of the stored "
            f"observation window ({base_window_seconds} s)"
        )
    merged: dict[tuple[str, int], dict[str, FieldStats]] = {}
    for row in observations:
        index = int(row.period_start.timestamp()) // window_seconds
        into = merged.setdefault((row.series_key, index), {})
        for name, stats in row.fields.items():
            if name in FIELDS and stats.count:
                acc = into.setdefault(name, FieldStats())
                acc.count += stats.count
                acc.total += stats.total
    return [
        (cell, index, {name: s.total / s.count for name, s in fields.items()})
        for (cell, index), fields in merged.items()
    ]


def rows_frame(rows: Iterable[SupervisedRow], config: ModelConfig, field: str) -> pd.DataFrame:
    """Supervised rows as a frame: META columns, the features, and ``field`` (the target)."""
    names = feature_names(config, field)
    records = [
        {
            "cell_id": r.cell_id,
            "anchor": r.anchor,
            "target": r.target,
            "period": index_start(r.target, config.window_duration_seconds),
            "anchor_exists": r.anchor_exists,
            "last": r.last,
            **r.x,
            field: r.y,
        }
        for r in rows
    ]
    return pd.DataFrame.from_records(records, columns=[*META, *names, field])


def _to_rows(frame: pd.DataFrame, config: ModelConfig, field: str) -> list[SupervisedRow]:
    names = feature_names(config, field)
    x = frame[names].to_numpy(float)
    return [
        SupervisedRow(
            cell,
            int(a),
            int(t),
            dict(zip(names, xs.tolist(), strict=True)),
            float(last),
            float(y),
            bool(e),
        )
        for cell, a, t, e, last, y, xs in zip(
            frame["cell_id"],
            frame["anchor"],
            frame["target"],
            frame["anchor_exists"],
            frame["last"],
            frame[field],
            x,
            strict=True,
        )
    ]


class Persistence(NetworkCandidate):
    """The latest measured value of the field (the baseline)."""

    algorithm = "persistence"

    def __init__(self, config: ModelConfig, field: str) -> None:
        super().__init__(config, field)
        self.features = [f"{field}_last"]

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return rows["last"].to_numpy(float)


class NetworkGBM(NetworkCandidate):
    """LightGBM on the lag features, learning the persistence residual ``y - last``."""

    algorithm = "lightgbm"

    def __init__(self, config: ModelConfig, field: str, seed: int = 7, rounds: int = 300) -> None:
        super().__init__(config, field)
        self.seed = seed
        self.rounds = rounds
        self.model: lgb.Booster | None = None

    def fit(self, train: pd.DataFrame) -> NetworkGBM:
        params = {
            "objective": "huber",
            "alpha": float(np.std(train[self.field] - train["last"]) or 1.0),
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_data_in_leaf": 20,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "seed": self.seed,
            "num_threads": 1,
            "deterministic": True,
            "verbose": -1,
        }
        data = lgb.Dataset(
            train[self.features].to_numpy(float),
            (train[self.field] - train["last"]).to_numpy(float),
        )
        self.model = lgb.train(params, data, num_boost_round=self.rounds)
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("NetworkGBM.predict before fit")
        residual = self.model.predict(rows[self.features].to_numpy(float))
        return self._clip(rows["last"].to_numpy(float) + residual)


class OnlineReplay(NetworkCandidate):
    """The stream's online learner replayed over the training rows in the stream's order;
    on the test rows it keeps predicting then learning (progressive validation)."""

    def __init__(self, config: ModelConfig, field: str) -> None:
        super().__init__(config, field)
        self.algorithm = str(config.architecture)
        self.model = OnlineModel(config, field)

    def fit(self, train: pd.DataFrame) -> OnlineReplay:
        self.model = OnlineModel(self.config, self.field)
        replay(self.model, self.config, _to_rows(train, self.config, self.field))
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        model = copy.deepcopy(self.model)
        return np.asarray(replay(model, self.config, _to_rows(rows, self.config, self.field)))


def _candidate(config: ModelConfig, field: str, architecture: Architecture) -> NetworkCandidate:
    if architecture == Architecture.LIGHTGBM:
        return NetworkGBM(config, field)
    if architecture in (Architecture.ANN, Architecture.LSTM):
        if not torch_available():
            raise ExtraNotInstalled("torch", f"architecture {architecture} (PyTorch)")
        from ml.network.neural import NeuralCandidate

        return NeuralCandidate(config, field, architecture)
    return OnlineReplay(config, field)


class NetworkTrainer(DomainTrainer):
    """Batch trainer of one network scope (a config id or an output field)."""

    metric = "rmse"
    baseline = Persistence.algorithm

    def __init__(
        self,
        config: ModelConfig,
        field: str,
        *,
        architectures: Sequence[Architecture] | None = None,
        base_window_seconds: int = 60,
    ) -> None:
        config.model_key(field)  # KeyError when the config does not forecast the field
        self.config = config
        self.field = field
        self.architectures = list(architectures or [config.architecture])
        self.base_window_seconds = base_window_seconds

    @classmethod
    def for_scope(
        cls,
        scope: str,
        configs: Iterable[ModelConfig] = DEFAULT_CONFIGS,
        base_window_seconds: int = 60,
    ) -> NetworkTrainer:
        """The trainer of ``scope``: a config id (its first output field) or a field name."""
        configs = list(configs)
        for config in configs:
            if config.id == scope:
                return cls(config, config.output_fields[0], base_window_seconds=base_window_seconds)
        models = configs_for_field(configs, scope)
        if not models:
            raise UnknownScope(
                DOMAIN, scope, "no network model config has that id or forecasts that field"
            )
        batch = [c for c in models if c.architecture in BATCH_ARCHITECTURES]
        archs = [Architecture.LIGHTGBM]
        if torch_available():
            archs += [Architecture.ANN, Architecture.LSTM]
        return cls(
            (batch or models)[0],
            scope,
            architectures=archs,
            base_window_seconds=base_window_seconds,
        )

    def training_set(
        self,
        store: Any,
        start: date | None,
        end: date | None,
        min_periods: int,
        test_periods: int | None = None,
    ) -> TrainingSet:
        check_date_range(start, end)
        lo = datetime.combine(start, time(), tzinfo=UTC) if start else None
        hi = datetime.combine(end, time(), tzinfo=UTC) if end else None
        observations = store.series.observations(DOMAIN, start=lo, end=hi)
        return self.training_set_from(observations, min_periods, test_periods)

    def training_set_from(
        self, observations: Iterable[Any], min_periods: int = 0, test_periods: int | None = None
    ) -> TrainingSet:
        """The split from observation rows (anything with ``series_key``, ``period_start``
        and ``fields``), without a store."""
        config, field = self.config, self.field
        windows = windows_from_observations(
            observations, config.window_duration_seconds, self.base_window_seconds
        )
        if not windows:
            raise TrainingDataError("No network observations in the requested date range")
        cold: list[tuple[str, int]] = []
        frame = rows_frame(supervised_rows(windows, config, field, cold=cold), config, field)
        periods = sorted(frame["target"].unique()) if len(frame) else []
        needed = max(min_periods, MIN_WINDOWS)
        if len(periods) < needed:
            raise TrainingDataError(
                f"Insufficient training data. Minimum {needed} windows with {field} "
                f"{config.forecast_steps} window(s) after a measured window required "
                f"(found {len(periods)})."
            )
        n_test = test_periods or max(1, round(len(periods) * 0.2))
        cut = periods[-n_test]
        train = frame[frame["target"] < cut].reset_index(drop=True)
        test = frame[frame["target"] >= cut].reset_index(drop=True)
        scale = float(np.mean(np.abs(train[field] - train["last"]))) if len(train) else None
        d = config.window_duration_seconds
        return TrainingSet(
            train=train,
            test=test,
            target=field,
            scale=scale or None,
            train_periods=[index_start(int(p), d) for p in periods[:-n_test]],
            test_periods=[index_start(int(p), d) for p in periods[-n_test:]],
            segments=int(frame["cell_id"].nunique()),
            info={
                "config": config.model_dump(mode="json"),
                "field": field,
                "windows": len(windows),
                "cells": len({w[0] for w in windows}),
                "cold_rows": len(cold),
            },
        )

    def candidates(self) -> list[NetworkCandidate]:
        """Persistence first (the baseline), then one model per architecture."""
        return [Persistence(self.config, self.field)] + [
            _candidate(self.config, self.field, arch) for arch in self.architectures
        ]
