"""Where each assigned partition resumes: the store decides, and the broker must agree.

The store is the source of truth for position. On every assignment the worker reads the stored
position of each partition (the last offset its stored state includes, with the fingerprint of
that record) and seeks to the offset after it, whatever Kafka's committed offsets say.

Before that it checks that the broker still holds the record the store says it last included.
If the broker lost its data (an embedded broker restarted, a cluster rebuilt, a topic deleted
and re-created), the stored offset points past the partition's end, below its start, or at a
different record; consuming from there would silently skip or double-count. Such a partition is
*refused*: kept paused, recorded in the store (``/health`` names it), and left alone until an
operator moves its position with ``millrace checkpoints reset``; the worker notices the reset
within a few seconds and resumes the partition.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import OffsetOutOfRangeError
from aiokafka.structs import TopicPartition as KafkaTP

from ml.registry.entities import StreamPosition

__all__ = [
    "BrokerView",
    "PositionKeeper",
    "Verdict",
    "fingerprint",
    "judge",
]

log = logging.getLogger("millrace.streams.positions")

#: (topic, partition)
TP = tuple[str, int]


def fingerprint(timestamp_ms: int, key: bytes | None, value: bytes | None) -> str:
    """Identifies one record: its timestamp and checksums of its key and value."""
    return f"{timestamp_ms}-{zlib.crc32(key or b'')}-{zlib.crc32(value or b'')}"


@dataclass(frozen=True, slots=True)
class BrokerView:
    """What the broker says about a partition: its start and end offsets, and the first record
    it returns at or after the stored offset (offset and fingerprint; None if it returned none).

    ``end`` may be lower than the true end on some brokers (the embedded Tansu reports the base
    offset of its last batch + 1), so a record found at the offset wins over ``end``."""

    start: int
    end: int
    found_offset: int | None
    found_fingerprint: str | None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Where to resume a partition (``seek_to``), or why it is refused (``refusal``)."""

    seek_to: int | None
    refusal: str | None = None


def _beginning(tp: TP) -> StreamPosition:
    """The position of a partition nothing was stored from yet."""
    return StreamPosition(tp[0], tp[1], -1, None)


def judge(position: StreamPosition, broker: BrokerView) -> Verdict:
    """Resume after the stored offset if the broker still holds what the store includes."""
    offset = position.offset
    where = f"{position.topic}[{position.partition}]"
    if offset < 0:
        return Verdict(seek_to=broker.start)
    if broker.start > offset + 1:
        return Verdict(
            None,
            f"{where}: stored offset {offset} is below the partition's start {broker.start}: "
            f"records {offset + 1}..{broker.start - 1} are gone (broker reset or retention)",
        )
    if broker.start == offset + 1:  # the included record itself was deleted, nothing after it
        return Verdict(seek_to=offset + 1)
    if broker.found_offset is None:
        return Verdict(
            None,
            f"{where}: stored offset {offset} is beyond the partition's end {broker.end}: "
            "the broker does not hold the data the store includes (broker reset?)",
        )
    if broker.found_offset != offset or (
        position.fingerprint is not None and broker.found_fingerprint != position.fingerprint
    ):
        return Verdict(
            None,
            f"{where}: the record at stored offset {offset} is not the one the store includes "
            "(the broker lost its data and was written again?)",
        )
    return Verdict(seek_to=offset + 1)


