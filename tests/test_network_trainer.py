"""The trainer process runs the network domain on the real broker: model config commands,
evaluate / set_best / monitor answered by command id, and the per-field monitoring state machine
(degradation -> retraining every model of the field -> re-election; all jobs failing -> back to
MONITORING)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest

from millrace.importers.simulate import simulate_network
from millrace.kafka import EventProducer, ensure_topics
from ml.network.configs import DEFAULT_CONFIGS
from ml.network.domain import NetworkDomain
from ml.network.processor import NetworkProcessor
from ml.network.state import FieldState, MonitoringState
from ml.registry.entities import CommandResultRow
from ml.registry.network import SqlFieldStateRepository
from ml.registry.store import Store
from ml.training.runner import TrainingRunner
from schemas.events import ModelCommand
from tests.factories import fresh
from tests.fixtures.broker import read_json, settings_from, wait_for_progress

pytestmark = pytest.mark.integration

START = datetime(2024, 3, 1, tzinfo=UTC)
FIELD = "dl_bitrate"
LINEAR, FOREST, GBM = (f"{FIELD}-river_linear", f"{FIELD}-river_forest", f"{FIELD}-lightgbm")


class Network:
    """A trainer process on fresh topics and store, with helpers to command it."""

    def __init__(self, env, spawn, seed=None) -> None:
        self.env = env
        self.settings = settings_from(env)
        ensure_topics(self.settings)
        self.store = Store.from_url(env["DATABASE_URL"])
        if seed is not None:
            seed(self)
        self.registry = self.store.network
        self.states = SqlFieldStateRepository(self.store)
        self.producer = EventProducer(self.settings)
        self.proc = spawn(["trainer"], env)

    def send(self, command: str, scope: str, **fields) -> ModelCommand:
        cmd = ModelCommand(**fresh(), command=command, domain="network", scope=scope, **fields)
        self.publish(cmd)
        return cmd

    def publish(self, cmd: ModelCommand) -> None:
        self.producer.publish(self.settings.topic_model_commands, "network", cmd)
        self.producer.flush()

    def result(self, cmd: ModelCommand) -> CommandResultRow:
        """The trainer's answer to ``cmd``; fails when the trainer stops working first."""
        return wait_for_progress(
            lambda: self.registry.result(cmd.event_id), self.proc.progress, interval=0.05
        )

    def until(self, predicate: Callable[[], object]) -> object:
        """``predicate()`` once it holds; fails when the trainer stops working first."""
        return wait_for_progress(predicate, self.proc.progress)

    def ask(self, command: str, scope: str, **fields) -> CommandResultRow:
        return self.result(self.send(command, scope, **fields))

    def online_score(self, model_id: str, score: float, field: str = FIELD) -> None:
        """What the stream records for an online model (running rmse, trigger online)."""
        self.store.monitoring.add_score(
            domain="network",
            scope=field,
            model_id=model_id,
            metric="rmse",
            score=score,
            trigger="online",
            recorded_at=datetime.now(UTC),
        )

    def dead_letters(self, expect: int, timeout: float = 20) -> list[dict]:
        return read_json(
            self.settings.bootstrap_servers, self.settings.topic_dead_letter, 4, expect, timeout
        )


def seed_dl_bitrate(net: Network) -> None:
    """90 minutes of 4 simulated cells: stored windows, the stream's running scores of the
    online configs (the processor run in-process) and a live LightGBM version."""
    source = simulate_network(seed=1, start=START, seconds=90 * 60, cells=4)
    events = [r.event for r in source.records()]
    domain = NetworkDomain(60)
    net.store.stream.apply_observations([d for e in events for d in domain.observe(e)])
    processor = NetworkProcessor(configs=DEFAULT_CONFIGS, score_every_seconds=300)
    batches = [events[i : i + 500] for i in range(0, len(events), 500)]
    scores = [s for batch in batches for s in processor.process(batch).scores]
    net.store.stream.apply_observations([], scores=scores)
    runner = TrainingRunner(net.store, net.settings.model_dir, min_periods=12)
    outcome = runner.run(net.store.jobs.create_job("network", GBM, "manual"))
    assert outcome.promoted, outcome.reason


