"""The Faust worker: one ingest agent per registered domain, thin over ``ml.ingest``.

Each agent takes batches of raw messages, validates them, sends refused ones to the dead-letter
topic (with reason and original payload), and writes the batch's observations together with the
offsets they include, its refused messages (``dead_letters``, a bounded payload excerpt) and the
counts of the invalid values it dropped from events it kept (``field_rejections``) in one store
transaction. Scale-out is Kafka's: more partitions, more
workers in the same consumer group (``STREAMS_APP_ID``).

Exactly once, under faults:
- The store is the source of truth for position: on every assignment each partition resumes
  after its stored offset (``streams.positions``), whatever Kafka's committed offsets say, and
  messages at or below it are skipped. A partition the broker no longer backs is refused.
- A batch is written with the offsets its writer started from (fenced): if another worker
  committed the partition meanwhile, nothing is written and this worker stops.
- A store that is down is waited for: reads and the commit are retried with backoff, the agent
  takes no new batch meanwhile (fetching stops once Faust's buffer is full) and nothing is
  acknowledged past what is stored. An error a retry cannot cure stops the process with a
  clear message instead of skipping the batch.
- SIGTERM ends the process within ``SHUTDOWN_TIMEOUT_SECONDS`` even with the broker or the
  store gone; what was not stored is consumed again after the restart.

Metrics and probes (:mod:`millrace.metrics`, :mod:`millrace.probes`): every committed batch
counts its messages, dead letters, drift detections and retrain requests and times its store
transaction; a one-second timer ticks the heartbeat and sets the consumer lag of the assigned
partitions (broker end offset against the stored position); every fetch of the consumer marks a
poll.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import faust
from faust.types import TP

from millrace.kafka import encode_event
from millrace.metrics import StreamsMetrics, consumer_lag
from millrace.probes import Heartbeat, serve_probes
from millrace.settings import Settings
from millrace.shutdown import arm_watchdog, connect_store, stop_on_store_error
from ml.dead_letters import dead_letter_row
from ml.domains import Domain, all_domains
from ml.ingest import IngestBatch, MessageLike, fold_batch
from ml.registry.entities import ProcessorState, StatisticKey, StatisticsChange, StreamPosition
from ml.registry.errors import Backoff, is_transient
from ml.registry.store import Store
from ml.streaming import (
    PartitionProcessor,
    ProcessorOutput,
    UnknownStateVersion,
    statistics_change,
    statistics_rows,
)
from schemas.events import DriftEvent
from streams.positions import PositionKeeper, fingerprint

__all__ = ["create_app", "run_worker", "drift_row"]

R = TypeVar("R")

log = logging.getLogger("millrace.streams")

#: How often a worker re-reads a domain's stored model configs (seconds).
CONFIG_CHECK_SECONDS = 5.0


def _domains(settings: Settings) -> list[Domain]:
    """Every registered domain, as the settings configure it (:meth:`Domain.configure`)."""
    return [domain.configure(settings) for domain in all_domains()]


def drift_row(event: DriftEvent) -> dict[str, Any]:
    """The store fields of a drift event."""
    return event.model_dump(
        include={
            "event_id",
            "domain",
            "scope",
            "detector",
            "statistic",
            "value",
            "threshold",
            "model_version",
            "evidence",
            "occurred_at",
        }
    )


def create_app(
    settings: Settings,
    store: Store | None = None,
    *,
    freeze_gc: bool = False,
    metrics: StreamsMetrics | None = None,
    heartbeat: Heartbeat | None = None,
) -> faust.App:
    """Build the Faust app with one ingest agent per domain.

    ``freeze_gc`` (the worker process): after the first assignment, see
    :func:`freeze_startup_objects`. ``metrics`` and ``heartbeat``: what the probe port serves
    (fresh ones when not given)."""
    metrics = metrics or StreamsMetrics()
    heartbeat = heartbeat or Heartbeat()
    brokers = [f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")]
    # Tables live in memory; keep Faust's data directory out of the working tree.
    datadir = os.path.join(tempfile.gettempdir(), "millrace-faust", settings.streams_app_id)
    os.makedirs(datadir, exist_ok=True)
    app = faust.App(
        settings.streams_app_id,
        broker=brokers,
        store="memory://",
        datadir=datadir,
        autodiscover=False,
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        broker_session_timeout=settings.broker_session_timeout_seconds,
        broker_rebalance_timeout=settings.broker_rebalance_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout_seconds / 3),
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
    )
    store = store or connect_store(settings, log)
    consumer = settings.streams_app_id
    checkpoints: dict[tuple[str, int], int] = {}
    processors: dict[tuple[str, int], PartitionProcessor] = {}
    #: per partition: the processor's statistics stamp and rows as stored (absent: not known,
    #: its first commit replaces them)
    statistics: dict[tuple[str, int], tuple[Any, dict[StatisticKey, Any]]] = {}
    #: per input topic: the class of its domain's processors (what a stored state must be)
    processor_types: dict[str, type[PartitionProcessor]] = {}
    dead_letter = app.topic(
        settings.topic_dead_letter, value_serializer="raw", key_serializer="raw"
    )
    drift_topic = app.topic(
        settings.topic_drift_events, value_serializer="raw", key_serializer="raw"
    )
    retrain_topic = app.topic(
        settings.topic_retrain_requests, value_serializer="raw", key_serializer="raw"
    )
    domains = _domains(settings)
    input_topics = {d.topic(settings) for d in domains}

    def backoff() -> Backoff:
        return Backoff(settings.store_retry_initial_seconds, settings.store_retry_max_seconds)

    async def stored(what: str, fn: Callable[[], R]) -> R:
        """``fn()`` against the store, retried with backoff while the store is unreachable; an
        error a retry cannot cure stops the process.

        While an agent waits here it takes no new batch: its partitions stop being fetched
        once Faust's stream buffer is full (Faust's own flow control, which keeps what it
        fetched). Partitions are not paused by hand: Faust silently drops records of a
        partition paused while a fetch is in flight."""
        delays = backoff()
        while True:
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001 - sorted just below
                if not is_transient(exc):
                    stop_on_store_error(log, what, exc)
                delay = delays.next()
                log.warning(
                    "store unavailable during %s (%s: %s); retry %d in %.1f s, "
                    "nothing acknowledged past what is stored",
                    what,
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                    delays.attempts,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            if delays.attempts:
                log.info("store back after %d retries: %s done", delays.attempts, what)
            return result

    async def read_positions() -> dict[tuple[str, int], StreamPosition]:
        return await stored("reading stream positions", lambda: store.stream.positions(consumer))

    async def record_fault(position: StreamPosition, reason: str) -> None:
        await stored(
            "recording a refused partition",
            lambda: store.stream.record_fault(
                consumer, position.topic, position.partition, position.offset, reason
            ),
        )

    async def clear_fault(position: StreamPosition) -> None:
        await stored(
            "clearing a partition fault",
            lambda: store.stream.clear_fault(consumer, position.topic, position.partition),
        )

    keeper = PositionKeeper(settings.bootstrap_servers, read_positions, record_fault, clear_fault)

    #: set once this assignment's positions are decided and its state loaded
    decided = asyncio.Event()

    async def on_assigned(_sender: Any, assigned: set, **__: Any) -> None:
        """On every assignment: positions, offsets and processor state as the store has them
        now; Faust's seek to committed offsets is replaced by a seek to the stored ones.

        Faust's recovery (which seeks and resumes fetching) runs concurrently with this
        handler, so before the first ``await`` the seek is made to wait for the decision."""
        decided.clear()
        _seek_to_store(app, keeper, decided)
        _watch_polls(app, heartbeat)
        ours = {(tp.topic, tp.partition) for tp in assigned if tp.topic in input_topics}
        heartbeat.assigned(len(ours))
        await keeper.assign(ours)
        saved = await stored("reading checkpoints", lambda: store.stream.checkpoints(consumer))
        checkpoints.clear()
        processors.clear()
        applied.clear()
        statistics.clear()
        for tp, checkpoint in saved.items():
            checkpoints[tp] = checkpoint.offset
            if checkpoint.state is not None and tp in ours:
                processor = _restore(processor_types.get(tp[0]), tp, checkpoint.state)
                if processor is not None:
                    processors[tp] = processor
        decided.set()
        log.info(
            "assigned %s: resuming at %s (stored positions)%s",
            ", ".join(f"{t}[{p}]" for t, p in sorted(ours)) or "nothing",
            keeper.targets,
            f"; REFUSED {sorted(keeper.refused)}" if keeper.refused else "",
        )
        if freeze_gc:
            freeze_startup_objects()

    app.on_partitions_assigned.connect(on_assigned)

    @app.timer(1.0)
    async def beat() -> None:
        """The loop runs: tick the heartbeat, set the lag of the assigned partitions."""
        heartbeat.tick()
        consumer = app.consumer
        ends = {}
        for tp in consumer.assignment():
            if tp.topic in input_topics:
                try:
                    ends[(tp.topic, tp.partition)] = consumer.highwater(tp)
                except Exception:  # noqa: BLE001 - not fetched yet or just revoked
                    continue
        metrics.set_lag(consumer_lag(ends, checkpoints))

    @app.timer(CONFIG_CHECK_SECONDS)
    async def resume_reconciled() -> None:
        """Resume refused partitions whose position an operator reset."""
        for (topic, partition), (target, stored_offset) in (await keeper.recheck()).items():
            checkpoints[(topic, partition)] = stored_offset
            tp = TP(topic, partition)
            await app.consumer.seek(tp, target)
            app.consumer.resume_partitions({tp})
            log.warning("%s[%d] reconciled: consuming again from offset %d", topic, partition,
                        target)  # fmt: skip

    #: per domain: (monotonic time of the last read, the stored model configs)
    configs_seen: dict[str, tuple[float, list | None]] = {}
    applied: dict[tuple[str, int], list | None] = {}

    def stored_configs(domain: Domain) -> list | None:
        """The domain's model configs, read from the store at most every few seconds."""
        at, configs = configs_seen.get(domain.name, (-1e9, None))
        if time.monotonic() - at >= CONFIG_CHECK_SECONDS:
            configs = domain.model_configs(store)
            configs_seen[domain.name] = (time.monotonic(), configs)
        return configs

    def live_state(domain: Domain) -> tuple[Any, list | None]:
        """What processing needs from the store, read before any processor changes."""
        live = store.models.live_activation(domain.name, domain.model_scope("global"))
        return live, stored_configs(domain)

    def process(
        domain: Domain, batch: IngestBatch, live: Any, configs: list | None
    ) -> tuple[ProcessorOutput, dict, dict]:
        """Run the domain's partition processors; return their output, pickled states and the
        changes of their statistics (stored rows: see ``statistics``).

        A processor whose model version is not the live one first switches to it (new drift
        references and baselines): the store is the source of truth, read once per batch
        before this (so a store outage never interrupts a processor half-way)."""
        output, states, changes = ProcessorOutput(), {}, {}
        for tp, events in batch.events.items():
            processor = processors.get(tp) or domain.partition_processor(settings)
            if processor is None:
                continue
            processors[tp] = processor
            if live and processor.model_version != live.version:
                processor.use_model(live.version, live.activated_at)
            if configs is not None and applied.get(tp) != configs:
                processor.update_configs(configs)
                applied[tp] = configs
            output.extend(processor.process(events).from_partition(tp[1]))
            states[(consumer, *tp)] = processor.state()
            stamp, known = processor.statistics_stamp(), statistics.get(tp)
            if known is None or stamp is None or stamp != known[0]:
                rows = statistics_rows(processor)
                change = statistics_change(domain.name, known[1] if known else None, rows)
                changes[(consumer, *tp)] = (change, (stamp, rows))
        return output, states, changes

    def fold(domain: Domain, messages: list[MessageLike]) -> IngestBatch:
        """Validate and fold a batch (reads which event ids were seen before)."""
        return fold_batch(
            domain,
            messages,
            checkpoints,
            consumer=consumer,
            max_bytes=settings.max_event_bytes,
            max_future=timedelta(seconds=settings.max_future_seconds),
            min_time=settings.min_event_time,
            known_ids=lambda ids: store.stream.known_event_ids(domain.name, ids),
        )

    async def publish(output: ProcessorOutput) -> None:
        for event in output.drift_events:
            await drift_topic.send(
                key=f"{event.domain}/{event.scope}".encode(), value=encode_event(event)
            )
        for request in output.retrain_requests:
            await retrain_topic.send(
                key=f"{request.domain}/{request.scope}".encode(), value=encode_event(request)
            )

    def commit(
        domain: Domain,
        batch: IngestBatch,
        output: ProcessorOutput,
        states: dict[tuple[str, str, int], ProcessorState],
        changes: dict[tuple[str, str, int], tuple[StatisticsChange | None, tuple]],
        prints: dict[tuple[str, int], str],
    ) -> None:
        started = time.perf_counter()
        marks = {(consumer, t, p): off for (t, p), off in batch.offsets.items()}
        ids = [(domain.name, event_id) for event_id in batch.event_ids]
        store.stream.apply_observations(
            batch.deltas,
            marks,
            states,
            event_ids=ids,
            corrections=output.corrections,
            drift_events=[drift_row(event) for event in output.drift_events],
            forecasts=output.forecasts,
            scores=output.scores,
            statistics={key: change for key, (change, _) in changes.items() if change},
            expected={(consumer, *tp): checkpoints.get(tp) for tp in batch.offsets},
            fingerprints={(consumer, *tp): fp for tp, fp in prints.items()},
            dead_letters=[
                dead_letter_row(record, settings.dead_letter_payload_chars)
                for _, record in batch.dead_letters
            ],
            field_rejections=batch.field_rejections,
        )
        metrics.batch(
            domain.name,
            batch.accepted + len(batch.dead_letters),
            time.perf_counter() - started,
            dead_letters=[(r.source_topic, str(r.error_type)) for _, r in batch.dead_letters],
            detectors=[event.detector for event in output.drift_events],
            reasons=[str(request.reason) for request in output.retrain_requests],
        )

    def make_agent(domain: Domain) -> None:
        topic_name = domain.topic(settings)
        topic = app.topic(topic_name, value_serializer="raw", key_serializer="raw")

        async def ingest(stream: faust.StreamT) -> None:
            async for events in stream.take_events(
                settings.streams_batch_size, within=settings.streams_batch_timeout_seconds
            ):
                # Faust's messages carry topic/partition/offset/key/value: no copies needed.
                # The batch work runs on the event loop, not in a thread: it is CPU-bound
                # Python, so a thread only adds GIL hand-offs with Faust's own loop (measured:
                # ~3x the wall time per batch); the loop is held for one bounded batch.
                await decided.wait()
                refused = keeper.refused
                messages = [
                    m
                    for event in events
                    if (m := event.message) and (m.topic, m.partition) not in refused
                ]
                batch = await stored(
                    "validating a batch",
                    lambda: fold(domain, messages),  # noqa: B023 - awaited right here
                )
                if not batch.offsets:
                    continue
                live, configs = await stored(
                    "reading the live version",
                    lambda: live_state(domain),  # noqa: B023 - awaited right here
                )
                output, states, changes = process(domain, batch, live, configs)
                # side effects first (deterministic ids make a replay harmless), then the store
                for key, record in batch.dead_letters:
                    await dead_letter.send(key=key, value=encode_event(record))
                await publish(output)
                if batch.dead_letters or output.drift_events or output.retrain_requests:
                    await app.producer.flush()
                prints = _last_fingerprints(messages, batch.offsets)
                await stored(
                    "committing a batch",
                    lambda: commit(domain, batch, output, states, changes, prints),  # noqa: B023
                )
                checkpoints.update(batch.offsets)
                heartbeat.polled()
                statistics.update({(t, p): known for (_, t, p), (_, known) in changes.items()})

        app.agent(topic, name=f"ingest-{domain.name}")(ingest)

    for domain in domains:
        # imports the processors' modules now, not mid-batch
        processor = domain.partition_processor(settings)
        if processor is not None:
            processor_types[domain.topic(settings)] = type(processor)
        make_agent(domain)
    return app


