"""Thin confluent-kafka helpers: an event producer, topic creation and a broker probe."""

from __future__ import annotations

from typing import Any

import orjson
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from millrace.settings import Settings
from schemas.events import BaseEvent

__all__ = ["EventProducer", "encode_event", "ensure_topics", "broker_reachable"]


def encode_event(event: BaseEvent) -> bytes:
    """The JSON bytes published for an event (orjson over pydantic's JSON-mode dump)."""
    return orjson.dumps(event.model_dump(mode="json"))


class EventProducer:
    """Publishes events as JSON; call :meth:`flush` before exiting."""

    def __init__(self, settings: Settings, **config: object) -> None:
        conf: dict[str, object] = {
            "bootstrap.servers": settings.bootstrap_servers,
            "linger.ms": 5,
            "enable.idempotence": False,
            "queue.buffering.max.messages": 500_000,
        }
        conf.update(config)
        self._producer = Producer(conf)
        #: Messages the broker did not accept (after librdkafka's retries), with the last error.
        self.failed = 0
        self.last_error: str | None = None
        #: (topic, partition) -> the highest offset the broker acknowledged
        self.delivered: dict[tuple[str, int], int] = {}

    def _on_delivery(self, err: object, msg: Any) -> None:
        if err is not None:
            self.failed += 1
            self.last_error = str(err)
            return
        key = (msg.topic(), msg.partition())
        if msg.offset() > self.delivered.get(key, -1):
            self.delivered[key] = msg.offset()

    def publish(self, topic: str, key: str | None, event: BaseEvent | bytes) -> None:
        """Queue one message; blocks briefly (polling) when the local queue is full."""
        value = event if isinstance(event, bytes) else encode_event(event)
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key.encode() if key else None,
                    on_delivery=self._on_delivery,
                )
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for delivery; return the number of messages still queued."""
        return self._producer.flush(timeout)


def ensure_topics(settings: Settings, timeout: float = 15.0) -> list[str]:
    """Create every configured topic that does not exist yet; return the names created."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [name for name in settings.topics().values() if name not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(name, settings.topic_partitions, settings.topic_replication_factor)
            for name in wanted
        ]
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created


def broker_reachable(bootstrap_servers: str, timeout: float = 2.0) -> tuple[bool, str]:
    """(True, "ok") if the cluster answers a metadata request in time, else (False, why)."""
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
        admin.list_topics(timeout=timeout)
        return True, "ok"
    except KafkaException as exc:
        return False, str(exc.args[0] if exc.args else exc)
