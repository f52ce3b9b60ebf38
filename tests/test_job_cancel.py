"""Cancelling training jobs without a broker: the store's cancel (queued ends at once, running
is marked), the runner's checkpoints (a running job ends ``cancelled`` with no version), and the
trainer taking a cancel while a job trains (other commands held until the job ends)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from millrace.metrics import TrainerMetrics
from millrace.probes import Heartbeat
from millrace.settings import Settings
from millrace.trainer import TrainerService
from ml.aggregates import FieldStats
from ml.observations import ObservationDelta
from ml.registry.store import Store
from ml.training.runner import TrainingRunner
from schemas.events import ModelCommand, ModelCommandType
from tests.toy_domain import MeanModel, ToyDomain, ToyTrainer, ZeroModel

AT = datetime(2026, 11, 22, 12, tzinfo=UTC)


class HookModel(ZeroModel):
    """A candidate whose fit calls ``hook`` (e.g. a cancel arriving mid-job)."""

    algorithm = "toy-hook"

    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def fit(self, train: pd.DataFrame) -> HookModel:
        self.hook()
        return self


class HookDomain(ToyDomain):
    hook: Any = staticmethod(lambda: None)

    def trainer(self, scope: str = "global", store: object | None = None) -> ToyTrainer:
        hook = self.hook

        class Trainer(ToyTrainer):
            def candidates(self) -> list:
                return [ZeroModel(), HookModel(hook), MeanModel()]

        return Trainer()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.from_url(f"sqlite:///{tmp_path / 'jobs.db'}")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    s.stream.apply_observations(
        [
            ObservationDelta(
                "toy", f"s{i}", start + timedelta(days=d), 1, {"value": FieldStats.of(float(d + i))}
            )  # fmt: skip
            for i in range(3)
            for d in range(10)
        ]
    )
    return s


def _runner(store: Store, tmp_path: Path, hook: Any) -> TrainingRunner:
    domain = HookDomain()
    domain.hook = hook
    return TrainingRunner(store, tmp_path / "models", domains={"toy": domain}, clock=lambda: AT)


def test_a_queued_job_is_cancelled_at_once_and_never_trains(store: Store, tmp_path) -> None:
    job = store.jobs.create_job("toy", "global", "manual")
    row = store.jobs.request_cancel(job.id, at=AT, requested_by="ops", reason="not now")
    assert row.status == "cancelled" and row.finished_at == AT
    assert row.reason == "cancelled by ops before it started: not now"
    trained = []
    outcome = _runner(store, tmp_path, lambda: trained.append(1)).run(job)
    assert outcome.status == "cancelled" and outcome.version is None and not trained
    assert store.models.list_versions(domain="toy") == []
    assert store.jobs.get_job(job.id).status == "cancelled"


def test_a_running_job_honours_the_cancel_at_its_next_checkpoint(store: Store, tmp_path) -> None:
    job = store.jobs.create_job("toy", "global", "manual")

    def cancel_mid_job() -> None:  # the job is running: the store only marks it
        row = store.jobs.request_cancel(job.id, at=AT, requested_by="ops", command_id="c-1")
        assert row.status == "running" and row.params["cancel"]["command_id"] == "c-1"

    outcome = _runner(store, tmp_path, cancel_mid_job).run(job)
    assert outcome.status == "cancelled" and outcome.decision is None
    row = store.jobs.get_job(job.id)
    assert (row.status, row.version, row.outcome) == ("cancelled", None, None)
    assert row.reason == "cancelled by ops before candidate toy-mean"
    assert store.models.list_versions(domain="toy") == []
    assert store.models.active_version("toy", "global") is None


def test_a_cancel_after_the_job_ended_changes_nothing(store: Store, tmp_path) -> None:
    job = store.jobs.create_job("toy", "global", "manual")
    outcome = _runner(store, tmp_path, lambda: None).run(job)
    assert outcome.status == "completed" and outcome.promoted
    row = store.jobs.request_cancel(job.id, at=AT)
    assert row.status == "completed" and "cancel" not in row.params
    with pytest.raises(KeyError):
        store.jobs.request_cancel("nope", at=AT)


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        self._t, self._p, self._o, self._v = topic, partition, offset, value

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def key(self) -> bytes:
        return b"toy"

    def value(self) -> bytes:
        return self._v

    def error(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)


class FakeConsumer:
    """Delivers ``messages`` once the job's first fit has started; records pauses/commits."""

    def __init__(self, settings: Settings, started: threading.Event, messages: list) -> None:
        from confluent_kafka import TopicPartition

        self.assigned = [TopicPartition(settings.topic_retrain_requests, 0),
                         TopicPartition(settings.topic_model_commands, 0),
                         TopicPartition(settings.topic_model_commands, 1)]  # fmt: skip
        self.started, self.messages = started, list(messages)
        self.paused: set[tuple[str, int]] = set()
        self.committed: list[tuple[str, int, int]] = []
        self.sought: list[tuple[str, int, int]] = []
        self.cancel_taken = threading.Event()

    def assignment(self) -> list:
        return list(self.assigned)

    def pause(self, parts: list) -> None:
        self.paused |= {(p.topic, p.partition) for p in parts}

    def resume(self, parts: list) -> None:
        self.paused -= {(p.topic, p.partition) for p in parts}

    def seek(self, part: Any) -> None:
        self.sought.append((part.topic, part.partition, part.offset))

    def poll(self, timeout: float) -> FakeMessage | None:
        if self.messages and self.started.wait(timeout):
            return self.messages.pop(0)
        return None

    def commit(self, message: FakeMessage, asynchronous: bool = False) -> None:
        self.committed.append((message.topic(), message.partition(), message.offset()))
        if b"cancel_job" in message.value():
            self.cancel_taken.set()


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def publish(self, topic: str, key: Any, event: Any) -> None:
        self.sent.append((topic, event))


