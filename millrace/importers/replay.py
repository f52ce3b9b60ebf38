"""Publish a :class:`~millrace.importers.base.Source` to Kafka, paced, with a progress bar.

:func:`open_source` picks the importer for a file by its name and header;
:func:`replay` publishes every record to ``getattr(settings, record.topic_key)`` under the
record's key and returns a :class:`ReplaySummary` of what was published and rejected.

Pacing sleeps until each event's slot on a fixed schedule (``t0 + i / rate``), so late sleeps
do not accumulate drift: the achieved rate converges to ``rate`` over the run.

Every format is published in event-time order by default (``by_time``; ``--file-order`` keeps
the file's order). Records the worker will refuse for their time (beyond
``MAX_FUTURE_SECONDS``, before ``MIN_EVENT_TIME``) are still published (the worker
dead-letters them, visibly) but counted and named in the summary.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from millrace.importers.base import Record, Rejected, Source, read_head
from millrace.importers.dealership import DealershipSource, is_dealership_header
from millrace.importers.irish5g import Irish5GSource, is_irish5g_header
from millrace.importers.norway import NorwaySource, is_norway_header
from millrace.importers.ordering import WorkerRules, in_time_order
from schemas.events import BaseEvent

__all__ = ["Publisher", "ReplaySummary", "open_source", "replay"]

MAX_EXAMPLES = 5
PROGRESS_EVERY = 500


class Publisher(Protocol):
    """What :func:`replay` needs of a producer (``millrace.kafka.EventProducer`` fits)."""

    def publish(self, topic: str, key: str | None, event: BaseEvent | bytes) -> None: ...

    def flush(self, timeout: float = 30.0) -> int: ...


@dataclass
class ReplaySummary:
    """Outcome of a replay: counts, rejection reasons by category, timing."""

    published: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[int, str]] = field(default_factory=list)
    elapsed: float = 0.0
    by_topic: Counter[str] = field(default_factory=Counter)
    unflushed: int = 0
    #: published records the worker will dead-letter, by error type, with examples
    refused: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    refused_examples: list[tuple[str, str]] = field(default_factory=list)
    #: invalid values of published records the worker will drop (keeping the rest), by
    #: ``field reason``
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        """Events published per second (0 if nothing was timed)."""
        return self.published / self.elapsed if self.elapsed > 0 else 0.0

    def add_rejected(self, item: Rejected) -> None:
        self.rejected += 1
        self.reasons[item.category] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append((item.row, item.reason))

    def add_refused(self, record: Record, error_type: str, reason: str) -> None:
        """Note a published record the worker will refuse (``error_type``, ``reason``)."""
        self.refused += 1
        self.refusals[error_type] += 1
        if len(self.refused_examples) < MAX_EXAMPLES:
            where = f"row {record.row}" if record.row is not None else record.event.event_id
            self.refused_examples.append((where, f"{error_type}: {reason}"))

    def render(self) -> Table:
        """A rich table of the summary (print it with a rich Console)."""
        table = Table(title="Replay summary", show_header=False)
        table.add_column("what", style="bold")
        table.add_column("value")
        table.add_row("published", f"{self.published:,}")
        for topic, count in sorted(self.by_topic.items()):
            table.add_row(f"  to {topic}", f"{count:,}")
        table.add_row("rejected", f"{self.rejected:,}")
        for reason, count in self.reasons.most_common():
            table.add_row(f"  {reason}", f"{count:,}")
        for row, reason in self.examples:
            table.add_row(f"  e.g. row {row}", reason)
        table.add_row("refused by the worker", f"{self.refused:,}",
                      style="yellow" if self.refused else None)  # fmt: skip
        for error_type, count in self.refusals.most_common():
            table.add_row(f"  {error_type}", f"{count:,}")
        for where, reason in self.refused_examples:
            table.add_row(f"  e.g. {where}", reason)
        if self.dropped:
            table.add_row("values the worker will drop", f"{sum(self.dropped.values()):,}")
            for what, count in self.dropped.most_common(MAX_EXAMPLES):
                table.add_row(f"  {what}", f"{count:,}")
        if self.unflushed:
            table.add_row("not delivered at flush", f"{self.unflushed:,}", style="red")
        table.add_row("elapsed", f"{self.elapsed:.2f} s")
        table.add_row("rate", f"{self.rate:,.0f} events/s")
        return table


def open_source(path: Path | str, by_time: bool = True, market: str | None = None) -> Source:
    """The importer for a file, chosen by its name and header; ``ValueError`` if unknown.

    ``by_time`` (default) yields the records in event-time order whatever the format (the
    dealership export and the Irish traces are not in time order); False keeps the file's.
    ``market``: the market a count feed's events name (Norway OFV files only; ValueError for
    another format)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    source = _importer(path, by_time, market)
    return in_time_order(source) if by_time else source


