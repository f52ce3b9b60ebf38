"""The demand domain's shared vocabulary: segments, their parent levels, forecast points and
what one contract counts for. Everything demand (online model, monthly books, forecast books,
observations, the API) uses these, so a level or a count means the same thing everywhere.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from schemas.events import ContractType, SaleContractEvent

__all__ = [
    "NO_PARENT",
    "PARENT_LEVELS",
    "ForecastPoint",
    "Segment",
    "contract_fields",
]

#: ``(vehicle_type, brand, model, line)``, upper case (``SaleContractEvent.segment``).
Segment = tuple[str, str, str, str]

#: A segment's parent levels, nearest first: ``(fallback_level, key parts kept)``. The level
#: names are what forecasts (stored and served) report in ``fallback_level`` when a parent
#: answered for a segment (None: the segment itself answered).
PARENT_LEVELS: tuple[tuple[str, int], ...] = (
    ("brand_model", 3),
    ("brand", 2),
    ("vehicle_type", 1),
)
#: ``fallback_level`` of a forecast no level could make (a cold segment without a warm parent).
NO_PARENT = "none"


class ForecastPoint(NamedTuple):
    """One month of a forecast: the point value and its interval."""

    month: date
    value: float
    lower: float
    upper: float


def contract_fields(event: SaleContractEvent) -> dict[str, float]:
    """What one contract adds to its segment's month: ``sales`` (a SALE) or ``purchases`` (a
    PURCHASE) counts 1, and its price, ``sale_price`` or ``purchase_price``, when known."""
    if event.contract_type == ContractType.SALE:
        count, price_name, price = "sales", "sale_price", event.sale_price
    else:
        count, price_name, price = "purchases", "purchase_price", event.purchase_price
    fields = {count: 1.0}
    if price is not None:
        fields[price_name] = float(price)
    return fields