def _restore(
    kind: type[PartitionProcessor] | None, tp: tuple[str, int], state: ProcessorState
) -> PartitionProcessor | None:
    """The processor of a stored state; None, said loudly, for a state this worker cannot read
    (another version): it is not unpickled, a fresh processor takes over from the stored
    offset and its first commit replaces the stored state."""
    if kind is None:
        return None
    try:
        return kind.restore(state)
    except UnknownStateVersion as exc:
        log.error(
            "%s[%d]: %s; NOT restored: online models and drift statistics are rebuilt from "
            "the events after the stored offset",
            tp[0],
            tp[1],
            exc,
        )
        return None


def _faust_tps(tps: set[tuple[str, int]]) -> set[TP]:
    """Faust's TopicPartition tuples for (topic, partition) pairs."""
    return {TP(t, p) for t, p in tps}


def _last_fingerprints(
    messages: list[MessageLike], offsets: dict[tuple[str, int], int]
) -> dict[tuple[str, int], str]:
    """The fingerprint of the record at each partition's new stored offset."""
    prints: dict[tuple[str, int], str] = {}
    for m in messages:
        tp = (m.topic, m.partition)
        if offsets.get(tp) == m.offset:
            prints[tp] = fingerprint(round(m.timestamp * 1000), m.key, m.value)
    return prints