def _importer(path: Path, by_time: bool, market: str | None = None) -> Source:
    """The importer of ``path`` by its header (``ValueError`` if none fits)."""
    head = read_head(path)
    if head and is_norway_header(head[0]):
        return NorwaySource(path, market=market)
    if market:
        raise ValueError(f"{path}: --market applies to count feeds (Norway OFV sales CSV) only")
    if head and is_irish5g_header(head[0]):
        return Irish5GSource(path, by_time=by_time)
    if any(
        is_dealership_header(line.replace(";", ",").replace('"', "").split(",")) for line in head
    ):
        return DealershipSource(path)
    raise ValueError(
        f"{path}: unknown file format. Supported: dealership contract report CSV (header with "
        "'Tipo de contrato'), Norway OFV sales CSV (Year,Month,Make,Quantity or "
        "datetime,Make,Model,Quantity), Irish 5G traces .csv/.csv.gz (Timestamp, CellID, ...)."
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rejected {task.fields[rejected]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


class _Pacer:
    """Sleep-to-schedule pacing at ``rate`` events/s (``None``: no pacing)."""

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be > 0 events/s (or None for as fast as possible)")
        self.rate, self._clock, self._sleep = rate, clock, sleep
        self._start = clock()

    def wait(self, index: int) -> None:
        """Block until event ``index`` (0-based) is due."""
        if self.rate is None:
            return
        delay = self._start + index / self.rate - self._clock()
        if delay > 0:
            self._sleep(delay)


def replay(
    source: Iterable[Record | Rejected],
    producer: Publisher,
    settings: Any,
    rate: float | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> ReplaySummary:
    """Publish ``source``'s records, at most ``limit`` of them, at ``rate`` events/s, then flush."""
    summary = ReplaySummary()
    topics: dict[str, str] = {}
    total = getattr(source, "estimated_total", None) if progress else None
    if limit is not None:
        total = min(total, limit) if total is not None else limit
    bar = _progress() if progress else None
    task = bar.add_task(getattr(source, "name", "replay"), total=total, rejected=0) if bar else None
    started = time.monotonic()
    pacer = _Pacer(rate)
    rules = WorkerRules(settings)
    pending = 0
    try:
        if bar:
            bar.start()
        for item in source:
            if limit is not None and summary.published >= limit:
                break
            if isinstance(item, Rejected):
                summary.add_rejected(item)
                continue
            pacer.wait(summary.published)
            topic = topics.get(item.topic_key) or topics.setdefault(
                item.topic_key, getattr(settings, item.topic_key)
            )
            producer.publish(topic, item.key, item.event)
            if (refusal := rules.refusal(item.event)) is not None:
                summary.add_refused(item, *refusal)
            else:
                summary.dropped.update(f"{d.field} {d.reason}" for d in item.dropped)
            summary.published += 1
            summary.by_topic[topic] += 1
            pending += 1
            if bar and pending >= PROGRESS_EVERY:
                bar.update(task, advance=pending, rejected=summary.rejected)  # type: ignore
                pending = 0
        summary.unflushed = producer.flush() or 0
    finally:
        if bar:
            bar.update(task, advance=pending, rejected=summary.rejected)  # type: ignore[arg-type]
            bar.stop()
        summary.elapsed = time.monotonic() - started
    return summary
