"""The Domain ABC: the one interface the stream, trainer and API use for every domain."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from ml.observations import ObservationDelta

if TYPE_CHECKING:  # the training stack (pandas, lightgbm) is imported only by the trainer
    from ml.streaming import PartitionProcessor
    from ml.training.base import DomainTrainer
from schemas.events import BaseEvent

__all__ = ["Domain"]


class Domain(ABC):
    """A family of events and the models learnt from them."""

    #: Short stable name (``demand``, ``network``); also the ``domain`` of retrain requests.
    name: ClassVar[str]
    #: Name of the :class:`millrace.settings.Settings` attribute holding the input topic.
    topic_setting: ClassVar[str]
    #: The pydantic model of the input event.
    event_model: ClassVar[type[BaseEvent]]
    #: Major version of the domain's schema (the ``major`` in model versions).
    schema_major: ClassVar[int] = 1

    @abstractmethod
    def key(self, event: BaseEvent) -> str:
        """The Kafka message key (routes all events of one series to one partition)."""

    @abstractmethod
    def observe(self, event: BaseEvent) -> list[ObservationDelta]:
        """What this event adds to the stored observations."""

    def partition_processor(self, settings: object) -> PartitionProcessor | None:
        """A fresh processor for one partition (None: the domain only stores observations).

        ``settings`` is the process configuration (read by attribute, e.g. thresholds)."""
        return None

    def model_scope(self, scope: str) -> str:
        """The model scope a retrain request for ``scope`` trains (identity by default)."""
        return scope

    def trainer(self, scope: str = "global", store: object | None = None) -> DomainTrainer | None:
        """The batch trainer of ``scope`` (None: no batch training). ``store`` is the registry
        the job runs against (a domain may read its model configs there)."""
        return None

    def model_configs(self, store: object) -> list | None:
        """The domain's stored model configs for the stream (None: it has none to follow)."""
        return None

    def parse(self, payload: bytes | str | dict) -> BaseEvent:
        """Validate a payload into the domain's event (raises pydantic ``ValidationError``)."""
        if isinstance(payload, dict):
            return self.event_model.model_validate(payload)
        return self.event_model.model_validate_json(payload)
