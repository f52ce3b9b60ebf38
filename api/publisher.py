"""Publish the commands the API accepts (retrain, activate) and confirm their delivery.

The API never writes the registry: a command is an event on a topic, and the HTTP answer waits
for the broker's acknowledgement (503 ``Broker unavailable`` when it does not come in time).
"""

from __future__ import annotations

import threading

from confluent_kafka import KafkaError, Producer

from millrace.kafka import encode_event
from millrace.settings import Settings
from schemas.events import BaseEvent

__all__ = ["BrokerUnavailable", "CommandPublisher"]


class BrokerUnavailable(RuntimeError):
    """The broker did not acknowledge a command in time."""


class CommandPublisher:
    """One producer per app, shared by request threads."""

    def __init__(self, settings: Settings, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._producer = Producer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "linger.ms": 0,
                "message.timeout.ms": int(timeout * 1000),
                "socket.connection.setup.timeout.ms": int(timeout * 1000),
            }
        )
        self._lock = threading.Lock()

    def send(self, topic: str, key: str, event: BaseEvent) -> None:
        """Publish ``event`` and wait for the acknowledgement (blocking; call off the loop)."""
        outcome: list[KafkaError | None] = []
        with self._lock:
            self._producer.produce(
                topic,
                value=encode_event(event),
                key=key.encode(),
                on_delivery=lambda err, _msg: outcome.append(err),
            )
            self._producer.flush(self.timeout + 1.0)
        if not outcome or outcome[0] is not None:
            why = outcome[0] if outcome else "no acknowledgement"
            raise BrokerUnavailable(f"Broker unavailable: command not published ({why})")

    def close(self) -> None:
        self._producer.flush(1.0)
