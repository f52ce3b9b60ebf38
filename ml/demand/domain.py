"""Vehicle demand: sale/purchase contracts counted per segment per calendar month."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from ml.demand.segments import contract_stats
from ml.domains.base import Domain
from ml.observations import ObservationDelta
from ml.periods import month_start

if TYPE_CHECKING:
    from ml.streaming import PartitionProcessor
    from ml.training.base import DomainTrainer
from schemas.events import BaseEvent, SaleContractEvent

__all__ = ["DemandDomain"]


class DemandDomain(Domain):
    """Observations: per segment ([market|]vehicle_type|brand|model|line) and month of
    ``occurred_at``: ``sales`` and ``purchases`` (counts), ``sale_price`` and
    ``purchase_price`` (statistics). An event of ``quantity`` q counts as q events of quantity
    1 (``n_events`` included: it counts vehicles), so a count feed and a unit feed store the
    same observations."""

    name: ClassVar[str] = "demand"
    topic_setting: ClassVar[str] = "topic_sales"
    event_model: ClassVar[type[BaseEvent]] = SaleContractEvent

    def key(self, event: BaseEvent) -> str:
        assert isinstance(event, SaleContractEvent)
        return event.segment_key

    def partition_processor(self, settings: object) -> PartitionProcessor:
        from ml.demand.processor import DemandProcessor

        return DemandProcessor.from_settings(settings)

    def model_scope(self, scope: str) -> str:
        """One model serves every segment: segment scopes map to ``global``."""
        return "global"

    def trainer(self, scope: str = "global", store: object | None = None) -> DomainTrainer:
        from ml.demand.training import DemandTrainer

        return DemandTrainer()

    def forecast_book(self) -> Callable[[object, object, str], object]:
        """Every segment's forecasts of a version (:func:`ml.demand.forecast.demand_book`)."""
        return _demand_book

    def observe(self, event: BaseEvent) -> list[ObservationDelta]:
        assert isinstance(event, SaleContractEvent)
        return [
            ObservationDelta(
                self.name,
                event.segment_key,
                month_start(event.occurred_at),
                event.quantity,
                contract_stats(event),
            )
        ]


def _demand_book(store: object, model: object, version: str) -> object:
    """:func:`ml.demand.forecast.demand_book`, imported where the book is built (the API's
    book worker), so the serving process never loads the candidates' libraries."""
    from ml.demand.forecast import demand_book

    return demand_book(store, model, version)
