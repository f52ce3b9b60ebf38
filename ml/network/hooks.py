"""The network domain's trainer hooks: model commands, the field monitor's loop, its scorer.

* :class:`StoreScorer` scores a field's models from the store: an online config by its recent
  running score from the stream (``score_history``, trigger ``online``: the latest score of
  every partition within ``NETWORK_SCORE_WINDOW_SECONDS``, merged weighted by count,
  :meth:`~ml.registry.stores.monitoring.MonitoringStore.recent_online_score`), a batch config by
  re-scoring its live version (scope = config id) on the current test window.
* :class:`RetrainJobs` retrains a model by a retrain request (domain ``network``, scope = config
  id) through the process's :class:`~ml.domains.base.RetrainGateway`; the trainer's intake makes
  it a job (or coalesces it into the scope's job), so a job's id is the request id.
* :class:`NetworkCommands` applies the network commands of ``ml.model-commands``
  (``create_config``, ``delete_config``, ``evaluate``, ``set_best``, ``monitor``) and records
  each result by command id, so the API can answer with it and a replay does nothing.
* :class:`FieldLoop` is what the trainer does between two polls: interval checks of every field
  that has configs, the stream's online score of each best model, the jobs of retraining fields.
* :class:`NetworkTrainerHooks` bundles them as the domain's
  :class:`~ml.domains.base.TrainerHooks`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ml.domains.base import RetrainGateway, TrainerContext, TrainerHooks
from ml.metrics import score as batch_score
from ml.network.configs import ConfigError, ModelConfig, configs_for_field, parse_config
from ml.network.monitoring import FieldMonitor, JobGateway, LiveVersion, StalenessCheck
from ml.network.performance import (
    EvaluationError,
    ModelScorer,
    NoBestModel,
    NotElected,
    PerformanceTracker,
    UnknownField,
    UnknownModel,
)
from ml.network.state import DOMAIN, MonitoringState
from ml.network.training import NetworkTrainer
from ml.registry.entities import OnlineScore
from ml.registry.network import SqlFieldStateRepository
from ml.registry.stores.network import NetworkStore
from ml.training.versioning import load_model
from ml.triggers import retrain_request
from schemas.events import ModelCommand, ModelCommandType, RetrainReason, RetrainRequest

__all__ = [
    "NETWORK_COMMANDS",
    "CommandRejected",
    "FieldLoop",
    "NetworkCommands",
    "NetworkTrainerHooks",
    "RetrainJobs",
    "StoreScorer",
    "monitored_fields",
]

log = logging.getLogger("millrace.fields")  # the name operators grep for

#: Commands of ``ml.model-commands`` applied by :class:`NetworkCommands`.
NETWORK_COMMANDS = frozenset(
    {
        ModelCommandType.CREATE_CONFIG,
        ModelCommandType.DELETE_CONFIG,
        ModelCommandType.EVALUATE,
        ModelCommandType.SET_BEST,
        ModelCommandType.MONITOR,
    }
)


# --- fields ------------------------------------------------------------------------------------
def monitored_fields(configs: list[ModelConfig]) -> list[str]:
    """The output fields of ``configs`` (every field that has models), sorted."""
    return sorted({name for config in configs for name in config.output_fields})


# --- scorer --------------------------------------------------------------------------------------
class StoreScorer(ModelScorer):
    """The models of a field are the live configs forecasting it; scores come from the store."""

    def __init__(
        self,
        store: Any,
        registry: NetworkStore | None = None,
        base_window_seconds: int = 60,
        score_window: timedelta | None = None,
    ) -> None:
        self.store = store
        self.registry = registry or store.network
        self.base_window_seconds = base_window_seconds
        #: partitions whose latest running score is older than this (before the newest) are
        #: left out of the merged online score (None: every partition's latest)
        self.score_window = score_window

    def recent(self, field: str, model_id: str, metric: str) -> OnlineScore | None:
        """The stream's recent running score of an online model, merged over partitions."""
        return self.store.monitoring.recent_online_score(
            DOMAIN, field, model_id, metric, self.score_window
        )

    def models(self, field: str) -> list[str]:
        return [c.id for c in configs_for_field(self.registry.live_configs(), field)]

    def config(self, field: str, model_id: str) -> ModelConfig:
        row = self.registry.get_config(model_id)
        if row is None or row.deleted_at is not None or field not in row.config.output_fields:
            raise UnknownModel(f"model {model_id!r} is not a model of the field {field!r}")
        return row.config

    def score(self, field: str, model_id: str, metric: str) -> float:
        config = self.config(field, model_id)
        if config.online:
            latest = self.recent(field, model_id, metric)
            if latest is None:
                raise LookupError(f"no online score yet for {model_id} ({field}, {metric})")
            return latest.score
        return self._batch_score(config, field, metric)

    def _batch_score(self, config: ModelConfig, field: str, metric: str) -> float:
        """The live version of the config re-scored on the current test window."""
        version = self.store.models.active_version(DOMAIN, config.id)
        if version is None:
            raise LookupError(f"no live version of {config.id} yet (retrain it first)")
        model = load_model(self.store, DOMAIN, config.id, version)
        trained_for = getattr(model, "field", field)
        if trained_for != field:
            raise LookupError(f"the live version {version} of {config.id} forecasts {trained_for}")
        trainer = NetworkTrainer(config, field, base_window_seconds=self.base_window_seconds)
        data = trainer.training_set(self.store, None, None, 0)
        value = batch_score(data.y_test, model.predict(data.test), scale=data.scale).get(metric)
        if value is None:
            raise ValueError(f"{metric} is undefined on the test window of {config.id}")
        return float(value)


