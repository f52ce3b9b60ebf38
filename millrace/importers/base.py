"""Building blocks shared by every importer: records, rejections and the ``Source`` protocol.

An importer turns a file (or a simulation) into a stream of :class:`Record` (an event plus the
topic setting and message key it is published under) and :class:`Rejected` (a row that could not
become an event, with why). Importers never raise on bad rows; they reject them.

Event ids are deterministic from the source row, so replaying the same file twice publishes the
same event ids and consumers de-duplicate the second run.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from ml.salvage import FieldRejection
from schemas.events import BaseEvent

__all__ = [
    "FileSource",
    "IdFactory",
    "Record",
    "Rejected",
    "Source",
    "TopicKey",
    "open_text",
    "read_head",
    "reason_category",
    "validation_reason",
]

TopicKey = Literal["topic_sales", "topic_network"]


@dataclass(frozen=True)
class Rejected:
    """A source row that did not become an event.

    ``row`` is the 1-based line number in the file (header lines included) or, for generated
    sources, the index of the item. ``reason`` reads ``"<category>: <detail>"``; the category
    before the first colon is what summaries group by.
    """

    row: int
    reason: str

    @property
    def category(self) -> str:
        return reason_category(self.reason)


@dataclass(frozen=True)
class Record:
    """An event ready to publish to ``getattr(settings, topic_key)`` under message ``key``."""

    topic_key: str  # "topic_sales" or "topic_network"
    key: str
    event: BaseEvent
    #: the 1-based line of the file it comes from, when the importer knows it
    row: int | None = None
    #: invalid values the event carries that the worker will drop (the rest is kept)
    dropped: tuple[FieldRejection, ...] = ()


class Source(ABC):
    """An iterable of :class:`Record` and :class:`Rejected`, re-iterable from the start.

    ``name`` identifies the importer (also the events' ``source`` field where they have one).
    ``estimated_total`` is the number of items expected (for progress bars), ``None`` if unknown.
    """

    name: str = "source"
    #: whether the records already come in event-time order (``occurred_at``); a replay sorts
    #: the others first (:func:`millrace.importers.ordering.in_time_order`)
    time_ordered: bool = False

    @abstractmethod
    def __iter__(self) -> Iterator[Record | Rejected]:
        """Yield records and rejections in publication order."""

    @property
    def estimated_total(self) -> int | None:
        return None

    def records(self) -> Iterator[Record]:
        """Only the records (rejections dropped)."""
        return (item for item in self if isinstance(item, Record))


class FileSource(Source):
    """A source reading one file; its item count is computed once, on first use."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @abstractmethod
    def count_items(self) -> int:
        """Items the file yields (records + rejections), counted as cheaply as possible."""

    @cached_property
    def estimated_total(self) -> int:  # type: ignore[override]
        return self.count_items()


class IdFactory:
    """``deterministic_id(*prefix, *rest)`` with the prefix hashed once (for hot loops).

    ``IdFactory("a", "b")(1) == deterministic_id("a", "b", 1)``, only faster.
    """

    def __init__(self, *prefix: object) -> None:
        self._hash = hashlib.sha256("|".join(str(p) for p in prefix).encode())
        self._sep = "|" if prefix else ""

    def __call__(self, *rest: object) -> str:
        h = self._hash.copy()
        h.update((self._sep + "|".join(str(p) for p in rest)).encode())
        d = h.hexdigest()
        return f"{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:32]}"


def reason_category(reason: str) -> str:
    """The category of a rejection reason: the text before the first colon."""
    return reason.split(":", 1)[0].strip()


def validation_reason(exc: ValidationError) -> str:
    """A short ``invalid event: field msg; ...`` reason from a pydantic error."""
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'event'} {err['msg']}" for err in exc.errors()
    ]
    return "invalid event: " + "; ".join(parts)[:300]


def open_text(path: Path, encoding: str = "utf-8-sig") -> io.TextIOWrapper:
    """Open a text file for the csv module, transparently decompressing ``.gz``."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")  # noqa: SIM115


def read_head(path: Path, lines: int = 20) -> list[str]:
    """The first ``lines`` lines of a (possibly gzipped) text file, decoding leniently."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        head = [handle.readline() for _ in range(lines)]
    return [raw.decode("utf-8-sig", errors="replace").rstrip("\r\n") for raw in head if raw]
