"""Reconcile a consumer's stored positions with a broker that lost its data.

A stream worker refuses a partition whose stored position the broker no longer backs (see
``streams.positions``). :func:`reset_topic` is the one documented way out: it moves the stored
positions of a topic to the beginning of what the broker holds now (``earliest``: consume all
of it) or to its end (``latest``: skip what is there), keeping observations and model state.
Running workers notice within seconds and resume the partitions.
"""

from __future__ import annotations

from typing import Literal

from confluent_kafka import Consumer, TopicPartition

from millrace.settings import Settings
from ml.registry.store import Store

__all__ = ["reset_topic", "end_offsets"]


def end_offsets(settings: Settings, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """Partition -> the broker's end (high watermark) offset of ``topic``."""
    consumer = Consumer(
        {"bootstrap.servers": settings.bootstrap_servers, "group.id": "millrace-admin"}
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            raise ValueError(f"topic {topic!r} is not on the broker")
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in meta.partitions
        }
    finally:
        consumer.close()


def reset_topic(
    settings: Settings,
    store: Store,
    topic: str,
    to: Literal["earliest", "latest"] = "earliest",
    consumer: str | None = None,
) -> int:
    """Move ``consumer``'s (default: the streams worker's) stored positions on ``topic``;
    returns how many moved."""
    consumer = consumer or settings.streams_app_id
    offsets = None
    if to == "latest":
        offsets = {p: end - 1 for p, end in end_offsets(settings, topic).items()}
    return store.stream.reset_positions(consumer, topic, offsets)
