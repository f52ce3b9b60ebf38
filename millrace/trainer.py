"""The trainer process: consumes retrain requests and model commands (confluent-kafka).

- A retrain request becomes a job, or joins the scope's job when one is queued or running, or
  when the latest job finished after the request was published (that job already covers it). Job
  ids are the first request's deterministic id, so a replayed request never runs work twice.
- While a job trains (in a thread), the consumer keeps polling with the request partitions
  paused, so it never misses a heartbeat or the poll interval; the request's offset is committed
  only once the job's outcome is stored. A ``cancel_job`` command arriving meanwhile is applied
  at once (the job stops at its next checkpoint, storing no version); any other command is held
  (its partition paused) and handled after the job.
- At start, jobs left queued or running by a crashed trainer are run again (recovery).
- An ``activate`` / ``rollback`` command records an activation (idempotent by command id).
- Every new active version is announced on the model-updated topic.
- Invalid messages go to the dead-letter topic with their reason.
- A request a domain's hooks take (``TrainerHooks.take``) is theirs, not a job.
- Every registered domain's process hooks (:class:`ml.domains.base.TrainerHooks`, called through
  :class:`millrace.domain_hooks.DomainHooks`; this module never names a domain): its start-up
  seeding before consuming; the model commands it handles (results stored by the domain, by
  command id); its start and periodic tick in the poll loop of the trainer that owns partition 0
  of the model-commands topic (one per consumer group; start once per leadership); and the end
  of its jobs (leader only), e.g. a domain's per-field model monitor.
- Metrics and probes (:mod:`millrace.metrics`, :mod:`millrace.probes`): requests received,
  dead letters, finished jobs and their wall time, running jobs, the consumer lag of its
  partitions and the age of every live version (read from the store every
  ``LIVE_AGES_SECONDS``); every poll marks the heartbeat.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, Message, TopicPartition
from pydantic import ValidationError

from millrace.domain_hooks import DomainHooks, RequestGateway
from millrace.kafka import EventProducer, encode_event, ensure_topics
from millrace.metrics import TrainerMetrics, consumer_lag
from millrace.probes import Heartbeat
from millrace.settings import Settings
from millrace.shutdown import connect_store, stop_on_store_error
from ml.domains import configured_domains, get_domain
from ml.domains.base import TrainerContext
from ml.registry.entities import TrainingJobRow
from ml.registry.errors import Backoff, is_transient
from ml.registry.store import Store
from ml.training.runner import JobOutcome, TrainingRunner
from schemas.events import (
    DeadLetterRecord,
    ModelCommand,
    ModelCommandType,
    ModelUpdatedEvent,
    RetrainRequest,
    deterministic_id,
)

__all__ = ["TrainerService"]

log = logging.getLogger("millrace.trainer")

R = TypeVar("R")

#: how often the trainer reads the live versions' training times and its partitions' lag
LIVE_AGES_SECONDS = 10.0


class TrainerService:
    """One trainer process; scale by partitions of the request topics."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        metrics: TrainerMetrics | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or TrainerMetrics()
        self.heartbeat = heartbeat or Heartbeat()
        #: the partitions assigned now
        self._partitions: set[tuple[str, int]] = set()
        self._gauges_at = -1e9
        self.store = store or connect_store(settings, log)
        #: every registered domain as the settings configure it, as in the stream worker
        self.domain_set = configured_domains(settings)
        self.runner = TrainingRunner(
            self.store,
            settings.model_dir,
            min_periods=settings.min_training_months,
            artifacts_in_db=settings.artifacts_in_database,
            domains=self.domain_set,
        )
        self.producer = EventProducer(settings)
        session_ms = int(settings.broker_session_timeout_seconds * 1000)
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": settings.trainer_group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": session_ms,
                "heartbeat.interval.ms": max(100, session_ms // 3),
                "max.poll.interval.ms": max(session_ms, 60_000),
            }
        )
        owner = f"trainer:{socket.gethostname()}:{os.getpid()}"
        gateway = RequestGateway(self.store, self.producer, settings)
        self.domains = DomainHooks(
            TrainerContext(settings, self.store, gateway, owner), list(self.domain_set.values())
        )
        #: whether this trainer owns partition 0 of the commands topic (runs the domains' ticks)
        self.leader = False
        self._lead_started = False

    # --- lifecycle -------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        ensure_topics(self.settings)
        self.domains.seed(self.store)
        self.recover(stop)
        topics = [self.settings.topic_retrain_requests, self.settings.topic_model_commands]
        self.consumer.subscribe(topics, on_assign=self._assigned, on_revoke=self._revoked)
        log.info("trainer consuming %s", ", ".join(topics))
        try:
            while not stop.is_set():
                msg = self._poll(0.5)
                self._stored("the domains' tick", self._monitor_step, stop)
                self._update_gauges()
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer error: %s", msg.error())
                    continue
                job = self._stored("taking a message", lambda: self.handle(msg), stop)  # noqa: B023
                if job is not None and not self._run_while_polling(job, stop):
                    break  # stopping mid-job: not committed, the job is recovered at start
                self.consumer.commit(message=msg, asynchronous=False)
        except _Stopping:
            log.info("stopping while the store is unreachable: nothing committed past it")
        finally:
            self.producer.flush(min(5.0, self.settings.shutdown_timeout_seconds / 2))
            self.consumer.close()

    def _stored(self, what: str, fn: Callable[[], R], stop: threading.Event) -> R:
        """``fn()`` against the store, retried while the store is unreachable; meanwhile the
        partitions are paused and polled (membership kept) and no offset is committed. An
        error a retry cannot cure stops the process; a stop request ends the wait."""
        delays = Backoff(
            self.settings.store_retry_initial_seconds, self.settings.store_retry_max_seconds
        )
        paused: list[TopicPartition] = []
        try:
            while True:
                try:
                    return fn()
                except Exception as exc:  # noqa: BLE001 - sorted just below
                    if not is_transient(exc):
                        stop_on_store_error(log, what, exc)
                    if not paused:
                        paused = self.consumer.assignment()
                        self.consumer.pause(paused)
                    delay = delays.next()
                    log.warning(
                        "store unavailable during %s (%s); retry %d in %.1f s",
                        what,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                        delays.attempts,
                        delay,
                    )
                    until = time.monotonic() + delay
                    while time.monotonic() < until:
                        if stop.is_set():
                            raise _Stopping from exc
                        self._poll(0.2)  # paused: keeps the membership, returns nothing
        finally:
            if paused:
                self.consumer.resume(paused)

    def _poll(self, timeout: float) -> Message | None:
        """One poll of the consumer, marked on the heartbeat."""
        msg = self.consumer.poll(timeout)
        self.heartbeat.polled()
        return msg

    def _update_gauges(self) -> None:
        """Every ``LIVE_AGES_SECONDS``: the live versions' training times and the lag of the
        assigned partitions (cached end offsets: no broker round trip). Failures are logged
        and the previous values kept."""
        now = time.monotonic()
        if now - self._gauges_at < LIVE_AGES_SECONDS:
            return
        self._gauges_at = now
        try:
            self.metrics.live_ages.update(self.store.models.live_trained_at())
        except Exception as exc:  # noqa: BLE001 - a gauge never stops the trainer
            log.warning("live versions not read for the metrics: %s", exc)
        try:
            tps = [TopicPartition(t, p) for t, p in sorted(self._partitions)]
            ends = {
                (tp.topic, tp.partition): self.consumer.get_watermark_offsets(tp, cached=True)[1]
                for tp in tps
            }
            done = {
                (tp.topic, tp.partition): tp.offset - 1 if tp.offset >= 0 else None
                for tp in self.consumer.committed(tps, timeout=2.0)
            } if tps else {}  # fmt: skip
            self.metrics.set_lag(consumer_lag(ends, done))
        except Exception as exc:  # noqa: BLE001 - a gauge never stops the trainer
            log.warning("consumer lag not read for the metrics: %s", exc)

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._partitions = {(tp.topic, tp.partition) for tp in partitions}
        self.heartbeat.assigned(len(self._partitions))
        lead = any(
            tp.topic == self.settings.topic_model_commands and tp.partition == 0
            for tp in partitions
        )
        if lead != self.leader:
            log.info("domain ticks %s", "taken over" if lead else "left to another trainer")
        self.leader = lead
        self._lead_started = self._lead_started and lead

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._partitions -= {(tp.topic, tp.partition) for tp in partitions}
        self.heartbeat.assigned(len(self._partitions))
        if any(
            tp.topic == self.settings.topic_model_commands and tp.partition == 0
            for tp in partitions
        ):
            self.leader = self._lead_started = False

    def _monitor_step(self) -> None:
        """The domains' turn (leader only): start once per leadership, then tick."""
        if not self.leader:
            return
        if not self._lead_started:
            self._lead_started = True
            self.domains.start()  # a failure is logged; retried at the next leadership
        self.domains.tick()

    def recover(self, stop: threading.Event) -> None:
        """Run again the jobs a crashed trainer left queued or running."""
        for status in ("running", "queued"):
            for job in reversed(self.store.jobs.list_jobs(status=status, limit=1000)):
                if stop.is_set():
                    return
                log.info("recovering job %s (%s)", job.id, status)
                self.store.jobs.update_job(
                    job.id, status="queued", error=f"recovered from {status}"
                )
                self._finish(self._run(job), job)

    # --- messages ----------------------------------------------------------------------------
    def handle(self, msg: Message) -> TrainingJobRow | None:
        """Store what a message asks for; return a job that must run now."""
        try:
            if msg.topic() == self.settings.topic_retrain_requests:
                request = RetrainRequest.model_validate_json(msg.value() or b"")
                self.metrics.retrain_requests.labels(request.domain, str(request.reason)).inc()
                return self.intake(request, published_at=_published_at(msg))
            self.command(ModelCommand.model_validate_json(msg.value() or b""))
        except ValidationError as exc:
            self._dead_letter(msg, f"schema_violation: {exc.errors(include_url=False)}")
        except (KeyError, ValueError) as exc:
            self._dead_letter(msg, str(exc))
        return None

    def intake(
        self, request: RetrainRequest, published_at: datetime | None = None
    ) -> TrainingJobRow | None:
        """Create the job for a request, or coalesce it into the scope's job: the one queued or
        running, or the latest one if it finished after the request was published (wall
        clock: a request's ``occurred_at`` is event time, which may be long past)."""
        published_at = published_at or datetime.now(UTC)
        if self.store.jobs.get_job(request.event_id) is not None:
            return None  # replay of a request that created a job
        if self.domains.take(request):
            return None  # the domain handles it (e.g. a field's drift retrains its models)
        domain = self.domain_set.get(request.domain) or get_domain(request.domain)
        scope = domain.model_scope(request.scope)
        for job in self.store.jobs.list_jobs(domain=request.domain, scope=scope, limit=1):
            covered = job.finished_at is None or published_at <= job.finished_at
            if covered:
                if request.event_id not in job.request_ids:
                    self.store.jobs.update_job(
                        job.id, request_ids=[*job.request_ids, request.event_id]
                    )
                return None
        return self.store.jobs.create_job(
            request.domain,
            scope,
            str(request.reason),
            job_id=request.event_id,
            request_ids=[request.event_id],
            start_date=request.start_date,
            end_date=request.end_date,
            params={"requested_by": request.requested_by, "evidence": request.evidence},
        )

    def command(self, cmd: ModelCommand) -> None:
        """Apply a command (idempotent by its event id): activate / rollback here, any other
        through the hooks of the domain handling it."""
        if cmd.command == ModelCommandType.CANCEL_JOB:
            self.cancel(cmd)
            return
        if self.domains.command(cmd):
            return
        if cmd.command not in (ModelCommandType.ACTIVATE, ModelCommandType.ROLLBACK):
            raise ValueError(f"command {cmd.command} is not handled by the trainer")
        history = self.store.models.activations(cmd.domain, cmd.scope)
        if any(a.command_id == cmd.event_id for a in history):
            return
        version = cmd.version
        if version is None:
            if cmd.command != ModelCommandType.ROLLBACK or not history:
                raise ValueError("activate needs a version; rollback needs a previous activation")
            version = history[-1].previous_version
            if version is None:
                raise ValueError("nothing to roll back to")
        if self.store.models.get_version(cmd.domain, cmd.scope, version) is None:
            raise KeyError(f"unknown version {version!r} for {cmd.domain}/{cmd.scope}")
        act = self.store.models.record_activation(
            cmd.domain,
            cmd.scope,
            version,
            reason=cmd.reason or str(cmd.command),
            actor=cmd.requested_by,
            command_id=cmd.event_id,
        )
        row = self.store.models.get_version(cmd.domain, cmd.scope, version)
        self._announce(
            cmd.domain,
            cmd.scope,
            version,
            act.previous_version,
            row.algorithm if row else None,
            row.metrics if row else {},
            f"{cmd.command}: {act.reason}",
        )

    def cancel(self, cmd: ModelCommand) -> None:
        """Cancel the job ``cmd.job_id`` (its id or a request's): a queued job ends
        ``cancelled`` now, a running one at its next checkpoint (in whichever trainer runs
        it: the mark is in the store). Idempotent; a finished job is left as it is."""
        if not cmd.job_id:
            raise ValueError("cancel_job needs a job_id")
        job = self.store.jobs.job_for_request(cmd.job_id)
        if job is None:
            raise KeyError(f"unknown job {cmd.job_id!r}")
        row = self.store.jobs.request_cancel(
            job.id,
            at=datetime.now(UTC),
            requested_by=cmd.requested_by,
            reason=cmd.reason,
            command_id=cmd.event_id,
        )
        log.info("cancel of job %s (%s): now %s", job.id, job.status, row.status)
        if job.status == "queued" and row.status == "cancelled":
            self._job_ended(row)

    # --- helpers -----------------------------------------------------------------------------
    def _run_while_polling(self, job: TrainingJobRow, stop: threading.Event) -> bool:
        """Run the job to its outcome and store it. False when a stop was asked for first (the
        job stays open and is recovered at the next start). A job the store failed under is
        run again once the store answers."""
        while True:
            ended = self._train_polling(job, stop)
            if ended is None:
                return False
            if isinstance(ended, JobOutcome):
                self._stored("finishing a job", lambda: self._finish(ended, job), stop)  # noqa: B023
                return True
            self._stored("a job interrupted by the store", partial(_reraise, ended), stop)
            log.warning("job %s interrupted by a store outage: running it again", job.id)

    def _train_polling(
        self, job: TrainingJobRow, stop: threading.Event
    ) -> JobOutcome | BaseException | None:
        """Train in a thread while the consumer polls with its partitions paused (membership
        and poll interval kept). The outcome, the error the thread ended with, or None when a
        stop was asked for."""
        ended: list[JobOutcome | BaseException] = []

        def train() -> None:
            try:
                ended.append(self._run(job))
            except Exception as exc:  # noqa: BLE001 - judged by the caller
                ended.append(exc)

        assignment = self.consumer.assignment()
        requests = [tp for tp in assignment if tp.topic == self.settings.topic_retrain_requests]
        self.consumer.pause(requests)
        held: list[Message] = []
        worker = threading.Thread(target=train, name=f"job-{job.id}", daemon=True)
        worker.start()
        while worker.is_alive():
            if stop.is_set():
                return None
            msg = self._poll(0.2)  # keeps the membership alive
            if msg is not None and not msg.error():
                self._during_job(msg, held, requests, stop)
        self.consumer.resume(assignment)
        self.consumer.resume(requests)  # with the partitions paused for a held message
        rewound: set[int] = set()
        for msg in held:  # in the order received; their partitions were paused meanwhile
            if msg.topic() == self.settings.topic_retrain_requests:
                # a request partition assigned mid-job: read it again from there (the main
                # loop runs the job it may create)
                if msg.partition() not in rewound:
                    rewound.add(msg.partition())
                    self.consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
                continue
            self._stored("taking a held command", lambda m=msg: self.handle(m), stop)
            self.consumer.commit(message=msg, asynchronous=False)
        return ended[0]

    def _run(self, job: TrainingJobRow) -> JobOutcome:
        """Run a job; count it and its wall time by outcome status (a job a store outage
        interrupted is run again, and counted once it ends)."""
        started = time.monotonic()
        running = self.metrics.running.labels(job.domain)
        running.inc()
        try:
            outcome = self.runner.run(job)
        finally:
            running.dec()
        self.metrics.job(job.domain, outcome.status, time.monotonic() - started)
        return outcome

    def _during_job(
        self,
        msg: Message,
        held: list[Message],
        paused: list[TopicPartition],
        stop: threading.Event,
    ) -> None:
        """A message that arrived while a job trains (``paused``: the partitions paused for
        the job): a cancel is applied at once (the job honours it at its next checkpoint); any
        other is held, its partition paused, and handled once the job has ended (so commands
        never run beside a job)."""
        part = (msg.topic(), msg.partition())
        if any((m.topic(), m.partition()) == part for m in held):
            held.append(msg)  # behind a held one: keep the partition's order
            return
        if _is_cancel(msg):
            self._stored("taking a cancel", lambda: self.handle(msg), stop)
            self.consumer.pause(paused)  # a store outage's wait resumed everything
            self.consumer.commit(message=msg, asynchronous=False)
            return
        paused.append(TopicPartition(*part))
        self.consumer.pause([paused[-1]])
        held.append(msg)

    def _job_ended(self, job: TrainingJobRow) -> None:
        """Tell the job's domain it ended (leader only; e.g. its monitor may move on)."""
        if self.leader and job.domain in self.domains.hooks:
            row = self.store.jobs.get_job(job.id)
            self.domains.job_finished(job.domain, list(row.request_ids if row else job.request_ids))

    def _finish(self, outcome: JobOutcome, job: TrainingJobRow) -> None:
        log.info("job %s %s %s %s", job.id, outcome.status, outcome.version or "", outcome.reason)
        if outcome.promoted and outcome.version:
            row = self.store.models.get_version(job.domain, job.scope, outcome.version)
            self._announce(
                job.domain,
                job.scope,
                outcome.version,
                outcome.previous_version,
                row.algorithm if row else None,
                outcome.metrics,
                f"{job.trigger}: {outcome.reason}",
            )
        self._job_ended(job)
        self._gauges_at = -1e9  # a new live version: its age is read at the next turn

    def _announce(
        self,
        domain: str,
        scope: str,
        version: str,
        previous: str | None,
        algorithm: str | None,
        metrics: dict,
        reason: str,
    ) -> None:
        event = ModelUpdatedEvent(
            event_id=deterministic_id("model-updated", domain, scope, version, previous),
            occurred_at=datetime.now(UTC),
            domain=domain,
            scope=scope,
            version=version,
            previous_version=previous,
            algorithm=algorithm,
            metrics={k: v for k, v in metrics.items() if isinstance(v, int | float) or v is None},
            reason=reason[:500],
        )
        self.producer.publish(self.settings.topic_model_updated, f"{domain}/{scope}", event)
        self.producer.flush(10)

    def _dead_letter(self, msg: Message, reason: str) -> None:
        record = DeadLetterRecord(
            event_id=deterministic_id("dead-letter", msg.topic(), msg.partition(), msg.offset()),
            source_topic=msg.topic(),
            partition=msg.partition(),
            offset=msg.offset(),
            key=(msg.key() or b"").decode("utf-8", "replace") or None,
            reason=reason[:2000],
            error_type="schema_violation" if reason.startswith("schema") else "other",
            consumer=self.settings.trainer_group_id,
            payload=(msg.value() or b"")[: self.settings.max_event_bytes].decode(
                "utf-8", "replace"
            ),
            occurred_at=datetime.now(UTC),
        )
        self.producer.publish(self.settings.topic_dead_letter, record.key, encode_event(record))
        self.metrics.dead_letter(record.source_topic, record.error_type)


class _Stopping(Exception):
    """A stop was asked for while waiting for the store."""


def _reraise(error: BaseException) -> None:
    """Raise the error a training thread ended with, to judge it like any store error: a
    transient one is waited out (then the job runs again), any other stops the trainer."""
    raise error


def _is_cancel(msg: Message) -> bool:
    """Whether a message is a valid ``cancel_job`` command."""
    try:
        cmd = ModelCommand.model_validate_json(msg.value() or b"")
    except ValidationError:
        return False
    return cmd.command == ModelCommandType.CANCEL_JOB


def _published_at(msg: Message) -> datetime | None:
    """When the message was produced (Kafka timestamp), if the broker says."""
    kind, millis = msg.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE or millis <= 0:
        return None
    return datetime.fromtimestamp(millis / 1000, UTC)