def wait_state(net: Network, field: str, predicate, stall: float = 60) -> list[MonitoringState]:
    """Poll the field's state until ``predicate(state)``; returns the states seen, in order.
    Fails when neither the state nor the trainer's work moves for ``stall`` seconds."""
    seen: list[MonitoringState] = []

    def done():
        state = net.states.get(field)
        if state is not None and (not seen or seen[-1] != state.state):
            seen.append(state.state)
        return state is not None and predicate(state)

    def progress() -> object:  # a new state, or the trainer working towards one
        return len(seen), net.proc.progress()

    wait_for_progress(done, progress, stall=stall, interval=0.02)
    return seen


def test_config_commands_are_applied_answered_and_bad_ones_dead_lettered(make_env, spawn) -> None:
    net = Network(make_env(), spawn)
    net.until(lambda: len(net.registry.live_configs()) == len(DEFAULT_CONFIGS))  # seeded
    config = {
        "id": "dl-linear-10m",
        "architecture": "river_linear",
        "input_fields": ["dl_bitrate", "rsrp"],
        "output_fields": ["dl_bitrate"],
        "window_duration_seconds": 600,
    }
    create = net.send("create_config", config["id"], config=config)
    again = net.send("create_config", config["id"], config=config)
    bad = net.send("create_config", "bad", config={**config, "id": "bad", "architecture": "svm"})
    row = net.result(create)
    assert (row.status, row.command, row.result["id"], row.result["online"]) == (
        "ok",
        "create_config",
        "dl-linear-10m",
        True,
    )
    assert net.registry.get_config("dl-linear-10m").config.window_duration_seconds == 600
    exists = net.result(again)
    assert (exists.status, exists.error) == ("error", "config dl-linear-10m exists")
    refused = net.result(bad)
    assert refused.status == "error" and "unknown architecture 'svm'" in refused.error
    assert net.registry.get_config("bad") is None
    [letter] = net.dead_letters(1)
    assert letter["reason"] == refused.error
    assert orjson.loads(letter["payload"])["event_id"] == bad.event_id

    delete = net.ask("delete_config", "dl-linear-10m")
    assert (delete.status, delete.result["id"], delete.result["deleted"]) == (
        "ok",
        "dl-linear-10m",
        True,
    )
    assert net.registry.get_config("dl-linear-10m").deleted_at is not None
    assert net.ask("delete_config", "nope").error == "unknown config nope"
    net.publish(create)  # a replayed command id does nothing: the config stays deleted
    marker = net.ask("evaluate", "snr")  # commands of one key are applied in order
    assert marker.error == "no models forecast the field 'snr'"
    assert net.registry.get_config("dl-linear-10m").deleted_at is not None
    assert net.ask("monitor", FIELD).error == f"no best model for {FIELD}"
    assert net.proc.alive()


def test_evaluate_then_degradation_retrains_every_model_and_reelects(make_env, spawn) -> None:
    net = Network(make_env(), spawn, seed=seed_dl_bitrate)
    election = net.ask("evaluate", FIELD, metric="rmse")
    assert election.status == "ok", election.error
    result = election.result
    assert set(result) >= {"best_model_id", "baseline", "scores", "failed", "metric"}
    assert set(result["scores"]) == {LINEAR, FOREST, GBM} and result["failed"] == {}
    assert result["baseline"] == min(result["scores"].values())
    assert result["scores"][result["best_model_id"]] == result["baseline"]

    wrong = net.ask("set_best", FIELD, version="rsrp-lightgbm")
    assert wrong.error == f"model 'rsrp-lightgbm' is not a model of the field '{FIELD}'"
    best = net.ask("set_best", FIELD, version=LINEAR).result
    baseline = result["scores"][LINEAR]
    assert (best["best_model_id"], best["baseline"]) == (LINEAR, baseline)
    checked = net.ask("monitor", FIELD).result
    assert (checked["model_id"], checked["score"], checked["degraded"]) == (LINEAR, baseline, False)
    before = net.states.get(FIELD)
    assert before.state == MonitoringState.MONITORING and before.best_model_id == LINEAR
    elected_at = before.elected_at

    # the stream's running error of the best model degrades past baseline x 1.5
    net.online_score(LINEAR, baseline * 10)
    seen = wait_state(net, FIELD, lambda s: s.state == "MONITORING" and s.elected_at > elected_at)
    assert MonitoringState.RETRAINING in seen, seen
    state = net.states.get(FIELD)
    assert state.best_model_id != LINEAR
    assert state.reason.startswith(f"elected {state.best_model_id}")
    assert state.lock_owner is None and state.jobs == ()
    jobs = net.store.jobs.list_jobs(domain="network", limit=10)
    retrained = [j for j in jobs if j.trigger == "degradation"]
    assert sorted(j.scope for j in retrained) == sorted([LINEAR, FOREST, GBM])
    assert all(j.status == "completed" for j in retrained)
    history = [r for r in net.states.scores(FIELD) if r.trigger != "online"]
    assert [r.trigger for r in history] == ["evaluate"] * 3 + ["monitor"] + ["evaluate"] * 3
    assert all(r.recorded_at >= max(j.finished_at for j in retrained) for r in history[-3:])
    assert history[-1].baseline == state.baseline

    # deleting the best model's config undoes the election (nothing left to monitor)
    gone = net.ask("delete_config", state.best_model_id).result
    assert gone["unelected_fields"] == [FIELD]
    assert net.states.get(FIELD).best_model_id is None
    assert net.ask("monitor", FIELD).error == f"no best model for {FIELD}"
    assert net.proc.alive()


