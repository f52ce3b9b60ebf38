"""Importer for the Irish 5G dataset (Raca et al., MMSys 2020) -> network measurement events.

One event per CSV row (``.csv`` or ``.csv.gz``, streamed row by row with the csv module, never
loaded whole), keyed by ``cell_id`` = ``CellID``. Empty cells, ``-`` and the ``2147483647``
"no value" marker (found in ``NRxRSRQ``, written ``2147483647.0``) become ``None``, never zero.

``Timestamp`` is ``YYYY-MM-DD HH:MM:SS`` local time without offset. The traces were recorded in
Ireland between 2019-11-20 and 2020-02-27, entirely within Irish winter time (GMT, UTC+0), so
the value is **interpreted as UTC**; a timestamp that carries an explicit offset keeps it.

Rows without a CellID or timestamp, with an unparsable timestamp or number, or whose every
measurement is invalid are rejected with the reason. A row with some invalid values (out of
their physical range, e.g. an RSRP of -200 dBm or a negative bit rate; see
:class:`~schemas.events.NetworkMeasurementEvent`) is published as it is, with those values
named in :attr:`Record.dropped`: the worker drops them, keeps the rest, and counts them.
Event ids hash (file name, line number), so a replay of the same file yields the same ids.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from millrace.importers.base import (
    FileSource,
    IdFactory,
    Record,
    Rejected,
    open_text,
    validation_reason,
)
from ml.salvage import NothingValid, validate_keeping_fields
from schemas.events import NetworkMeasurementEvent

__all__ = ["Irish5GSource", "SENTINEL", "count_rows", "is_irish5g_header", "parse_measure"]

SOURCE_NAME = "irish_5g"
SENTINEL = 2147483647.0
_MISSING = frozenset({"", "-", "na", "nan", "null", "none"})

#: event field -> CSV column
NUMERIC_COLUMNS = {
    "rsrp": "RSRP",
    "rsrq": "RSRQ",
    "snr": "SNR",
    "cqi": "CQI",
    "rssi": "RSSI",
    "dl_bitrate": "DL_bitrate",
    "ul_bitrate": "UL_bitrate",
    "ping_avg": "PINGAVG",
    "ping_min": "PINGMIN",
    "ping_max": "PINGMAX",
    "ping_stdev": "PINGSTDEV",
    "ping_loss": "PINGLOSS",
    "nr_rsrp": "NRxRSRP",
    "nr_rsrq": "NRxRSRQ",
    "speed": "Speed",
    "latitude": "Latitude",
    "longitude": "Longitude",
}
TEXT_COLUMNS = {"network_mode": "NetworkMode", "operator": "Operatorname", "trace": "trace"}
REQUIRED_COLUMNS = ("Timestamp", "CellID")


def is_irish5g_header(line: str) -> bool:
    """True if a CSV header line has the dataset's identifying columns."""
    cells = {c.strip() for c in next(csv.reader([line]), [])}
    return {"Timestamp", "CellID", "RSRP", "DL_bitrate"} <= cells


def parse_measure(text: str) -> float | None:
    """A measurement, ``None`` for empty / ``-`` / NaN / the 2147483647 marker; ``ValueError``
    if the text is not a number."""
    text = text.strip()
    if text.lower() in _MISSING:
        return None
    value = float(text)
    if value != value or abs(value) >= SENTINEL:  # NaN, inf, the int32-max marker
        return None
    return value


def _parse_timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip())
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def count_rows(path: Path | str) -> int:
    """Data rows in the file, by counting newlines of the (decompressed) bytes; no parsing."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    lines, last = 0, b"\n"
    with opener(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return max(0, lines + (last != b"\n") - 1)


def _by_time(rows: Iterator[tuple[int, list[str]]], ts_at: int) -> list[tuple[int, list[str]]]:
    """Rows sorted by timestamp (stable; unparsable timestamps first, to be rejected)."""

    def key(item: tuple[int, list[str]]) -> tuple[int, float, int]:
        cells = item[1]
        stamp = cells[ts_at].strip() if len(cells) > ts_at else ""
        try:
            return (1, _parse_timestamp(stamp).timestamp(), item[0])
        except ValueError:
            return (0, 0.0, item[0])

    return sorted(rows, key=key)


class Irish5GSource(FileSource):
    """Rows of one Irish 5G traces file as :class:`NetworkMeasurementEvent` records."""

    name = SOURCE_NAME

    def __init__(self, path: Path | str, by_time: bool = False) -> None:
        """``by_time``: yield rows ordered by their timestamp (the file is ordered by trace, so
        in file order most rows would arrive after their cell's window closed). Event ids
        stay those of the file's line numbers either way."""
        super().__init__(path)
        self.by_time = by_time
        self.time_ordered = by_time

    def count_items(self) -> int:
        return count_rows(self.path)

    def __iter__(self) -> Iterator[Record | Rejected]:
        make_id = IdFactory(SOURCE_NAME, self.path.name)
        with open_text(self.path) as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise ValueError(f"{self.path}: not an Irish 5G traces file (no {missing})")
            pos = {name: i for i, name in enumerate(header)}
            numeric = [(f, pos[c]) for f, c in NUMERIC_COLUMNS.items() if c in pos]
            text = [(f, pos[c]) for f, c in TEXT_COLUMNS.items() if c in pos]
            ts_at, cell_at, width = pos["Timestamp"], pos["CellID"], len(header)
            rows = ((reader.line_num, cells) for cells in reader)
            if self.by_time:
                rows = iter(_by_time(rows, ts_at))
            for line, cells in rows:
                if len(cells) < width:
                    if not any(cells):
                        continue
                    cells = cells + [""] * (width - len(cells))
                yield self._convert(line, cells, ts_at, cell_at, numeric, text, make_id)

    @staticmethod
    def _convert(
        line: int,
        cells: list[str],
        ts_at: int,
        cell_at: int,
        numeric: list[tuple[str, int]],
        text: list[tuple[str, int]],
        make_id: IdFactory,
    ) -> Record | Rejected:
        cell_id = cells[cell_at].strip()
        if cell_id in _MISSING:
            return Rejected(line, "missing cell id")
        stamp = cells[ts_at]
        if stamp.strip() in _MISSING:
            return Rejected(line, "missing timestamp")
        try:
            occurred_at = _parse_timestamp(stamp)
        except ValueError:
            return Rejected(line, f"bad timestamp: {stamp!r}")
        fields: dict[str, object] = {}
        for name, i in numeric:
            try:
                fields[name] = parse_measure(cells[i])
            except ValueError:
                return Rejected(line, f"bad number: {name}={cells[i]!r}")
        for name, i in text:
            value = cells[i].strip()
            fields[name] = None if value in _MISSING else value
        data = {"event_id": make_id(line), "occurred_at": occurred_at, "cell_id": cell_id}
        try:
            event, dropped = validate_keeping_fields(NetworkMeasurementEvent, {**data, **fields})
        except ValidationError as exc:
            return Rejected(line, validation_reason(exc))
        except NothingValid as exc:
            return Rejected(line, f"invalid event: {exc}"[:300])
        if dropped:  # published as read: the worker drops and counts them
            event = event.model_copy(update={d.field: fields[d.field] for d in dropped})
        return Record("topic_network", cell_id, event, row=line, dropped=tuple(dropped))
