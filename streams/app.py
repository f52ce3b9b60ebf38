"""The Faust worker: one ingest agent per registered domain, thin over ``ml.ingest``.

Each agent takes batches of raw messages, validates them, sends refused ones to the dead-letter
topic (with reason and original payload), and writes the batch's observations together with the
offsets they include in one store transaction. Messages at or below a partition's stored offset
are skipped, so redelivery after a crash or rebalance never applies an event twice. Scale-out is
Kafka's: more partitions, more workers in the same consumer group (``STREAMS_APP_ID``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from datetime import timedelta
from typing import Any

import faust

from millrace.kafka import encode_event
from millrace.settings import Settings
from ml.domains import Domain, all_domains
from ml.domains.network import NetworkDomain
from ml.ingest import IngestBatch, MessageLike, fold_batch
from ml.registry.store import Store
from ml.streaming import PartitionProcessor, ProcessorOutput
from schemas.events import DriftEvent

__all__ = ["create_app", "run_worker", "drift_row"]

log = logging.getLogger("millrace.streams")

#: How often a worker re-reads a domain's stored model configs (seconds).
CONFIG_CHECK_SECONDS = 5.0


def _domains(settings: Settings) -> list[Domain]:
    domains: list[Domain] = []
    for domain in all_domains():
        if isinstance(domain, NetworkDomain):
            domain = NetworkDomain(window_seconds=settings.network_window_seconds)
        domains.append(domain)
    return domains


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
    settings: Settings, store: Store | None = None, *, freeze_gc: bool = False
) -> faust.App:
    """Build the Faust app with one ingest agent per domain.

    ``freeze_gc`` (the worker process): after the first assignment, see
    :func:`freeze_startup_objects`."""
    brokers = [f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")]
    app = faust.App(
        settings.streams_app_id,
        broker=brokers,
        store="memory://",
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
    store = store or Store.from_url(settings.database_url, upgrade=True)
    consumer = settings.streams_app_id
    checkpoints: dict[tuple[str, int], int] = {}
    processors: dict[tuple[str, int], PartitionProcessor] = {}
    dead_letter = app.topic(
        settings.topic_dead_letter, value_serializer="raw", key_serializer="raw"
    )
    drift_topic = app.topic(
        settings.topic_drift_events, value_serializer="raw", key_serializer="raw"
    )
    retrain_topic = app.topic(
        settings.topic_retrain_requests, value_serializer="raw", key_serializer="raw"
    )

    async def reload_checkpoints(*_: Any, **__: Any) -> None:
        """On every assignment: offsets and processor state as the store has them now."""
        stored = await asyncio.to_thread(store.checkpoints, consumer)
        checkpoints.clear()
        processors.clear()
        applied.clear()
        for tp, (offset, state) in stored.items():
            checkpoints[tp] = offset
            if state is not None:
                processors[tp] = PartitionProcessor.loads(state)
        if freeze_gc:
            freeze_startup_objects()

    app.on_partitions_assigned.connect(reload_checkpoints)

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

    def process(domain: Domain, batch: IngestBatch) -> tuple[ProcessorOutput, dict]:
        """Run the domain's partition processors; return their output and pickled states.

        A processor whose model version is not the live one first switches to it (new drift
        references and baselines): the store is the source of truth, checked once per batch."""
        output, states = ProcessorOutput(), {}
        checked, live = False, None
        for tp, events in batch.events.items():
            processor = processors.get(tp) or domain.partition_processor(settings)
            if processor is None:
                continue
            processors[tp] = processor
            if not checked:
                live = store.live_activation(domain.name, domain.model_scope("global"))
                checked = True
            if live and processor.model_version != live.version:
                processor.use_model(live.version, live.activated_at)
            configs = stored_configs(domain)
            if configs is not None and applied.get(tp) != configs:
                processor.update_configs(configs)
                applied[tp] = configs
            output.extend(processor.process(events))
            states[(consumer, *tp)] = processor.dumps()
        return output, states

    def fold_and_process(
        domain: Domain, messages: list[MessageLike]
    ) -> tuple[IngestBatch, ProcessorOutput, dict]:
        """Validate and fold a batch, then run the processors."""
        batch = fold_batch(
            domain,
            messages,
            checkpoints,
            consumer=consumer,
            max_bytes=settings.max_event_bytes,
            max_future=timedelta(seconds=settings.max_future_seconds),
            known_ids=lambda ids: store.known_event_ids(domain.name, ids),
        )
        if not batch.offsets:
            return batch, ProcessorOutput(), {}
        return batch, *process(domain, batch)

    async def publish(output: ProcessorOutput) -> None:
        for event in output.drift_events:
            await drift_topic.send(
                key=f"{event.domain}/{event.scope}".encode(), value=encode_event(event)
            )
        for request in output.retrain_requests:
            await retrain_topic.send(
                key=f"{request.domain}/{request.scope}".encode(), value=encode_event(request)
            )

    def commit(domain: Domain, batch: IngestBatch, output: ProcessorOutput, states: dict) -> None:
        marks = {(consumer, t, p): off for (t, p), off in batch.offsets.items()}
        ids = [(domain.name, event_id) for event_id in batch.event_ids]
        store.apply_observations(
            batch.deltas,
            marks,
            states,
            event_ids=ids,
            corrections=output.corrections,
            drift_events=[drift_row(event) for event in output.drift_events],
            forecasts=output.forecasts,
            scores=output.scores,
        )

    def make_agent(domain: Domain) -> None:
        topic_name = getattr(settings, domain.topic_setting)
        topic = app.topic(topic_name, value_serializer="raw", key_serializer="raw")

        async def ingest(stream: faust.StreamT) -> None:
            async for events in stream.take_events(
                settings.streams_batch_size, within=settings.streams_batch_timeout_seconds
            ):
                # Faust's messages carry topic/partition/offset/key/value: no copies needed.
                # The batch work runs on the event loop, not in a thread: it is CPU-bound
                # Python, so a thread only adds GIL hand-offs with Faust's own loop (measured:
                # ~3x the wall time per batch); the loop is held for one bounded batch.
                messages = [event.message for event in events]
                batch, output, states = fold_and_process(domain, messages)
                if not batch.offsets:
                    continue
                # side effects first (deterministic ids make a replay harmless), then the store
                for key, record in batch.dead_letters:
                    await dead_letter.send(key=key, value=encode_event(record))
                await publish(output)
                if batch.dead_letters or output.drift_events or output.retrain_requests:
                    await app.producer.flush()
                commit(domain, batch, output, states)
                checkpoints.update(batch.offsets)

        app.agent(topic, name=f"ingest-{domain.name}")(ingest)

    for domain in _domains(settings):
        domain.partition_processor(settings)  # import the processors' modules now, not mid-batch
        make_agent(domain)
    return app


_frozen = False


def freeze_startup_objects() -> None:
    """Move everything alive after the first assignment (modules, Faust, aiokafka, SQLAlchemy,
    River) out of the garbage collector's reach, once per process.

    Those objects live as long as the worker; without this every full collection walks them
    all again (measured: ~10 us per event of gen-2 collections at 500-event batches)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the worker in the foreground until SIGINT / SIGTERM."""
    app = create_app(settings, freeze_gc=True)
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
