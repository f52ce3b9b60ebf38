"""Per-partition stream processors: what a domain does with its accepted events beyond storing
observations (online models, drift statistics, triggers).

A processor owns the state of ONE partition. The stream adapter pickles it into the partition's
checkpoint (with its ``STATE_VERSION``) in the same transaction as the observations and the
offset, and restores it on (re)assignment, so state moves with the partition and a crash never
applies an event twice. A state of another version is never unpickled (:meth:`restore`).

What readers need of a processor (drift statistics, running scores) is not in the pickle: it
comes from :meth:`PartitionProcessor.statistics` as plain data, and the adapter stores it as
rows (``stream_statistics``) in the same transaction, changed rows only
(:func:`statistics_change`).
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ml.observations import ObservationKey
from ml.registry.entities import (
    ForecastRow,
    ProcessorState,
    StatisticKey,
    StatisticsChange,
    plain,
)
from schemas.events import BaseEvent, DriftEvent, RetrainRequest

__all__ = [
    "ProcessorOutput",
    "PartitionProcessor",
    "UnknownStateVersion",
    "statistics_change",
    "statistics_rows",
]


class UnknownStateVersion(Exception):
    """A stored processor state is of a version this code does not read."""


@dataclass
class ProcessorOutput:
    """What processing a batch produced; ids are deterministic, so a replay yields the same."""

    forecasts: list[ForecastRow] = field(default_factory=list)
    drift_events: list[DriftEvent] = field(default_factory=list)
    retrain_requests: list[RetrainRequest] = field(default_factory=list)
    #: observations that received late events (counted as corrections)
    corrections: list[ObservationKey] = field(default_factory=list)
    #: score-history rows (running metrics of the online models; the adapter adds each row's
    #: ``partition``, :meth:`from_partition`)
    scores: list[dict[str, Any]] = field(default_factory=list)

    def from_partition(self, partition: int) -> ProcessorOutput:
        """Mark the score rows as this partition's (a row naming its partition keeps it), so
        readers can merge the partitions' running scores; returns ``self``."""
        for row in self.scores:
            row.setdefault("partition", partition)
        return self

    def extend(self, other: ProcessorOutput) -> None:
        self.forecasts.extend(other.forecasts)
        self.drift_events.extend(other.drift_events)
        self.retrain_requests.extend(other.retrain_requests)
        self.corrections.extend(other.corrections)
        self.scores.extend(other.scores)


class PartitionProcessor(ABC):
    """State and logic of one partition of a domain's input topic."""

    #: format version of the pickled state: bump it whenever the state's classes change in a
    #: way an older pickle would not restore correctly (older states are then rebuilt)
    STATE_VERSION: int = 1

    #: the domain model version this processor's references and baselines belong to
    model_version: str | None = None

    @abstractmethod
    def process(self, events: Sequence[BaseEvent]) -> ProcessorOutput:
        """Apply accepted events, in offset order."""

    def use_model(self, version: str | None, at: datetime) -> None:
        """A new version went live at ``at``: start new reference windows and baselines."""
        self.model_version = version

    def update_configs(self, configs: Sequence[Any]) -> None:
        """The domain's stored model configs changed (domains without configs ignore it)."""
        return None

    def statistics(self) -> dict[str, dict[str, Any]]:
        """Current statistics as plain data: scope -> statistic name -> JSON-able value (drift
        statistics, running scores). Stored as rows with each batch; the API reads them."""
        return {}

    def statistics_stamp(self) -> Hashable | None:
        """A cheap value that changes whenever :meth:`statistics` would (None: unknown, the
        adapter reads :meth:`statistics` after every batch)."""
        return None

    def dumps(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    def state(self) -> ProcessorState:
        """The pickled state with its format version (what a checkpoint stores)."""
        return ProcessorState(self.STATE_VERSION, self.dumps())

    @classmethod
    def restore(cls, state: ProcessorState) -> PartitionProcessor:
        """The processor of a stored ``state``; :class:`UnknownStateVersion` (nothing is
        unpickled) unless it was written in this class's ``STATE_VERSION``."""
        if state.version != cls.STATE_VERSION:
            raise UnknownStateVersion(
                f"stored {cls.__name__} state is version {state.version}, "
                f"this code reads version {cls.STATE_VERSION}"
            )
        processor = cls.loads(state.blob)
        if not isinstance(processor, cls):
            raise TypeError(f"checkpoint holds a {type(processor).__name__}, not a {cls.__name__}")
        return processor

    @staticmethod
    def loads(blob: bytes) -> PartitionProcessor:
        processor = pickle.loads(blob)  # noqa: S301 - our own checkpoint, written by dumps()
        if not isinstance(processor, PartitionProcessor):
            raise TypeError(f"checkpoint holds a {type(processor).__name__}")
        return processor


def statistics_rows(processor: PartitionProcessor) -> dict[StatisticKey, Any]:
    """The processor's statistics by (scope, name), JSON-safe (non-finite floats are None)."""
    return {
        (str(scope), str(name)): plain(value)
        for scope, named in processor.statistics().items()
        for name, value in named.items()
    }


def statistics_change(
    domain: str, stored: dict[StatisticKey, Any] | None, current: dict[StatisticKey, Any]
) -> StatisticsChange | None:
    """What to write so the stored rows (``stored``; None: unknown, replace them all) become
    ``current``; None when nothing changed."""
    if stored is None:
        return StatisticsChange(domain, current, replace=True)
    values = {k: v for k, v in current.items() if k not in stored or stored[k] != v}
    removed = frozenset(stored.keys() - current.keys())
    if not values and not removed:
        return None
    return StatisticsChange(domain, values, removed)
