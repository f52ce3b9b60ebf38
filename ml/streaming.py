"""Per-partition stream processors: what a domain does with its accepted events beyond storing
observations (online models, drift statistics, triggers).

A processor owns the state of ONE partition. The stream adapter pickles it into the partition's
checkpoint in the same transaction as the observations and the offset, and restores it on
(re)assignment, so state moves with the partition and a crash never applies an event twice.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ml.observations import ObservationKey
from ml.registry.entities import ForecastRow
from schemas.events import BaseEvent, DriftEvent, RetrainRequest

__all__ = ["ProcessorOutput", "PartitionProcessor"]


@dataclass
class ProcessorOutput:
    """What processing a batch produced; ids are deterministic, so a replay yields the same."""

    forecasts: list[ForecastRow] = field(default_factory=list)
    drift_events: list[DriftEvent] = field(default_factory=list)
    retrain_requests: list[RetrainRequest] = field(default_factory=list)
    #: observations that received late events (counted as corrections)
    corrections: list[ObservationKey] = field(default_factory=list)
    #: score-history rows (running metrics of the online model)
    scores: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: ProcessorOutput) -> None:
        self.forecasts.extend(other.forecasts)
        self.drift_events.extend(other.drift_events)
        self.retrain_requests.extend(other.retrain_requests)
        self.corrections.extend(other.corrections)
        self.scores.extend(other.scores)


class PartitionProcessor(ABC):
    """State and logic of one partition of a domain's input topic."""

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

    def drift_statistics(self) -> dict[str, Any]:
        """Current drift statistics by scope (read by the API from the checkpoints)."""
        return {}

    def dumps(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def loads(blob: bytes) -> PartitionProcessor:
        processor = pickle.loads(blob)  # noqa: S301 - our own checkpoint, written by dumps()
        if not isinstance(processor, PartitionProcessor):
            raise TypeError(f"checkpoint holds a {type(processor).__name__}")
        return processor
