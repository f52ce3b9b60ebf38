"""5G/LTE network: measurements aggregated per cell into fixed event-time windows."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from ml.aggregates import FieldStats
from ml.domains.base import Domain, TrainerContext, TrainerHooks
from ml.observations import ObservationDelta
from ml.periods import index_start, window_index
from schemas.events import BaseEvent, NetworkMeasurementEvent

if TYPE_CHECKING:
    from ml.streaming import PartitionProcessor
    from ml.training.base import DomainTrainer

__all__ = ["NetworkDomain"]


class NetworkDomain(Domain):
    """Observations: per cell and window, statistics of every measured field; missing values
    are simply not counted (a field's ``count`` can be lower than the window's ``n_events``)."""

    name: ClassVar[str] = "network"
    topic_setting: ClassVar[str] = "topic_network"
    event_model: ClassVar[type[BaseEvent]] = NetworkMeasurementEvent

    def __init__(self, window_seconds: int = 60) -> None:
        self.window_seconds = window_seconds
        #: (window index, its start) of the last event observed
        self._last_window: tuple[int, datetime] | None = None

    def key(self, event: BaseEvent) -> str:
        assert isinstance(event, NetworkMeasurementEvent)
        return event.cell_id

    def configure(self, settings: object) -> NetworkDomain:
        """The window length from ``NETWORK_WINDOW_SECONDS``."""
        return type(self)(
            window_seconds=int(getattr(settings, "network_window_seconds", self.window_seconds))
        )

    def seed(self, store: object) -> int:
        """The shipped model configs, stored at the first start (none is re-added later)."""
        from ml.network.configs import DEFAULT_CONFIGS

        return store.network.seed_configs(list(DEFAULT_CONFIGS))  # type: ignore[attr-defined]

    def trainer_hooks(self, context: TrainerContext) -> TrainerHooks:
        """The network commands and the per-field monitor (:mod:`ml.network.hooks`)."""
        from ml.network.hooks import NetworkTrainerHooks

        return NetworkTrainerHooks(context, base_window_seconds=self.window_seconds)

    def partition_processor(self, settings: object) -> PartitionProcessor:
        """Online models of the default configs; the stream worker swaps in the stored
        configs (``update_configs``) before the first batch and whenever they change."""
        from ml.network.processor import NetworkProcessor

        return NetworkProcessor.from_settings(settings)

    def trainer(self, scope: str = "global", store: object | None = None) -> DomainTrainer:
        """The trainer of a config id or an output field, from the stored configs."""
        from ml.network.configs import DEFAULT_CONFIGS
        from ml.network.training import NetworkTrainer

        configs = list(DEFAULT_CONFIGS)
        if store is not None:
            configs = store.network.live_configs() or configs  # type: ignore[attr-defined]
        return NetworkTrainer.for_scope(scope, configs, base_window_seconds=self.window_seconds)

    def model_configs(self, store: object) -> list | None:
        """The live stored configs; None before any was stored (the defaults stay)."""
        registry = store.network  # type: ignore[attr-defined]
        if not registry.configs(include_deleted=True):
            return None
        return registry.live_configs()

    def observe(self, event: BaseEvent) -> list[ObservationDelta]:
        assert isinstance(event, NetworkMeasurementEvent)
        fields = {name: FieldStats.of(v) for name, v in event.measurements().items()}
        seconds = self.window_seconds
        index = window_index(event.occurred_at, seconds)
        last = self._last_window
        if last is None or last[0] != index:  # events come in runs of one window
            last = self._last_window = (index, index_start(index, seconds))
        return [ObservationDelta(self.name, event.cell_id, last[1], 1, fields)]