def _watch_polls(app: faust.App, heartbeat: Heartbeat) -> None:
    """Mark a poll on the heartbeat after every fetch of Faust's consumer (it fetches about
    every second while its partitions are flowing, even with nothing to read)."""
    consumer = app.consumer
    if getattr(consumer, "_millrace_polls", False):
        return
    original = consumer._getmany

    async def getmany(active_partitions: Any, timeout: float) -> Any:
        records = await original(active_partitions, timeout)
        heartbeat.polled()
        return records

    consumer._getmany = getmany  # type: ignore[method-assign]
    consumer._millrace_polls = True  # type: ignore[attr-defined]


def _seek_to_store(app: faust.App, keeper: PositionKeeper, decided: asyncio.Event) -> None:
    """Make Faust's seeks to "committed" offsets (one follows every assignment) wait for the
    keeper's decision and go to the positions it decided; keep refused partitions paused."""
    consumer = app.consumer
    if getattr(consumer, "_millrace_seek", False):
        return
    original = consumer.seek_to_committed

    async def seek_to_stored() -> dict:
        await decided.wait()
        committed = dict(await original())
        for tp in consumer.assignment():
            target = keeper.targets.get((tp.topic, tp.partition))
            if target is not None:
                await consumer.seek(tp, target)
                committed[tp] = target
        refused = _faust_tps(set(keeper.refused))
        if refused:
            consumer.pause_partitions(refused)
        return committed

    consumer.seek_to_committed = seek_to_stored  # type: ignore[method-assign]
    consumer._millrace_seek = True  # type: ignore[attr-defined]


