"""The demand domain's shared vocabulary: segments, their parent levels, forecast points and
what one contract counts for. Everything demand (online model, monthly books, forecast books,
observations, the API) uses these, so a level or a count means the same thing everywhere.

A segment is ``(vehicle_type, brand, model, line)``, or ``(market, vehicle_type, brand, model,
line)`` when its events name a market (several markets in one deployment). Its parents, nearest
first (:func:`parent_levels`): without a market ``brand_model``, ``brand``, ``vehicle_type``;
with one ``brand_model`` and ``brand`` within the market, ``market`` (the market's total of the
vehicle type) and ``global`` (the vehicle type in every market, and without one).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import NamedTuple

from ml.aggregates import FieldStats
from schemas.events import ContractType, SaleContractEvent

__all__ = [
    "GLOBAL",
    "MARKET_PARENT_LEVELS",
    "NO_PARENT",
    "PARENT_LEVELS",
    "ForecastPoint",
    "Parent",
    "Segment",
    "contract_fields",
    "contract_stats",
    "parent_levels",
    "segment_parts",
]

#: ``(vehicle_type, brand, model, line)`` or ``(market, vehicle_type, brand, model, line)``,
#: upper case (``SaleContractEvent.segment``).
Segment = tuple[str, ...]
#: A parent level's key: the parts its segments share.
Parent = tuple[str, ...]
#: Parts of a segment key without / with a market.
SEGMENT_PARTS = 4
MARKET_SEGMENT_PARTS = 5

#: A segment's parent levels without a market, nearest first: ``(fallback_level, key parts
#: kept)``. The level names are what forecasts (stored and served) report in
#: ``fallback_level`` when a parent answered for a segment (None: the segment itself answered).
PARENT_LEVELS: tuple[tuple[str, int], ...] = (
    ("brand_model", 3),
    ("brand", 2),
    ("vehicle_type", 1),
)
#: The same for a segment with a market (first part): within the market, then ``global``
#: (see :func:`parent_levels`; its key is not a prefix, so it has no parts count here).
MARKET_PARENT_LEVELS: tuple[tuple[str, int], ...] = (
    ("brand_model", 4),
    ("brand", 3),
    ("market", 2),
)
#: ``fallback_level`` of the vehicle type over every market (a market segment's last parent).
GLOBAL = "global"
#: ``fallback_level`` of a forecast no level could make (a cold segment without a warm parent).
NO_PARENT = "none"


def segment_parts(segment: Sequence[str]) -> Segment:
    """``segment`` as a tuple, checked: 4 parts, or 5 with the market first (ValueError)."""
    parts = tuple(segment)
    if len(parts) not in (SEGMENT_PARTS, MARKET_SEGMENT_PARTS):
        raise ValueError(
            "segment must be (vehicle_type, brand, model, line) or "
            f"(market, vehicle_type, brand, model, line), got {parts}"
        )
    return parts


def parent_levels(segment: Segment) -> tuple[tuple[str, Parent], ...]:
    """``segment``'s parents, nearest first: ``(fallback_level, parent key)``. A market
    segment's last parent, ``global``, is its vehicle type ``(vehicle_type,)`` over every
    market: the same node as the ``vehicle_type`` parent of segments without a market."""
    if len(segment) == MARKET_SEGMENT_PARTS:
        within = tuple((name, segment[:keep]) for name, keep in MARKET_PARENT_LEVELS)
        return (*within, (GLOBAL, segment[1:2]))
    return tuple((name, segment[:keep]) for name, keep in PARENT_LEVELS)


def market_of(series_key: str) -> str:
    """The market of a stored series key (``""`` for a key without one)."""
    parts = series_key.split("|")
    return parts[0] if len(parts) == MARKET_SEGMENT_PARTS else ""


class ForecastPoint(NamedTuple):
    """One month of a forecast: the point value and its interval."""

    month: date
    value: float
    lower: float
    upper: float


def contract_fields(event: SaleContractEvent) -> dict[str, float]:
    """What one unit of a contract adds to its segment's month: ``sales`` (a SALE) or
    ``purchases`` (a PURCHASE) counts 1, and its price, ``sale_price`` or ``purchase_price``,
    when known (:func:`contract_stats` counts the event's ``quantity`` of them)."""
    if event.contract_type == ContractType.SALE:
        count, price_name, price = "sales", "sale_price", event.sale_price
    else:
        count, price_name, price = "purchases", "purchase_price", event.purchase_price
    fields = {count: 1.0}
    if price is not None:
        fields[price_name] = float(price)
    return fields


def contract_stats(event: SaleContractEvent) -> dict[str, FieldStats]:
    """What the event adds to its segment's month: :func:`contract_fields` counted
    ``quantity`` times, so one event of quantity q counts as q events of quantity 1."""
    quantity = event.quantity
    return {name: FieldStats.of(value, quantity) for name, value in contract_fields(event).items()}