async def look(bootstrap: str, positions: Mapping[TP, StreamPosition]) -> dict[TP, BrokerView]:
    """The broker's :class:`BrokerView` of each partition at its stored position (one consumer,
    all partitions fetched together: a fetch at an existing offset answers at once, so two
    empty rounds mean the records are not there)."""
    wanted = {KafkaTP(t, p): (t, p) for t, p in positions}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="none",
        fetch_max_wait_ms=500,
        max_partition_fetch_bytes=1 << 20,
    )
    await consumer.start()
    found: dict[TP, tuple[int, str]] = {}
    try:
        starts = await consumer.beginning_offsets(list(wanted))
        ends = await consumer.end_offsets(list(wanted))
        pending = [
            tp
            for tp, key in wanted.items()
            if 0 <= positions[key].offset and starts[tp] <= positions[key].offset
        ]
        consumer.assign(pending)
        for tp in pending:
            consumer.seek(tp, positions[wanted[tp]].offset)
        empty = 0
        while pending and empty < 2:
            try:
                batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=500)
            except OffsetOutOfRangeError as exc:  # real Kafka: stored offset beyond the end
                gone = set(exc.args[0]) if exc.args and isinstance(exc.args[0], dict) else set()
                pending = [tp for tp in pending if tp not in gone] if gone else []
                continue
            empty = 0 if batches else empty + 1
            for tp, records in batches.items():
                if records and tp in pending:
                    first = records[0]
                    found[wanted[tp]] = (
                        first.offset,
                        fingerprint(first.timestamp, first.key, first.value),
                    )
                    pending.remove(tp)
                    consumer.pause(tp)
    finally:
        await consumer.stop()
    return {
        key: BrokerView(
            starts[tp],
            ends[tp],
            found[key][0] if key in found else None,
            found[key][1] if key in found else None,
        )
        for tp, key in wanted.items()
    }


class PositionKeeper:
    """Decides, per assignment, where each partition resumes, and which are refused.

    ``read_positions`` reads the stored positions (the caller retries while the store is down);
    ``record_fault`` / ``clear_fault`` note refusals in the store. The Faust adapter calls
    :meth:`assign` on every assignment and :meth:`recheck` periodically."""

    def __init__(
        self,
        bootstrap: str,
        read_positions: Callable[[], Awaitable[Mapping[TP, StreamPosition]]],
        record_fault: Callable[[StreamPosition, str], Awaitable[Any]],
        clear_fault: Callable[[StreamPosition], Awaitable[Any]],
    ) -> None:
        self.bootstrap = bootstrap
        self.read_positions = read_positions
        self.record_fault = record_fault
        self.clear_fault = clear_fault
        #: partition -> offset to seek to, decided at the last assignment
        self.targets: dict[TP, int] = {}
        #: partition -> the stored position it was refused at
        self.refused: dict[TP, StreamPosition] = {}

    async def assign(self, tps: Iterable[TP]) -> None:
        """Decide the resume offset of each assigned partition; refuse the ones the broker
        no longer backs."""
        stored = await self.read_positions()
        self.targets = {}
        self.refused = {}
        await self._decide({tp: stored.get(tp) or _beginning(tp) for tp in sorted(tps)})

    async def recheck(self) -> dict[TP, tuple[int, int]]:
        """For refused partitions whose stored position moved (a reset): decide again.
        Returns the partitions to resume: (offset to seek to, stored offset now)."""
        if not self.refused:
            return {}
        stored = await self.read_positions()
        moved = {
            tp: stored[tp] for tp, was in self.refused.items() if tp in stored and stored[tp] != was
        }
        for tp in list(self.refused):
            if tp not in stored:  # position deleted: start from the beginning
                moved[tp] = _beginning(tp)
        if not moved:
            return {}
        for tp in moved:
            self.refused.pop(tp)
        await self._decide(moved)
        return {tp: (self.targets[tp], moved[tp].offset) for tp in moved if tp not in self.refused}

    async def _decide(self, positions: Mapping[TP, StreamPosition]) -> None:
        if not positions:
            return
        views = await look(self.bootstrap, positions)
        for tp, position in positions.items():
            verdict = judge(position, views[tp])
            if verdict.seek_to is not None:
                self.targets[tp] = verdict.seek_to
                await self.clear_fault(position)
                continue
            self.targets.pop(tp, None)
            self.refused[tp] = position
            log.error(
                "REFUSED %s. Nothing from it is consumed until its position is reconciled: "
                "millrace checkpoints reset --topic %s [--to earliest|latest]",
                verdict.refusal,
                tp[0],
            )
            await self.record_fault(position, verdict.refusal)
