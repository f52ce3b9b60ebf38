"""Importer for the Norwegian new-car registration counts (OFV) -> SALE count events.

Two layouts are recognised by their header:

* by make (``Year, Month, Make, Quantity, Pct``): model is ``"ALL"``;
* by model (``datetime, Make, Model, Quantity, Pct``; ``datetime`` is ``YYYY-MM-DD``).

Each row with a monthly count Q > 0 becomes **one** SALE event of ``quantity`` Q (vehicle_type
CAR, brand = Make, line ``""``, no prices) at the middle of its calendar month in UTC; the
stream counts it exactly as Q events of quantity 1 (``SaleContractEvent.quantity``). Rows are
published month by month (file order within a month), so the source is sorted by
``occurred_at``. The whole by-make file is 4,367 events instead of 1,347,234. With ``market``
(e.g. ``"NO"``) every event names that market, so several countries share one deployment.

Rows with a missing / ``NA`` make or model, a bad year/month/date, or a quantity that is not a
non-negative integer are rejected. Event ids hash (file name, line number, ``"count"``), so a
replay of the same file yields the same ids.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from millrace.importers.base import (
    FileSource,
    Record,
    Rejected,
    validation_reason,
)
from ml.periods import next_month
from schemas.events import ContractType, SaleContractEvent, VehicleType, deterministic_id

__all__ = [
    "BY_MAKE_HEADER",
    "BY_MODEL_HEADER",
    "NorwaySource",
    "expected_events",
    "is_norway_header",
]

SOURCE_NAME = "norway_ofv"
BY_MAKE_HEADER = ("year", "month", "make", "quantity")
BY_MODEL_HEADER = ("datetime", "make", "model", "quantity")
ALL_MODELS = "ALL"
_MISSING = {"", "na", "nan", "null", "none"}


@dataclass(frozen=True)
class _Row:
    """A valid input row: a month, a segment and a count."""

    line: int
    month: datetime
    make: str
    model: str
    quantity: int


def _header_kind(cells: list[str]) -> str | None:
    names = tuple(c.strip().strip('"').lower() for c in cells)
    if names[:4] == BY_MAKE_HEADER:
        return "make"
    if names[:4] == BY_MODEL_HEADER:
        return "model"
    return None


def is_norway_header(line: str) -> bool:
    """True if a CSV header line is one of the two OFV layouts."""
    return _header_kind(next(csv.reader([line]), [])) is not None


def _month_start(year: str, month: str) -> datetime:
    return datetime(int(year), int(month), 1, tzinfo=UTC)


def _clean(text: str) -> str:
    return text.replace("\u00a0", " ").strip()


def _parse(line: int, cells: dict[str, str], kind: str) -> _Row | Rejected:
    make = _clean(cells.get("make", ""))
    model = _clean(cells.get("model", "")) if kind == "model" else ALL_MODELS
    if make.lower() in _MISSING:
        return Rejected(line, f"missing make: {make!r}")
    if model.lower() in _MISSING:
        return Rejected(line, f"missing model: {model!r}")
    try:
        if kind == "make":
            month = _month_start(cells.get("year", ""), cells.get("month", ""))
        else:
            day = datetime.strptime(cells.get("datetime", "").strip()[:10], "%Y-%m-%d")
            month = _month_start(str(day.year), str(day.month))
    except ValueError:
        return Rejected(
            line, "bad date: " + ",".join(cells.get(k, "") for k in ("year", "month", "datetime"))
        )
    text = cells.get("quantity", "").strip()
    try:
        quantity = int(text)
    except ValueError:
        return Rejected(line, f"bad quantity: {text!r}")
    if quantity < 0:
        return Rejected(line, f"negative quantity: {quantity}")
    return _Row(line, month, make, model, quantity)


def _read(path: Path) -> Iterator[_Row | Rejected]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        kind = _header_kind(header)
        if kind is None:
            raise ValueError(f"{path}: not a Norway OFV sales file (header {header!r})")
        names = [h.strip().lower() for h in header]
        for cells in reader:
            if any(c.strip() for c in cells):
                yield _parse(reader.line_num, dict(zip(names, cells, strict=False)), kind)


def expected_events(path: Path | str) -> int:
    """The number of vehicles the file counts: the sum of valid quantities."""
    return sum(r.quantity for r in _read(Path(path)) if isinstance(r, _Row))


class NorwaySource(FileSource):
    """Monthly OFV counts of one file: one time-ordered SALE event per row, with its quantity.

    ``market``: the market every event names (None: no market level in the segment key)."""

    name = SOURCE_NAME
    time_ordered = True

    def __init__(self, path: Path | str, market: str | None = None) -> None:
        super().__init__(path)
        self.market = market or None

    def count_items(self) -> int:
        """Exactly the number of events (rows with a quantity above 0) plus rejected rows."""
        return sum(1 for r in _read(self.path) if not isinstance(r, _Row) or r.quantity > 0)

    def __iter__(self) -> Iterator[Record | Rejected]:
        parsed = list(_read(self.path))  # a few thousand rows: small
        yield from (r for r in parsed if isinstance(r, Rejected))
        rows = sorted((r for r in parsed if isinstance(r, _Row)), key=lambda r: r.month)
        for row in rows:  # sorted() is stable: file order within a month
            if row.quantity > 0:
                yield self._event(row)

    def _event(self, row: _Row) -> Record | Rejected:
        """The row's count event, at the middle of its month."""
        try:
            event = SaleContractEvent(
                event_id=deterministic_id(SOURCE_NAME, self.path.name, row.line, "count"),
                occurred_at=row.month + (next_month(row.month) - row.month) / 2,
                contract_type=ContractType.SALE,
                vehicle_type=VehicleType.CAR,
                brand=row.make,
                model=row.model,
                line="",
                source=SOURCE_NAME,
                quantity=row.quantity,
                market=self.market,
            )
        except ValidationError as exc:
            return Rejected(row.line, validation_reason(exc))
        return Record("topic_sales", event.segment_key, event, row=row.line)