# --- jobs ----------------------------------------------------------------------------------------
class RetrainJobs(JobGateway):
    """The field monitor's jobs: retrain requests through the process's gateway."""

    def __init__(self, gateway: RetrainGateway) -> None:
        self.gateway = gateway

    def submit(
        self, field: str, model_id: str, reason: str, at: datetime, trigger: str = "degradation"
    ) -> str:
        request = retrain_request(
            domain=DOMAIN,
            scope=model_id,
            reason=RetrainReason(trigger),
            at=at,
            key=f"{field}@{at.isoformat()}",
            requested_by=f"monitor:{field}",
            evidence={"field": field, "model_id": model_id, "reason": reason},
            id_parts=("field-retrain", field, model_id, at.isoformat()),
        )
        return self.gateway.submit(request)

    def status(self, job_id: str) -> str:
        return self.gateway.status(job_id)


# --- commands ------------------------------------------------------------------------------------
class CommandRejected(ValueError):
    """The command itself is invalid (dead-lettered with this reason once its error is stored)."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class NetworkCommands:
    """Applies the network commands; every outcome is stored by command id."""

    def __init__(self, registry: NetworkStore, monitor: FieldMonitor) -> None:
        self.registry = registry
        self.monitor = monitor
        self.tracker: PerformanceTracker = monitor.tracker

    @staticmethod
    def handles(cmd: ModelCommand) -> bool:
        return cmd.command in NETWORK_COMMANDS

    def apply(self, cmd: ModelCommand) -> bool:
        """Apply ``cmd`` and store its result; False when it was applied before (a replay).
        Raises :class:`CommandRejected` (after storing the error) for an invalid command."""
        if self.registry.result(cmd.event_id) is not None:
            return False
        result: dict[str, Any] | None = None
        error: str | None = None
        rejected = False
        try:
            if cmd.domain != DOMAIN:
                raise CommandRejected(f"{cmd.command} is a {DOMAIN} command, not {cmd.domain}")
            result = getattr(self, f"_{cmd.command}")(cmd)
        except (CommandRejected, ConfigError) as exc:
            error, rejected = str(exc), True
        except (LookupError, EvaluationError, NoBestModel, ValueError) as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - answered, the trainer goes on
            error = f"{type(exc).__name__}: {exc}"
        self.registry.record_result(
            cmd.event_id, str(cmd.command), cmd.domain, cmd.scope, result=result, error=error
        )
        log.info("command %s %s/%s: %s", cmd.command, cmd.domain, cmd.scope, error or "ok")
        if rejected:
            raise CommandRejected(error)
        return True

    def _create_config(self, cmd: ModelCommand) -> dict[str, Any]:
        if cmd.config is None:
            raise CommandRejected("create_config needs a config")
        config = parse_config(cmd.config)
        if not self.registry.put_config(config, command_id=cmd.event_id):
            raise ValueError(f"config {config.id} exists")
        return {"id": config.id, "config": config.model_dump(mode="json"), "online": config.online}

    def _delete_config(self, cmd: ModelCommand) -> dict[str, Any]:
        """Delete a config; fields whose best model it was lose their election (their next
        ``evaluate`` elects another), so the monitor never re-scores a deleted model."""
        if not self.registry.delete_config(cmd.scope):
            raise LookupError(f"unknown config {cmd.scope}")
        unelected = []
        for state in self.tracker.repository.all():
            if state.best_model_id == cmd.scope:
                unelected.append(state.field)
                why = f"best model {cmd.scope} deleted: evaluate to elect another"
                self.tracker.repository.save(
                    replace(state, best_model_id=None, baseline=None, reason=why)
                )
        return {"id": cmd.scope, "deleted": True, "unelected_fields": unelected}

    def _evaluate(self, cmd: ModelCommand) -> dict[str, Any]:
        election = self.tracker.evaluate(cmd.scope, cmd.metric or "rmse")
        return {
            "field": election.field,
            "metric": election.metric,
            "best_model_id": election.best_model_id,
            "baseline": election.baseline,
            "scores": election.scores,
            "failed": election.failed,
            "elected_at": _iso(election.elected_at),
        }

    def _set_best(self, cmd: ModelCommand) -> dict[str, Any]:
        if not cmd.version:
            raise CommandRejected("set_best needs the model id in version")
        state = self.tracker.set_best(cmd.scope, cmd.version)
        return {
            "field": state.field,
            "metric": state.metric,
            "best_model_id": state.best_model_id,
            "baseline": state.baseline,
            "elected_at": _iso(state.elected_at),
        }

    def _monitor(self, cmd: ModelCommand) -> dict[str, Any]:
        try:
            self.tracker.best(cmd.scope)
        except NotElected:
            raise NoBestModel(f"no best model for {cmd.scope}") from None
        result = self.tracker.monitor(cmd.scope, trigger="monitor")
        return {
            "field": result.field,
            "model_id": result.model_id,
            "metric": result.metric,
            "score": result.score,
            "baseline": result.baseline,
            "degraded": self.monitor.degraded(result.score, result.baseline, result.metric),
            "recorded_at": _iso(result.recorded_at),
        }


# --- the loop ------------------------------------------------------------------------------------
class FieldLoop:
    """The field monitor's share of the trainer's poll loop (short steps, never blocking)."""

    def __init__(
        self,
        monitor: FieldMonitor,
        registry: NetworkStore,
        store: Any,
        *,
        tick_seconds: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        staleness: StalenessCheck | None = None,
        online_score: Callable[[str, str, str], OnlineScore | None] | None = None,
    ) -> None:
        self.monitor = monitor
        self.staleness = staleness
        #: (field, model id, metric) -> the stream's recent score (default: every partition's
        #: latest, merged)
        self.online_score = online_score or (
            lambda f, m, metric: store.monitoring.recent_online_score(DOMAIN, f, m, metric)
        )
        self.registry = registry
        self.store = store
        self.tick_seconds = tick_seconds
        self.monotonic = monotonic
        self._last_tick: float | None = None
        #: (field, model id, metric) -> id of the last online score handed to the monitor
        self._seen: dict[tuple[str, str, str], int] = {}

    def start(self) -> list[str]:
        """Clear stale locks and resume interrupted fields (see :meth:`FieldMonitor.start`)."""
        self._last_tick = None
        cleared = self.monitor.start()
        if cleared:
            log.info("cleared stale training locks of %s", ", ".join(cleared))
        return cleared

    def tick(self) -> None:
        """At most every ``tick_seconds``: check the fields due, follow the stream's online
        score of each best model, and advance retraining fields whose jobs all ended."""
        now = self.monotonic()
        if self._last_tick is not None and now - self._last_tick < self.tick_seconds:
            return
        self._last_tick = now
        try:
            configs = self.registry.live_configs()
            for field in monitored_fields(configs):
                self._step(field, configs)
            self.monitor.poll()
            for request in self.staleness.run() if self.staleness else ():
                log.info("model %s is stale: %s", request.scope, request.evidence)
        except Exception:  # noqa: BLE001 - the monitor must never stop the trainer
            log.exception("field monitor step failed")

    def job_finished(self, request_ids: list[str]) -> None:
        """A network job ended: advance the field waiting for it (by its request ids)."""
        try:
            for request_id in request_ids:
                self.monitor.job_finished(request_id)
            self.monitor.poll()
        except Exception:  # noqa: BLE001
            log.exception("field monitor update after a job failed")

    def _step(self, field: str, configs: list[ModelConfig]) -> None:
        try:
            if self.monitor.check_due([field]):
                log.info("field %s retraining: %s", field, self.monitor.status(field).reason)
                return
            self._online(field, {c.id: c for c in configs})
        except UnknownField:  # its last config was deleted meanwhile
            return

    def _online(self, field: str, configs: dict[str, ModelConfig]) -> None:
        state = self.monitor.tracker.state(field)
        model_id = state.best_model_id
        if state.state != MonitoringState.MONITORING or model_id is None:
            return
        config = configs.get(model_id)
        if config is None or not config.online:
            return
        latest = self.online_score(field, model_id, state.metric)
        key = (field, model_id, state.metric)
        if latest is None or self._seen.get(key) == latest.id:
            return
        self._seen[key] = latest.id
        if self.monitor.on_online_score(field, model_id, state.metric, latest.score):
            log.info("field %s retraining: %s", field, self.monitor.status(field).reason)


def _live_versions(store: Any, registry: NetworkStore) -> list[LiveVersion]:
    """The live version of every live config, with its training time."""
    out = []
    for config in registry.live_configs():
        live = store.models.live_activation(DOMAIN, config.id)
        row = store.models.get_version(DOMAIN, config.id, live.version) if live else None
        if row is not None:
            out.append(LiveVersion(config.id, row.version, row.trained_at))
    return out


# --- the domain's trainer hooks ------------------------------------------------------------------
class NetworkTrainerHooks(TrainerHooks):
    """The network commands and the field monitor, as the trainer's hooks of the domain."""

    def __init__(self, context: TrainerContext, base_window_seconds: int = 60) -> None:
        store = context.store  # the registry Store (this package never imports it)
        self.registry = store.network
        window = getattr(context.settings, "network_score_window_seconds", None)
        scorer = StoreScorer(
            store, self.registry, base_window_seconds,
            timedelta(seconds=window) if window else None,
        )  # fmt: skip
        tracker = PerformanceTracker(SqlFieldStateRepository(store), scorer)
        jobs = RetrainJobs(context.retrain)
        self.monitor = FieldMonitor.from_settings(context.settings, tracker, jobs, context.owner)
        self.commands = NetworkCommands(self.registry, self.monitor)
        staleness = StalenessCheck(
            DOMAIN,
            timedelta(days=getattr(context.settings, "max_model_age_days", 90.0)),
            lambda: _live_versions(store, self.registry),
            context.retrain.submit,
            self.monitor.clock,
            interval=self.monitor.interval,
        )
        self.fields = FieldLoop(
            self.monitor, self.registry, store, staleness=staleness, online_score=scorer.recent
        )

    def handles(self, cmd: ModelCommand) -> bool:
        return self.commands.handles(cmd)

    def apply(self, cmd: ModelCommand) -> None:
        self.commands.apply(cmd)

    def start(self) -> None:
        self.fields.start()

    def tick(self) -> None:
        self.fields.tick()

    def job_finished(self, request_ids: list[str]) -> None:
        self.fields.job_finished(request_ids)

    def take(self, request: RetrainRequest) -> bool:
        """The stream's drift request for a field (reason ``drift``, scope = an output field):
        the field retrains every model (:meth:`FieldMonitor.retrain`, RETRAINING, then
        EVALUATING as the jobs end). Recorded by request id, so a replay does nothing; a field
        already retraining ignores it. Other requests become ordinary jobs."""
        if request.domain != DOMAIN or request.reason != RetrainReason.DRIFT:
            return False
        if request.scope not in monitored_fields(self.registry.live_configs()):
            return False
        if self.registry.result(request.event_id) is not None:
            return True
        evidence = request.evidence
        why = (
            f"drift: {evidence.get('detecting_cells')} of {evidence.get('active_cells')} active "
            f"cells changed (share {evidence.get('value', evidence.get('share', '?'))})"
        )
        started = self.monitor.retrain(request.scope, why, trigger=RetrainReason.DRIFT)
        status = self.monitor.status(request.scope)
        self.registry.record_result(
            request.event_id, "drift_retrain", DOMAIN, request.scope,
            result={"field": request.scope, "retraining": started, "state": str(status.state),
                    "jobs": list(status.active_jobs), "reason": status.reason},
        )  # fmt: skip
        log.info("field %s drift request %s: %s", request.scope, request.event_id,
                 "retraining" if started else f"not started ({status.state})")  # fmt: skip
        return True