def crashed_mid_retraining(net: Network) -> None:
    """dl_bitrate left RETRAINING by a trainer that died holding the lock (its job failed)."""
    net.store.jobs.create_job(
        "network", LINEAR, "degradation", job_id="crashed-job", status="failed"
    )
    SqlFieldStateRepository(net.store).save(
        FieldState(
            FIELD,
            MonitoringState.RETRAINING,
            best_model_id=LINEAR,
            baseline=1.0,
            jobs=("crashed-job",),
            lock_owner="trainer:gone:1",
            locked_at=datetime.now(UTC),
            next_check_at=datetime.now(UTC),
        )
    )
    net.online_score(LINEAR, 1.0)  # not degraded: the interval checks leave the field alone


def test_all_jobs_failing_returns_the_field_to_monitoring(make_env, spawn) -> None:
    # no observations at all; one field left mid-retraining by a crashed trainer
    net = Network(make_env(monitoring_interval_seconds="1"), spawn, seed=crashed_mid_retraining)
    resumed = wait_state(net, FIELD, lambda s: s.state == "MONITORING")
    assert resumed[-1] == MonitoringState.MONITORING
    state = net.states.get(FIELD)
    assert (state.lock_owner, state.reason) == (None, "all 1 retraining jobs failed")
    net.until(lambda: "cleared stale training locks of dl_bitrate" in net.proc.output())

    net.online_score("rsrp-river_linear", 5.0, field="rsrp")
    net.online_score("rsrp-river_forest", 6.0, field="rsrp")
    election = net.ask("evaluate", "rsrp").result
    assert (election["best_model_id"], election["baseline"]) == ("rsrp-river_linear", 5.0)
    assert "no live version of rsrp-lightgbm" in election["failed"]["rsrp-lightgbm"]

    net.online_score("rsrp-river_linear", 7.6, field="rsrp")  # > 5.0 x 1.5
    started = time.monotonic()
    back = "all 3 retraining jobs failed"
    seen = wait_state(net, "rsrp", lambda s: s.state == "MONITORING" and s.reason.startswith(back))
    assert MonitoringState.RETRAINING in seen, seen
    state = net.states.get("rsrp")
    assert (state.best_model_id, state.baseline) == ("rsrp-river_linear", 5.0)  # unchanged
    failed = [j for j in net.store.jobs.list_jobs(domain="network") if j.scope.startswith("rsrp-")]
    assert {j.scope for j in failed} == {"rsrp-river_linear", "rsrp-river_forest", "rsrp-lightgbm"}
    assert all(j.status == "failed" and "No network observations" in j.error for j in failed)
    # checked every second: the interval check re-scores the best model (auto_monitor)
    net.until(
        lambda: any(
            (r.trigger, r.score, r.baseline) == ("auto_monitor", 7.6, 5.0)
            for r in net.states.scores("rsrp", "rsrp-river_linear")
        )
    )
    print(f"degraded -> all jobs failed -> re-scored in {time.monotonic() - started:.1f} s")
    assert net.proc.alive()
