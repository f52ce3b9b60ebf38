"""Importer for the dealership "contract report" export (Spanish headers) -> sale contract events.

The export may start with title lines (report name, period ...) before the header row; the header
row is the first row that has a ``Tipo de contrato`` cell. Columns are matched by header name, so
their order does not matter. The delimiter (``,``, ``;`` or tab) is taken from the header row and
the encoding is UTF-8 (with or without BOM), falling back to Windows-1252 for Excel exports.

Mapping (one event per contract):

* ``Tipo de contrato``: ``Venta`` -> SALE, ``Compra`` -> PURCHASE.
* ``Tipo de vehículo``: ``Automóvil`` -> CAR, ``Motocicleta`` -> MOTORCYCLE (accents and case
  are ignored; ``carro``/``moto`` are accepted too).
* brand / model / line from ``Marca`` / ``Modelo`` / ``Línea del vehículo``; plate, payment method
  and contract status are copied as they are.
* prices from ``Precio de compra`` / ``Precio de venta``; ``45.000.000``, ``45000000.0``,
  ``$ 45,000,000`` and ``45.000.000,50`` are all understood; an empty price is ``None``.
* ``occurred_at`` from ``Fecha de creación`` (``dd/mm/YYYY HH:MM``, seconds optional). The export
  carries no timezone: the value is **interpreted as UTC**.

Bad rows (unknown contract or vehicle type, unparsable date, negative or garbled price, missing
brand or model ...) become :class:`~millrace.importers.base.Rejected`, never exceptions.

Event ids hash the identifying fields of the contract (type, client document, plate, creation
time, and the occurrence number of that combination in the file), so the same contract found in
two overlapping exports gets the same id.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from millrace.importers.base import FileSource, Record, Rejected, validation_reason
from schemas.events import ContractType, SaleContractEvent, VehicleType, deterministic_id

__all__ = [
    "DealershipSource",
    "HEADER_MARKER",
    "is_dealership_header",
    "parse_contract_date",
    "parse_price",
]

SOURCE_NAME = "dealership"
HEADER_MARKER = "Tipo de contrato"

COLUMNS = {
    "contract_type": "tipo de contrato",
    "status": "estado del contrato",
    "document": "documento del cliente",
    "brand": "marca del vehiculo",
    "model": "modelo del vehiculo",
    "line": "linea del vehiculo",
    "plate": "placa del vehiculo",
    "vehicle_type": "tipo de vehiculo",
    "purchase_price": "precio de compra",
    "sale_price": "precio de venta",
    "payment": "metodo de pago",
    "created": "fecha de creacion",
}
REQUIRED = ("contract_type", "brand", "model", "vehicle_type", "created")

CONTRACT_TYPES = {"venta": ContractType.SALE, "compra": ContractType.PURCHASE}
VEHICLE_TYPES = {
    "automovil": VehicleType.CAR,
    "carro": VehicleType.CAR,
    "auto": VehicleType.CAR,
    "motocicleta": VehicleType.MOTORCYCLE,
    "moto": VehicleType.MOTORCYCLE,
}
DATE_FORMATS = ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S")
_CURRENCY = re.compile(r"(?i)\$|cop|\s|\u00a0")
_NUMBER = re.compile(r"\d+(\.\d+)?")


def _norm(text: str) -> str:
    """Lower case, accents removed, surrounding whitespace stripped."""
    decomposed = unicodedata.normalize("NFKD", text.strip().lstrip("\ufeff"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def is_dealership_header(cells: list[str]) -> bool:
    """True if a CSV row is the header row of the contract report."""
    return any(_norm(cell) == "tipo de contrato" for cell in cells)


def parse_price(text: str) -> float | None:
    """A price as a float, ``None`` if empty; ``ValueError`` if garbled or negative.

    A single separator followed by exactly three digits is a thousands separator (``45.000``);
    with both ``.`` and ``,`` present the last one is the decimal separator.
    """
    raw = _CURRENCY.sub("", text)
    if not raw:
        return None
    negative = raw.startswith("-") or (raw.startswith("(") and raw.endswith(")"))
    raw = raw.strip("-()")
    if "." in raw and "," in raw:
        decimal = "." if raw.rfind(".") > raw.rfind(",") else ","
        raw = raw.replace("," if decimal == "." else ".", "").replace(",", ".")
    elif "," in raw or "." in raw:
        sep = "," if "," in raw else "."
        parts = raw.split(sep)
        if len(parts) > 2 or len(parts[-1]) == 3:
            raw = raw.replace(sep, "")
        else:
            raw = raw.replace(sep, ".")
    if not _NUMBER.fullmatch(raw):
        raise ValueError(f"bad price: {text!r}")
    if negative:
        raise ValueError(f"negative price: {text!r}")
    return float(raw)


def parse_contract_date(text: str) -> datetime:
    """``dd/mm/YYYY HH:MM[:SS]`` interpreted as UTC; ``ValueError`` if unparsable."""
    value = text.strip()
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"bad date: {text!r}")


def _detect_encoding(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig") as handle:
            while handle.read(1 << 20):
                pass
        return "utf-8-sig"
    except UnicodeDecodeError:
        return "cp1252"


def _detect_delimiter(path: Path, encoding: str) -> str:
    with open(path, encoding=encoding) as handle:
        for _, line in zip(range(50), handle, strict=False):
            if _norm(HEADER_MARKER) in _norm(line):
                return max((",", ";", "\t"), key=line.count)
    return ","


class DealershipSource(FileSource):
    """Contracts of one dealership report CSV as :class:`SaleContractEvent` records."""

    name = SOURCE_NAME

    def count_items(self) -> int:
        """Number of data rows (counted without parsing them)."""
        return sum(1 for _ in self._rows())

    def _rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """(line number, {column key: cell}) for every data row after the header row."""
        encoding = _detect_encoding(self.path)
        delimiter = _detect_delimiter(self.path, encoding)
        with open(self.path, encoding=encoding, newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            index: dict[str, int] | None = None
            for cells in reader:
                if index is None:
                    if is_dealership_header(cells):
                        names = {_norm(c): i for i, c in enumerate(cells)}
                        index = {k: names[v] for k, v in COLUMNS.items() if v in names}
                    continue
                if not any(c.strip() for c in cells):
                    continue
                row = {k: (cells[i].strip() if i < len(cells) else "") for k, i in index.items()}
                yield reader.line_num, row
            if index is None:
                raise ValueError(f"{self.path}: no header row with {HEADER_MARKER!r} found")

    def __iter__(self) -> Iterator[Record | Rejected]:
        seen: Counter[tuple[str, ...]] = Counter()
        for line, row in self._rows():
            yield self._convert(line, row, seen)

    def _convert(
        self, line: int, row: dict[str, str], seen: Counter[tuple[str, ...]]
    ) -> Record | Rejected:
        missing = [k for k in REQUIRED if not row.get(k)]
        if missing:
            return Rejected(line, "missing " + ", ".join(k.replace("_", " ") for k in missing))
        contract_type = CONTRACT_TYPES.get(_norm(row["contract_type"]))
        if contract_type is None:
            return Rejected(line, f"unknown contract type: {row['contract_type']!r}")
        vehicle_type = VEHICLE_TYPES.get(_norm(row["vehicle_type"]))
        if vehicle_type is None:
            return Rejected(line, f"unknown vehicle type: {row['vehicle_type']!r}")
        try:
            occurred_at = parse_contract_date(row["created"])
            purchase_price = parse_price(row.get("purchase_price", ""))
            sale_price = parse_price(row.get("sale_price", ""))
        except ValueError as exc:
            return Rejected(line, str(exc))
        identity = (
            row["contract_type"],
            row.get("document", ""),
            row.get("plate", ""),
            row["created"],
        )
        seen[identity] += 1
        try:
            event = SaleContractEvent(
                event_id=deterministic_id(SOURCE_NAME, *identity, seen[identity]),
                occurred_at=occurred_at,
                contract_type=contract_type,
                vehicle_type=vehicle_type,
                brand=row["brand"],
                model=row["model"],
                line=row.get("line", ""),
                sale_price=sale_price,
                purchase_price=purchase_price,
                contract_status=row.get("status") or None,
                payment_method=row.get("payment") or None,
                plate=row.get("plate") or None,
                source=SOURCE_NAME,
            )
        except ValidationError as exc:
            return Rejected(line, validation_reason(exc))
        return Record("topic_sales", event.segment_key, event, row=line)
