"""Online network models: River regressors that forecast a cell's field, predict then learn.

One :class:`OnlineModel` per ``(output field, config id)`` serves every cell of a partition
(most cells have too few windows for a model of their own). It learns the *residual*
``y - last`` of the persistence forecast ``last`` (the latest value of the field, see
:mod:`ml.network.features`), with the target standardised online, so a model that outputs 0
is the persistence forecast. Two guards keep a young model from absurd forecasts (after 4 rows
the online scaler's variances are tiny and one odd input gave 812,000 kbit/s for a 600 kbit/s
cell): the first ``WARMUP_ROWS`` forecasts are persistence (the model learns from the start),
and a forecast never moves further from ``last`` than the largest change the model has learnt.
Non-negative fields (bitrates, ping, speed, CQI) are clipped at 0.

Learners by architecture (all inside a TargetStandardScaler), chosen on the Irish 5G data
(``benchmarks/network_accuracy.py``; 60 s windows, 5 lags, one window ahead, 4,628 scored windows
per field, time order):

* ``river_linear``: StandardScaler + LinearRegression (AdaGrad(0.05), Huber loss: radio fields
  jump at handovers), run on numpy vectors by :class:`~ml.network.linear.VectorLinearRegressor`
  (River's arithmetic, row by row, equal to River's pipeline to rounding, a fraction of its
  cost). dl_bitrate MAE 6,267 / RMSE 19,123 against persistence 6,896 / 21,928; rsrp MAE
  5.23 / RMSE 8.32 against 5.36 / 9.30; a few kB pickled. The squared loss had a slightly
  lower RMSE but a 14 % higher MAE on dl_bitrate.
* ``river_forest``: ARFRegressor, 5 trees, mean leaves, grace period 100, depth <= 8 (the
  default adaptive leaves with linear models diverged on raw bitrates: MAE in the billions),
  its trees splitting with :class:`~ml.network.splitter.FastTEBSTSplitter` (River's splitter
  without its deep copies: the same trees, learning 2-4x cheaper). dl_bitrate MAE 6,998 / RMSE
  21,700 against persistence 6,870 / 21,820 on its windows, rsrp 5.10 / 8.33 against 5.29 /
  8.97 (it skips the 1 % of windows measured once, see ``TREE_ARCHITECTURES``); ~1.3 MB
  pickled for two models and ~60 ms per pickle, paid once per ``JOURNAL_ROWS`` learnt rows
  (checkpoints in between carry the last snapshot's bytes and a journal, see
  :class:`OnlineModel`). The median vote of the trees runs without numpy
  (:class:`MedianARFRegressor`, same value).
* ``river_tree``: StandardScaler + HoeffdingAdaptiveTreeRegressor (grace period 50): about
  persistence level (rsrp MAE 5.61 against 5.36 in an earlier run), ~165 kB pickled.

:class:`OnlineForecaster` holds the models of a set of online configs and the cells' window
series. When a cell's window closes it, for every model: scores the forecast made for that
window when its anchor window closed (or, when the cell had no anchor window, predicts it now,
before learning) against the actual value, with the persistence forecast scored on the same
points; learns the row; then forecasts ``forecast_steps`` windows ahead from this window. Every
scored error is out-of-sample (progressive validation). State is bounded per cell (the kept
windows and at most ``forecast_steps`` pending forecasts per model) and pickles.

Tree-based models (``river_forest``, ``river_tree``) cost ~10x a linear model per learnt row.
They skip a cell's window whose output field was measured fewer than ``tree_min`` times
(``NETWORK_TREE_MIN_MEASUREMENTS``, default 2): no score, no learning, no forecast from it; the
linear models take every window. On a sparse stream (one measurement per cell per window, every
event closes a window) that removes the forests' work entirely; on the Irish traces it skips
1 % of the windows (``benchmarks/network_accuracy.py``).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from river import compose, forest, preprocessing, tree

from ml.metrics import RunningMetrics
from ml.network.configs import Architecture, ModelConfig
from ml.network.features import (
    CellSeries,
    Features,
    SupervisedRow,
    features_at,
    history_steps,
)
from ml.network.linear import VectorLinearRegressor
from ml.network.splitter import FastTEBSTSplitter

__all__ = [
    "LEARNERS",
    "NON_NEGATIVE_FIELDS",
    "TREE_ARCHITECTURES",
    "WARMUP_ROWS",
    "WindowForecast",
    "OnlineForecaster",
    "OnlineModel",
    "ScoredPoint",
    "make_regressor",
    "replay",
]

#: Fields that cannot be negative: predictions are clipped at 0.
NON_NEGATIVE_FIELDS = frozenset(
    {
        "dl_bitrate",
        "ul_bitrate",
        "cqi",
        "ping_avg",
        "ping_min",
        "ping_max",
        "ping_stdev",
        "ping_loss",
        "speed",
    }
)
#: Rows a model learns before its predictions are used (persistence until then).
WARMUP_ROWS = 20
#: Rows a model's checkpoint journals before it re-pickles its regressor (see ``OnlineModel``).
JOURNAL_ROWS = 256
#: Tree-based online architectures: they skip windows measured fewer than
#: ``NETWORK_TREE_MIN_MEASUREMENTS`` times (``OnlineForecaster.close``).
TREE_ARCHITECTURES = frozenset({Architecture.RIVER_FOREST, Architecture.RIVER_TREE})
#: z of the forecast interval ``value +- z * running RMSE`` (about 95 % under normal errors).
INTERVAL_Z = 1.96


def _linear() -> Any:
    return VectorLinearRegressor(lr=0.05, epsilon=1.0, intercept_lr=0.01)


class MedianARFRegressor(forest.ARFRegressor):
    """River's ``ARFRegressor`` whose median vote skips numpy: the same value (the middle
    prediction, or the mean of the two middle ones), without ``np.median``'s ~40 us per call on
    five numbers (a quarter of a forest's prediction time)."""

    def predict_one(self, x: dict) -> float:
        if len(self) == 0 or self.aggregation_method != self._MEDIAN:
            return super().predict_one(x)
        votes = sorted(float(model.predict_one(x)) for model in self)
        if any(v != v for v in votes):  # NaN: numpy's answer
            return super().predict_one(x)
        mid = len(votes) // 2
        return votes[mid] if len(votes) % 2 else (votes[mid - 1] + votes[mid]) / 2


def _forest() -> Any:
    return preprocessing.TargetStandardScaler(
        MedianARFRegressor(
            n_models=5,
            leaf_prediction="mean",
            grace_period=100,
            max_depth=8,
            seed=42,
            splitter=FastTEBSTSplitter(),
        )
    )


def _tree() -> Any:
    return preprocessing.TargetStandardScaler(
        compose.Pipeline(
            preprocessing.StandardScaler(),
            tree.HoeffdingAdaptiveTreeRegressor(grace_period=50, seed=42),
        )
    )


#: River learner factory per online architecture.
LEARNERS: dict[Architecture, Callable[[], Any]] = {
    Architecture.RIVER_LINEAR: _linear,
    Architecture.RIVER_FOREST: _forest,
    Architecture.RIVER_TREE: _tree,
}


def make_regressor(architecture: Architecture | str) -> Any:
    """A fresh River regressor for an online ``architecture`` (ValueError for batch ones)."""
    try:
        return LEARNERS[Architecture(architecture)]()
    except (KeyError, ValueError):
        raise ValueError(f"{architecture!r} is not an online architecture") from None


@dataclass(frozen=True, slots=True)
class ScoredPoint:
    """A forecast of one cell's window scored against what was measured there."""

    field: str
    config_id: str
    cell_id: str
    target: int
    actual: float
    predicted: float
    baseline: float


@dataclass(frozen=True, slots=True)
class WindowForecast:
    """A forecast of ``field`` for window ``target`` of a cell (interval from running RMSE)."""

    field: str
    config_id: str
    cell_id: str
    target: int
    value: float
    lower: float | None
    upper: float | None


class OnlineModel:
    """One River regressor for ``(field, config)`` with its running metrics and those of the
    persistence baseline on the same points.

    Pickling (the partition checkpoint of every batch) pickles a linear regressor
    (:class:`~ml.network.linear.VectorLinearRegressor`, a few arrays) as it is. It does not
    re-pickle another regressor (a forest, a tree) each time: the state holds a *snapshot*
    (the regressor pickled once) and the *journal* of the rows learnt since, and unpickling
    replays the journal on the snapshot. Learning is
    deterministic (River's random state is in the snapshot), so the restored regressor is the
    one that learnt them. The snapshot is refreshed at the first pickle after the journal
    reached ``JOURNAL_ROWS`` rows (it stops growing there), so a forest (0.5-1.5 MB, tens of
    ms to pickle) is re-pickled once per ``JOURNAL_ROWS`` learnt rows instead of once per
    batch, and a restore replays at most that many rows. The snapshot's bytes are still
    written with every checkpoint (copying them is cheap); the pickling is what is saved.
    """

    def __init__(self, config: ModelConfig, field: str) -> None:
        self.config_id = config.id
        self.field = field
        self.regressor = make_regressor(config.architecture)
        self.metrics = RunningMetrics()
        self.baseline = RunningMetrics()
        self.learned = 0
        self.cold = 0
        #: largest |y - last| learnt: predictions never change more than that
        self.max_change = 0.0
        self._snapshot: bytes | None = None
        #: feature names of the journalled rows, in order (the same for every row)
        self._names: tuple[str, ...] | None = None
        #: (feature values, target) learnt since the snapshot
        self._journal: list[tuple[tuple[float, ...], float]] = []

    def __getstate__(self) -> dict[str, Any]:
        if type(self.regressor) is VectorLinearRegressor:
            # a few arrays: pickled as they are, cheaper than a journal of feature rows
            return {**self.__dict__, "_snapshot": None, "_journal": []}
        if self._snapshot is None:
            self._snapshot = pickle.dumps(self.regressor, protocol=pickle.HIGHEST_PROTOCOL)
            self._journal = []
        state = self.__dict__.copy()
        del state["regressor"]
        state["_journal"] = list(self._journal)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "regressor" in state:
            return
        self.regressor = pickle.loads(self._snapshot)
        names = self._names or ()
        for values, y in self._journal:
            self.regressor.learn_one(dict(zip(names, values, strict=True)), y)
        if type(self.regressor) is VectorLinearRegressor:  # a version-5 state: no journal now
            self._snapshot, self._journal = None, []

    def predict(self, feats: Features) -> float:
        if self.learned < WARMUP_ROWS:
            return feats.last
        regressor = self.regressor
        if type(regressor) is VectorLinearRegressor:  # no feature dict to build
            change = regressor.predict_vector(feats.names, feats.vector()) or 0.0
        else:
            change = float(regressor.predict_one(feats.x) or 0.0)
        value = feats.last + min(max(change, -self.max_change), self.max_change)
        return max(value, 0.0) if self.field in NON_NEGATIVE_FIELDS else value

    def learn(self, feats: Features, y: float) -> None:
        change = y - feats.last
        regressor = self.regressor
        if type(regressor) is VectorLinearRegressor:  # no feature dict, no journal
            regressor.learn_vector(feats.names, feats.vector(), change)
        else:
            regressor.learn_one(feats.x, change)
            names = feats.names
            if (names is not self._names and names != self._names) or len(
                self._journal
            ) >= JOURNAL_ROWS:
                # another feature set (the journal cannot name it) or a full journal: the
                # next pickle takes a new snapshot, and the journal restarts there
                self._snapshot, self._journal, self._names = None, [], names
            elif self._snapshot is not None:
                self._journal.append((feats.values, change))
        self.max_change = max(self.max_change, abs(change))
        self.learned += 1

    def score(self, actual: float, predicted: float, baseline: float) -> None:
        self.metrics.update(actual, predicted)
        self.baseline.update(actual, baseline)

    def interval(self, value: float) -> tuple[float | None, float | None]:
        rmse = self.metrics.rmse
        if rmse is None:
            return None, None
        lower = value - INTERVAL_Z * rmse
        if self.field in NON_NEGATIVE_FIELDS:
            lower = max(lower, 0.0)
        return lower, value + INTERVAL_Z * rmse


class OnlineForecaster:
    """The online models of some configs over the cells of one partition."""

    def __init__(self, configs: Iterable[ModelConfig], *, tree_min_measurements: int = 1) -> None:
        if tree_min_measurements < 1:
            raise ValueError("tree_min_measurements must be >= 1")
        #: tree-based models (``TREE_ARCHITECTURES``) learn, score and forecast a cell's window
        #: only when its output field was measured at least this often in it (see ``close``)
        self.tree_min = int(tree_min_measurements)
        self.configs: dict[str, ModelConfig] = {}
        for config in configs:
            if not config.online:
                raise ValueError(f"config {config.id!r} ({config.architecture}) is not online")
            if config.id in self.configs:
                raise ValueError(f"duplicated config id {config.id!r}")
            self.configs[config.id] = config
        self.models: dict[tuple[str, str], OnlineModel] = {
            (name, c.id): OnlineModel(c, name)
            for c in self.configs.values()
            for name in c.output_fields
        }
        #: windows each duration's series keep
        self.keep: dict[int, int] = {}
        for c in self.configs.values():
            d = c.window_duration_seconds
            self.keep[d] = max(self.keep.get(d, 0), history_steps(c))
        self.series: dict[tuple[int, str], CellSeries] = {}
        #: (field, config id, cell) -> {target window: (predicted, persistence)}
        self.pending: dict[tuple[str, str, str], dict[int, tuple[float, float]]] = {}
        #: not pickled: (duration, cell) -> the features computed at the cell's last close
        #: (the forecast's, which the next close learns from; see ``close``)
        self._features: dict[tuple[int, str], dict[tuple[Any, ...], Features | None]] = {}
        #: not pickled: duration -> its models (``_plan``; configs and models never change)
        self._plans: dict[int, list[tuple[ModelConfig, OnlineModel, bool]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_features"], state["_plans"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._features = {}
        self._plans = {}

    @property
    def durations(self) -> list[int]:
        """The window durations (seconds) the configs use."""
        return sorted(self.keep)

    def close(
        self,
        cell_id: str,
        duration: int,
        index: int,
        means: Mapping[str, float | None],
        counts: Mapping[str, float] | None = None,
    ) -> tuple[list[ScoredPoint], list[WindowForecast]]:
        """Window ``index`` (of ``duration`` seconds) of ``cell_id`` closed with these field
        means: score, learn, forecast for every model on this duration.

        ``counts``: measurements of each field in the window. A tree-based model skips the
        window (no score, no learning, no forecast from it) when its output field has fewer
        than ``tree_min`` of them: a sparse cell is left to the linear models, whose learning
        costs a fraction of a forest's. ``None`` (or ``tree_min`` 1) skips nothing.

        Models of configs with the same inputs and lookback share one computation of the
        features of a window, and the features a close forecasts from are kept (in memory, not
        in the checkpoint) for the next close of the cell, which learns from them: the same
        values, since :func:`~ml.network.features.features_at` of an anchor only reads windows
        up to it, which no later window changes."""
        series = self.series.get((duration, cell_id))
        if series is None:
            series = self.series[(duration, cell_id)] = CellSeries(keep=self.keep[duration])
        series.add(index, means)
        scored: list[ScoredPoint] = []
        forecasts: list[WindowForecast] = []
        cache = self._features.pop((duration, cell_id), {})
        plan = self._plans.get(duration)
        if plan is None:
            plan = self._plans[duration] = self._plan(duration)
        for config, model, is_tree in plan:
            if is_tree and counts is not None and counts.get(model.field, 0) < self.tree_min:
                continue
            point = self._learn(model, config, series, cell_id, index, cache)
            if point is not None:
                scored.append(point)
            forecast = self._forecast(model, config, series, cell_id, index, cache)
            if forecast is not None:
                forecasts.append(forecast)
        self._features[(duration, cell_id)] = {k: v for k, v in cache.items() if k[3] == index}
        return scored, forecasts

    def _plan(self, duration: int) -> list[tuple[ModelConfig, OnlineModel, bool]]:
        """The models of this duration, in config then output order, with whether each is
        tree-based."""
        return [
            (config, self.models[(name, config.id)], config.architecture in TREE_ARCHITECTURES)
            for config in self.configs.values()
            if config.window_duration_seconds == duration
            for name in config.output_fields
        ]

    def _learn(
        self,
        model: OnlineModel,
        config: ModelConfig,
        series: CellSeries,
        cell_id: str,
        index: int,
        cache: dict[tuple[Any, ...], Features | None],
    ) -> ScoredPoint | None:
        pending = self.pending.get((model.field, config.id, cell_id), {})
        made = pending.pop(index, None)
        for stale in [t for t in pending if t < index]:  # their target window never came
            del pending[stale]
        y = series.value(model.field, index)
        if y is None:
            return None
        feats = _features(series, config, model.field, index - config.forecast_steps, cache)
        if feats is None:
            model.cold += 1
            return None
        predicted, baseline = made if made is not None else (model.predict(feats), feats.last)
        model.score(y, predicted, baseline)
        model.learn(feats, y)
        return ScoredPoint(model.field, config.id, cell_id, index, y, predicted, baseline)

    def _forecast(
        self,
        model: OnlineModel,
        config: ModelConfig,
        series: CellSeries,
        cell_id: str,
        index: int,
        cache: dict[tuple[Any, ...], Features | None],
    ) -> WindowForecast | None:
        feats = _features(series, config, model.field, index, cache)
        if feats is None:
            return None
        target = index + config.forecast_steps
        value = model.predict(feats)
        self.pending.setdefault((model.field, config.id, cell_id), {})[target] = (
            value,
            feats.last,
        )
        lower, upper = model.interval(value)
        return WindowForecast(model.field, config.id, cell_id, target, value, lower, upper)

    def metrics(self, field: str, config_id: str) -> dict[str, Any]:
        """Running metrics of a model and of persistence on the same points."""
        model = self.models[(field, config_id)]
        return {
            **model.metrics.get(),
            "baseline": model.baseline.get(),
            "learned": model.learned,
            "cold": model.cold,
        }


def _features(
    series: CellSeries,
    config: ModelConfig,
    output: str,
    anchor: int,
    cache: dict[tuple[Any, ...], Features | None],
) -> Features | None:
    """``features_at``, computed once per (inputs, lookback, output, anchor) in ``cache``
    (from the cached row of ``anchor - 1`` when there is one: see ``features_at``)."""
    key = (config.input_fields, config.lookback_steps, output, anchor)
    if key not in cache:
        previous = cache.get((config.input_fields, config.lookback_steps, output, anchor - 1))
        cache[key] = features_at(series, config, output, anchor, previous)
    return cache[key]


def replay(model: OnlineModel, config: ModelConfig, rows: Iterable[SupervisedRow]) -> list[float]:
    """Feed ``rows`` to ``model`` in the stream's order and return its predictions, row order.

    The stream closes windows by time, cells in order within a window: at window ``t`` of a
    cell it first scores and learns the row whose target is ``t`` (with the forecast made when
    its anchor window closed, or predicted now when the cell had none), then forecasts from
    ``t``. Replaying rows in that order gives the stream's model, predictions and metrics."""
    rows = list(rows)
    steps: list[tuple[int, str, int, int]] = []  # (time, cell, 0 learn | 1 predict, row)
    for i, row in enumerate(rows):
        steps.append((row.target, row.cell_id, 0, i))
        if row.anchor_exists:
            steps.append((row.anchor, row.cell_id, 1, i))
    steps.sort()
    predicted: dict[int, float] = {}
    for _, _, kind, i in steps:
        row = rows[i]
        feats = Features(row.anchor, row.x, row.last)
        if kind == 1:
            predicted[i] = model.predict(feats)
            continue
        if i not in predicted:
            predicted[i] = model.predict(feats)
        model.score(row.y, predicted[i], row.last)
        model.learn(feats, row.y)
    return [predicted[i] for i in range(len(rows))]