_frozen = False


#: ``gc.set_threshold`` of a worker after its startup objects are frozen (Python's: 700, 10, 10)
GC_THRESHOLDS = (10_000, 10, 10)


def freeze_startup_objects() -> None:
    """Move everything alive after the first assignment (modules, Faust, aiokafka, SQLAlchemy,
    River) out of the garbage collector's reach, once per process, and collect the young
    generation every ``GC_THRESHOLDS[0]`` allocations instead of Python's 700.

    Those objects live as long as the worker; without this every full collection walks them
    all again (measured: ~10 us per event of gen-2 collections at 500-event batches). A batch
    allocates tens of thousands of short-lived objects (events, rows, feature tuples): with the
    larger threshold most die before a collection sees them (measured with ``gc.callbacks`` in
    the network worker on 40,000 Irish events: collections 0.98 -> 0.64 s of the run, ~9 us per
    event; the processor alone 12-15 % faster on the same events)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)


class BoundedWorker(faust.Worker):
    """Faust's worker, but a stop signal ends the process within a bound: the graceful stop
    runs, and a watchdog exits the process if it has not ended in time (broker or store gone);
    a second signal exits at once. Nothing is lost: the store holds the resume positions."""

    shutdown_timeout: float = 10.0

    def _schedule_shutdown(self, signal: Any) -> None:
        if self._signal_stop_time:
            log.warning("second stop signal: exiting now")
            logging.shutdown()
            os._exit(1)
        arm_watchdog(self.shutdown_timeout, "streams worker")
        super()._schedule_shutdown(signal)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the worker in the foreground until SIGINT / SIGTERM, with its metrics and probes on
    ``STREAMS_METRICS_PORT``."""
    metrics = StreamsMetrics()
    probes = serve_probes(
        "streams",
        settings.metrics_host,
        settings.streams_metrics_port,
        metrics.registry,
        settings.probe_heartbeat_seconds,
    )
    heartbeat = probes.heartbeat if probes else None
    app = create_app(settings, freeze_gc=True, metrics=metrics, heartbeat=heartbeat)
    worker = BoundedWorker(app, loglevel=loglevel)
    worker.shutdown_timeout = settings.shutdown_timeout_seconds
    worker.execute_from_commandline()
