"""The network domain's per-partition stream processor.

Every accepted measurement is added to its cell's open window, one book per window duration
used by the online configs (field means; a missing value is not counted). A window
``[s, s + d)`` closes when the partition's event-time watermark (the latest ``occurred_at``
seen) reaches ``s + d + allowed_lateness``; windows close oldest first and, within a window,
cell by cell in order, so the result does not depend on how events are batched. An event for a
window that already closed is *late*: it is not learnt (the stored observations still take
it, counted as a correction of the observation window of ``observation_window_seconds``).

On every close, each online model of that duration scores its forecast for the window, learns
it and forecasts ``forecast_steps`` windows ahead (:class:`~ml.network.online.OnlineForecaster`);
tree-based models skip a window whose output field was measured fewer than
``tree_min_measurements`` times in it (``NETWORK_TREE_MIN_MEASUREMENTS``, the count the book
keeps), leaving sparse cells to the linear models.
Outputs, all deterministic in the events:

* forecasts: ``ForecastRow(domain="network", series_key="<cell_id>|<field>",
  model_version="online:<config id>", period_start=<target window start>)``;
* scores: MAE, RMSE, MAPE and R² of each model over the points of the last
  ``score_window_seconds`` of event time (``NETWORK_SCORE_WINDOW_SECONDS``; at least one window
  of the model's duration; a point's time is the end of the window it forecast), a
  :class:`~ml.metrics.WindowedMetrics` per model (``scope`` = the output field, ``model_id`` =
  the config id, ``trigger="online"``), with the persistence forecast's score on the same
  points as ``baseline``, the count ``n`` and the sufficient statistics of both (``stats``:
  ``{"model": ..., "baseline": ..., "window_seconds": ...}``) so the readers merge the
  partitions' scores exactly (the stream adapter adds the ``partition``); written when a window
  closes, at most once per model every ``score_every_seconds`` of event time (``recorded_at`` =
  the window's end). A change late in a long stream is the whole score one window after it
  (the cumulative metrics, which size the forecast intervals, would dilute it).
* drift (:mod:`ml.network.drift`): per cell x output field, level / variance change of the
  window means and a rise of the monitored config's absolute error, each a ``DriftEvent``
  (scope ``<cell>|<field>``); per field, the share of active cells with a recent detection
  (scope ``*|<field>``, detector ``cell_share``) and, when it reaches ``cell_share``, one retrain
  request for the field (scope = the field, reason ``drift``) through the
  :class:`~ml.triggers.TriggerPolicy` (cooldown in event time). Ids come from the field, the
  window and the detector, so a replay yields the same events; the request's key is the start
  of the cooldown period it falls in, so partitions crossing in the same period send the same
  request id (the trainer takes it once). While the stream replays history (catch-up mode,
  ``CATCH_UP_LAG_SECONDS``) the policy holds the requests; the first event of a batch within
  the lag releases one per field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ml.drift import Detection
from ml.metrics import WindowedMetrics
from ml.network.configs import DEFAULT_CONFIGS, ModelConfig
from ml.network.drift import AGGREGATE_CELL, DEFAULT_CELL_SHARE, NetworkDrift, drift_scope
from ml.network.online import OnlineForecaster, OnlineModel, ScoredPoint, WindowForecast
from ml.periods import index_start
from ml.registry.entities import ForecastRow, ProcessorState
from ml.streaming import PartitionProcessor, ProcessorOutput
from ml.triggers import TriggerPolicy
from schemas.events import (
    BaseEvent,
    DriftEvent,
    NetworkMeasurementEvent,
    RetrainReason,
    deterministic_id,
)

__all__ = [
    "DEFAULT_SCORE_WINDOW_SECONDS",
    "DEFAULT_TREE_MIN_MEASUREMENTS",
    "DOMAIN",
    "NetworkProcessor",
    "SCORED_METRICS",
    "forecast_series_key",
    "online_model_version",
]

DOMAIN = "network"
#: Metrics written to the score history for every online model.
SCORED_METRICS = ("mae", "rmse", "mape", "r2")
#: NETWORK_SCORE_WINDOW_SECONDS default: event time behind a running score.
DEFAULT_SCORE_WINDOW_SECONDS = 3600.0
#: NETWORK_TREE_MIN_MEASUREMENTS default: tree-based online models skip a cell's window whose
#: output field was measured only once (see ``OnlineForecaster.close``).
DEFAULT_TREE_MIN_MEASUREMENTS = 2

#: (window index) -> cell -> field -> [sum, count]
_Book = dict[int, dict[str, dict[str, list[float]]]]


def forecast_series_key(cell_id: str, field: str) -> str:
    """``series_key`` of a cell's forecasts of ``field``."""
    return f"{cell_id}|{field}"