def test_the_trainer_takes_a_cancel_while_a_job_trains(store: Store, tmp_path) -> None:
    settings = Settings(_env_file=None)
    job = store.jobs.create_job("toy", "global", "manual")
    started = threading.Event()
    cancel = ModelCommand(
        event_id="cancel-1", occurred_at=AT, command=ModelCommandType.CANCEL_JOB,
        domain="toy", job_id=job.id, requested_by="ops",
    )  # fmt: skip
    commands = settings.topic_model_commands
    consumer = FakeConsumer(
        settings,
        started,
        [
            FakeMessage(commands, 1, 7, b"not json"),  # held: handled after the job
            # a request partition assigned mid-job: held, then read again after the job
            FakeMessage(settings.topic_retrain_requests, 1, 4, b"{}"),
            FakeMessage(settings.topic_retrain_requests, 1, 5, b"{}"),
            FakeMessage(commands, 0, 3, cancel.model_dump_json().encode()),
        ],
    )

    def fit_waits_for_the_cancel() -> None:
        started.set()
        consumer.cancel_taken.wait()

    trainer = object.__new__(TrainerService)
    trainer.settings, trainer.store, trainer.consumer = settings, store, consumer
    trainer.producer, trainer.leader = FakeProducer(), False
    trainer.metrics, trainer.heartbeat = TrainerMetrics(), Heartbeat()
    trainer.runner = _runner(store, tmp_path, fit_waits_for_the_cancel)
    paused_while_training: list[set] = []
    original = trainer._during_job

    def during_job(*args: Any) -> None:
        original(*args)
        paused_while_training.append(set(consumer.paused))

    trainer._during_job = during_job
    outcome = trainer._train_polling(job, threading.Event())
    assert outcome.status == "cancelled" and store.jobs.get_job(job.id).status == "cancelled"
    assert store.models.list_versions(domain="toy") == []
    # the request partition and the held command's partition stayed paused during the job
    assert paused_while_training[0] >= {(settings.topic_retrain_requests, 0), (commands, 1)}
    assert (commands, 0) not in paused_while_training[-1]
    # the cancel was committed during the job, the held message after it (dead-lettered)
    assert consumer.committed == [(commands, 0, 3), (commands, 1, 7)]
    assert [t for t, _ in trainer.producer.sent] == [settings.topic_dead_letter]
    assert consumer.sought == [(settings.topic_retrain_requests, 1, 4)]
    assert consumer.paused == set()