def online_model_version(config_id: str) -> str:
    """``model_version`` of the forecasts of an online config."""
    return f"online:{config_id}"


class NetworkProcessor(PartitionProcessor):
    """State of one partition of ``network.measurements``."""

    #: 2: drift detectors and the trigger policy joined the state; 3: online models pickle a
    #: regressor snapshot plus a journal of the rows learnt since (``OnlineModel``); 4: the
    #: windowed running scores (``recent``); 5: tree-based models skip sparse windows
    #: (``OnlineForecaster.tree_min``) and forests split with ``FastTEBSTSplitter``; 6: drift
    #: detectors pickle as flat tuples (``snapshot()``), linear models as their arrays (no
    #: journal). Version 5 states are read (their objects unpickle into this code's: the same
    #: values). Older states are not read (:class:`~ml.streaming.UnknownStateVersion`: the
    #: worker rebuilds the partition's models and drift statistics from the events after its
    #: stored offset).
    STATE_VERSION = 6
    #: versions :meth:`restore` reads
    READS_VERSIONS = frozenset({5, 6})

    def __init__(
        self,
        *,
        configs: Iterable[ModelConfig] = DEFAULT_CONFIGS,
        allowed_lateness: timedelta = timedelta(seconds=30),
        observation_window_seconds: int = 60,
        score_every_seconds: float = 300.0,
        score_window_seconds: float = DEFAULT_SCORE_WINDOW_SECONDS,
        drift: NetworkDrift | None = None,
        policy: TriggerPolicy | None = None,
        tree_min_measurements: int = DEFAULT_TREE_MIN_MEASUREMENTS,
    ) -> None:
        if allowed_lateness < timedelta(0):
            raise ValueError("allowed_lateness must be >= 0")
        if not score_window_seconds > 0:
            raise ValueError("score_window_seconds must be > 0")
        self.lateness = allowed_lateness.total_seconds()
        self.observation_window = int(observation_window_seconds)
        self.score_every = float(score_every_seconds)
        self.forecaster = OnlineForecaster(
            (c for c in configs if c.online), tree_min_measurements=tree_min_measurements
        )
        self.books: dict[int, _Book] = {d: {} for d in self.forecaster.durations}
        self.closed_through: dict[int, int] = {}
        self.watermark: float | None = None
        self.late_events = 0
        #: (field, config id) -> (event time in epoch seconds, points) of the last scores written
        self.scored_at: dict[tuple[str, str], tuple[float, int]] = {}
        self.score_window = float(score_window_seconds)
        #: (field, config id) -> windowed metrics of the model and of persistence
        self.recent: dict[tuple[str, str], tuple[WindowedMetrics, WindowedMetrics]] = {}
        self.drift = drift or NetworkDrift()
        self.policy = policy or TriggerPolicy(requested_by="network-drift")
        #: field -> (window duration, config id) whose windows and errors drift watches
        self.monitored: dict[str, tuple[int, str]] = _monitored(self.forecaster)

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        configs: Iterable[ModelConfig] = DEFAULT_CONFIGS,
        clock: Callable[[], datetime] | None = None,
    ) -> NetworkProcessor:
        """From a :class:`millrace.settings.Settings`-like object; settings the project does not
        define yet fall back to the defaults. ``clock``: the wall clock of catch-up mode."""
        return cls(
            configs=configs,
            allowed_lateness=timedelta(
                seconds=getattr(settings, "network_allowed_lateness_seconds", 30.0)
            ),
            observation_window_seconds=getattr(settings, "network_window_seconds", 60),
            score_every_seconds=getattr(settings, "network_score_every_seconds", 300.0),
            score_window_seconds=getattr(
                settings, "network_score_window_seconds", DEFAULT_SCORE_WINDOW_SECONDS
            ),
            drift=NetworkDrift(
                cell_share=getattr(settings, "network_drift_cell_share", DEFAULT_CELL_SHARE),
                recent_windows=getattr(settings, "network_drift_recent_windows", 10),
            ),
            policy=TriggerPolicy.from_settings(settings, clock=clock, requested_by="network-drift"),
            tree_min_measurements=getattr(
                settings, "network_tree_min_measurements", DEFAULT_TREE_MIN_MEASUREMENTS
            ),
        )

    # --- configs -----------------------------------------------------------------------------
    def update_configs(self, configs: Iterable[ModelConfig]) -> None:
        """Follow a new set of configs: new online configs start fresh models, removed ones are
        dropped, unchanged ones keep learning (a changed config restarts its models)."""
        wanted = {c.id: c for c in configs if c.online}
        old = self.forecaster
        new = OnlineForecaster(wanted.values(), tree_min_measurements=old.tree_min)
        kept = set()
        for key, model in old.models.items():
            if key in new.models and old.configs[key[1]] == wanted[key[1]]:
                new.models[key] = model
                kept.add(key)
        for (duration, cell), series in old.series.items():
            if duration in new.keep and new.keep[duration] <= (series.keep or 0):
                new.series[(duration, cell)] = series
        new.pending = {k: v for k, v in old.pending.items() if (k[0], k[1]) in kept}
        self.forecaster = new
        self.recent = {k: v for k, v in self.recent.items() if k in kept}
        self.books = {d: self.books.get(d, {}) for d in new.durations}
        self.closed_through = {d: i for d, i in self.closed_through.items() if d in new.keep}
        self.monitored = _monitored(new)

    @property
    def configs(self) -> list[ModelConfig]:
        return list(self.forecaster.configs.values())

    def model(self, field: str, config_id: str) -> OnlineModel:
        return self.forecaster.models[(field, config_id)]

    @classmethod
    def restore(cls, state: ProcessorState) -> PartitionProcessor:
        """As :meth:`PartitionProcessor.restore`, from any version in ``READS_VERSIONS`` (an
        older state this code can upgrade on unpickling); other versions raise
        :class:`~ml.streaming.UnknownStateVersion`."""
        if state.version in cls.READS_VERSIONS and state.version != cls.STATE_VERSION:
            state = ProcessorState(cls.STATE_VERSION, state.blob)
        return super().restore(state)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("score_window", DEFAULT_SCORE_WINDOW_SECONDS)
        self.__dict__.setdefault("recent", {})

    def statistics(self) -> dict[str, Any]:
        """Per output field, per online config: the cumulative running metrics of its model and
        of persistence on the same points, and ``recent``: the model's over the score window
        (what ``score_history`` samples every few minutes)."""
        out: dict[str, Any] = {}
        for field, config_id in sorted(self.forecaster.models):
            stats = self.forecaster.metrics(field, config_id)
            recent = self.recent.get((field, config_id))
            if recent is not None:
                stats["recent"] = {**recent[0].metrics().get(), "window_seconds": recent[0].window}
            out.setdefault(field, {})[config_id] = stats
        for field, (duration, config_id) in sorted(self.monitored.items()):
            stats = self.drift.statistics(field)
            out.setdefault(field, {})["drift"] = {
                **stats, "model_id": config_id, "window_seconds": duration,
            }  # fmt: skip
        return out

    # --- stream ------------------------------------------------------------------------------
    def process(self, events: Sequence[BaseEvent]) -> ProcessorOutput:
        out = ProcessorOutput()
        for event in events:
            assert isinstance(event, NetworkMeasurementEvent)
            self._add(event, out)
        self._close_ready(out)
        # drift requests held while replaying history go out once the stream has caught up
        for request in self.policy.release_caught_up(e.occurred_at for e in events):
            out.retrain_requests.append(request)
            self.policy.job_finished(DOMAIN, request.scope, request.occurred_at)
        return out

    def _add(self, event: NetworkMeasurementEvent, out: ProcessorOutput) -> None:
        at = event.occurred_at.timestamp()
        wm = self.watermark
        obs = self.observation_window
        if wm is not None and (int(at) // obs + 1) * obs + self.lateness <= wm:
            self.late_events += 1
            start = index_start(int(at) // obs, obs)
            out.corrections.append((DOMAIN, event.cell_id, start))
        values = event.measurements()
        for duration, book in self.books.items():
            index = int(at) // duration
            closed = self.closed_through.get(duration)
            if closed is not None and index <= closed:
                continue
            fields = book.setdefault(index, {}).setdefault(event.cell_id, {})
            for name, value in values.items():
                acc = fields.get(name)
                if acc is None:
                    fields[name] = [value, 1.0]
                else:
                    acc[0] += value
                    acc[1] += 1.0
        if wm is None or at > wm:
            self.watermark = at

    def _close_ready(self, out: ProcessorOutput) -> None:
        if self.watermark is None:
            return
        for duration, book in self.books.items():
            ready = sorted(i for i in book if (i + 1) * duration + self.lateness <= self.watermark)
            watched = {f: c for f, (d, c) in self.monitored.items() if d == duration}
            for index in ready:
                cells = book.pop(index)
                starts: dict[int, datetime] = {}  # target window -> its start (shared)
                for cell_id in sorted(cells):
                    sums = cells[cell_id]
                    means = {name: s / n for name, (s, n) in sums.items()}
                    counts = {name: n for name, (_, n) in sums.items()}
                    scored, forecasts = self.forecaster.close(
                        cell_id, duration, index, means, counts
                    )
                    if scored:
                        self._recent(scored, duration, (index + 1) * duration)
                    for p in forecasts:
                        start = starts.get(p.target)
                        if start is None:
                            start = starts[p.target] = index_start(p.target, duration)
                        out.forecasts.append(self._forecast_row(p, start))
                    if watched:
                        self._drift_cell(cell_id, duration, index, means, scored, watched, out)
                for field, config_id in watched.items():
                    self._drift_field(field, config_id, duration, index, out)
                self.closed_through[duration] = index
                self._scores(duration, (index + 1) * duration, out)
            # windows without any event close too: later events for them are late
            last = math.floor((self.watermark - self.lateness) / duration) - 1
            self.closed_through[duration] = max(self.closed_through.get(duration, last), last)

    # --- drift -------------------------------------------------------------------------------
    def _drift_cell(
        self, cell_id: str, duration: int, index: int, means: dict[str, float],
        scored: list[ScoredPoint], watched: dict[str, str], out: ProcessorOutput,
    ) -> None:  # fmt: skip
        """Feed one closed window of a cell to the detectors of every watched field."""
        errors = {
            p.field: abs(p.actual - p.predicted)
            for p in scored
            if watched.get(p.field) == p.config_id
        }
        for field, config_id in watched.items():
            value = means.get(field)
            if value is None and field not in errors:
                continue
            for d in self.drift.observe(cell_id, field, index, value, errors.get(field)):
                self._drift_event(drift_scope(cell_id, field), d, config_id, duration, index, out)

    def _drift_field(
        self, field: str, config_id: str, duration: int, index: int, out: ProcessorOutput
    ) -> None:
        """The window closed for every cell: the field's aggregate and its retrain request."""
        d = self.drift.close_window(field, index)
        if d is None:
            return
        event = self._drift_event(
            drift_scope(AGGREGATE_CELL, field), d, config_id, duration, index, out
        )
        at = event.occurred_at
        cooldown = self.policy.cooldown.total_seconds()
        end = at.timestamp()
        period = datetime.fromtimestamp(end - end % cooldown if cooldown else end, tz=UTC)
        request = self.policy.consider(
            domain=DOMAIN, scope=field, reason=RetrainReason.DRIFT, evidence=event.evidence,
            at=at, key=f"drift@{period.isoformat()}",
        )  # fmt: skip
        if request is not None:
            out.retrain_requests.append(request)
            # the stream never hears of the field's jobs: only the cooldown coalesces
            self.policy.job_finished(DOMAIN, field, at)

    def _drift_event(
        self, scope: str, d: Detection, config_id: str, duration: int, index: int,
        out: ProcessorOutput,
    ) -> DriftEvent:  # fmt: skip
        start = index_start(index, duration)
        event = DriftEvent(
            event_id=deterministic_id("drift", DOMAIN, scope, start, d.detector),
            occurred_at=index_start(index + 1, duration),
            domain=DOMAIN,
            scope=scope,
            detector=d.detector,
            statistic=d.statistic,
            value=d.value,
            threshold=d.threshold,
            model_version=online_model_version(config_id),
            evidence={**d.evidence, "window_start": start.isoformat(), "window_seconds": duration},
        )
        out.drift_events.append(event)
        return event

    def _forecast_row(self, point: WindowForecast, start: datetime) -> ForecastRow:
        """The row of a forecast of the window starting at ``start``."""
        return ForecastRow(
            DOMAIN,
            forecast_series_key(point.cell_id, point.field),
            online_model_version(point.config_id),
            start,
            point.value,
            point.lower,
            point.upper,
        )

    def _recent(self, scored: list[ScoredPoint], duration: int, at: float) -> None:
        """Add the points scored at the close of a window ending at ``at`` to the windowed
        metrics of their models."""
        for p in scored:
            key = (p.field, p.config_id)
            pair = self.recent.get(key)
            if pair is None:
                window = max(self.score_window, float(duration))
                pair = self.recent[key] = (WindowedMetrics(window), WindowedMetrics(window))
            pair[0].update(at, p.actual, p.predicted)
            pair[1].update(at, p.actual, p.baseline)

    def _scores(self, duration: int, end: float, out: ProcessorOutput) -> None:
        """Windowed scores of this duration's models, at most every ``score_every`` seconds."""
        recorded_at = datetime.fromtimestamp(end, tz=UTC)
        for key, model in self.forecaster.models.items():
            if self.forecaster.configs[key[1]].window_duration_seconds != duration:
                continue
            last_at, last_n = self.scored_at.get(key, (None, 0))
            pair = self.recent.get(key)
            if (
                pair is None
                or model.metrics.n == last_n
                or (last_at is not None and end - last_at < self.score_every)
            ):
                continue
            self.scored_at[key] = (end, model.metrics.n)
            recent, baseline = pair[0].metrics(end), pair[1].metrics(end)
            if recent.n == 0:
                continue
            stats = {
                "model": recent.stats(),
                "baseline": baseline.stats(),
                "window_seconds": pair[0].window,
            }
            name, config_id = key
            for metric in SCORED_METRICS:
                value = getattr(recent, metric)
                if value is None:
                    continue
                out.scores.append(
                    {
                        "domain": DOMAIN,
                        "scope": name,
                        "model_id": config_id,
                        "metric": metric,
                        "score": value,
                        "baseline": getattr(baseline, metric),
                        "trigger": "online",
                        "recorded_at": recorded_at,
                        "n": recent.n - recent.mape_excluded if metric == "mape" else recent.n,
                        "stats": stats,
                    }
                )


def _monitored(forecaster: OnlineForecaster) -> dict[str, tuple[int, str]]:
    """Per output field, the first online config forecasting it: (its duration, its id)."""
    out: dict[str, tuple[int, str]] = {}
    for config in forecaster.configs.values():
        for field in config.output_fields:
            out.setdefault(field, (config.window_duration_seconds, config.id))
    return out
