"""Importers over the real shared data sets, bad-row handling, determinism and replay."""

from __future__ import annotations

import csv
import gzip
import itertools
from collections import Counter
from pathlib import Path

import pytest

from millrace.importers import (
    DealershipSource,
    Irish5GSource,
    NorwaySource,
    Record,
    Rejected,
    expected_events,
    open_source,
    replay,
)
from millrace.importers.base import IdFactory
from millrace.importers.dealership import parse_price
from millrace.importers.irish5g import count_rows
from millrace.settings import Settings
from ml.periods import month_start, next_month
from schemas.events import deterministic_id

DEALER_HEADER = (
    "Tipo de contrato,Estado del contrato,Documento del cliente,Marca del vehículo,"
    "Modelo del vehículo,Línea del vehículo,Placa del vehículo,Tipo de vehículo,"
    "Precio de compra,Precio de venta,Método de pago,Fecha de creación"
)


class FakeProducer:
    """Collects published messages instead of sending them."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str | None, object]] = []
        self.flushed = 0

    def publish(self, topic: str, key: str | None, event: object) -> None:
        self.messages.append((topic, key, event))

    def flush(self, timeout: float = 30.0) -> int:
        self.flushed += 1
        return 0


def split(items) -> tuple[list[Record], list[Rejected]]:
    records, rejected = [], []
    for item in items:
        (records if isinstance(item, Record) else rejected).append(item)
    return records, rejected


# --- dealership ------------------------------------------------------------------------------
def test_dealership_36m_all_contracts(shared_data: Path) -> None:
    source = DealershipSource(shared_data / "vehicle/sgivu_contracts/contracts_36m.csv")
    records, rejected = split(source)
    # Every one of the 11,756 rows is a clean contract: none rejected.
    assert len(records) + len(rejected) == 11_756 == source.estimated_total
    assert rejected == []
    types = Counter(r.event.contract_type for r in records)
    assert types == {"PURCHASE": 6_580, "SALE": 5_176}
    assert len({r.key for r in records}) == 39  # the README's 39 segments
    assert Counter(r.event.vehicle_type for r in records) == {"MOTORCYCLE": 5_970, "CAR": 5_786}
    first = records[0].event
    assert (first.brand, first.model, first.line, first.plate) == (
        "Yamaha",
        "FZ 2.0",
        "FZN-150",
        "AXI-332",
    )
    assert first.purchase_price == 10512177.31 and first.sale_price == 13038371.95
    assert first.occurred_at.isoformat() == "2026-10-11T20:07:00+00:00"
    assert records[0].key == first.segment_key and records[0].topic_key == "topic_sales"
    assert len({r.event.event_id for r in records}) == 11_756


def test_dealership_sample_with_title_lines(shared_data: Path) -> None:
    path = shared_data / "vehicle/sgivu_contracts/report_export_sample.csv"
    records, rejected = split(open_source(path, by_time=False))  # the file's first row first
    assert len(records) == 10 and rejected == []
    first = records[0].event
    assert first.contract_type == "SALE" and first.vehicle_type == "MOTORCYCLE"
    assert first.sale_price == 20_000_000 and first.purchase_price == 15_000_000
    assert first.payment_method == "Consignación bancaria" and first.plate == "JLP-76H"
    assert Counter(r.event.contract_type for r in records) == {"SALE": 5, "PURCHASE": 5}


def test_dealership_ids_are_deterministic(shared_data: Path) -> None:
    path = shared_data / "vehicle/sgivu_contracts/report_export_sample.csv"
    ids = [[r.event.event_id for r in DealershipSource(path).records()] for _ in range(2)]
    assert ids[0] == ids[1] and len(set(ids[0])) == 10


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("45.000.000", 45e6),
        ("45000000.0", 45e6),
        ("$ 45,000,000", 45e6),
        ("45.000.000,50", 45000000.5),
        ("10512177.31", 10512177.31),
        ("1.500", 1500.0),
        ("", None),
    ],
)
def test_parse_price(text: str, value: float | None) -> None:
    assert parse_price(text) == value


def test_dealership_bad_rows_are_rejected(tmp_path: Path) -> None:
    ok = "Activa,CC 1,Mazda,3 Touring,Skyactiv,ABC-123,Automóvil,45.000.000,$ 55,000,000,Efectivo"
    rows = [
        f"Venta,{ok},01/12/2025 10:00",  # line 4: fine
        f"Alquiler,{ok},01/12/2025 10:00",  # unknown contract type
        f"Venta,{ok.replace('Automóvil', 'Barco')},01/12/2025 10:00",  # unknown vehicle type
        f"Venta,{ok},2025-12-01",  # bad date
        f"Compra,{ok.replace('45.000.000', '-5')},01/12/2025 10:00",  # negative price
        f"Compra,{ok.replace('45.000.000', 'abc')},01/12/2025 10:00",  # garbled price
        f"Compra,{ok.replace('Mazda', '')},01/12/2025 10:00",  # missing brand
        "Venta,Activa",  # truncated row
    ]
    body = "\n".join(rows).replace("$ 55,000,000", '"$ 55,000,000"')
    path = tmp_path / "report.csv"
    path.write_text(f"Reporte de contratos\n\n{DEALER_HEADER}\n{body}\n", encoding="utf-8")
    records, rejected = split(open_source(path))
    assert len(records) == 1 and records[0].event.sale_price == 55e6
    reasons = {r.row: r.category for r in rejected}
    assert reasons == {
        5: "unknown contract type",
        6: "unknown vehicle type",
        7: "bad date",
        8: "negative price",
        9: "bad price",
        10: "missing brand",
        11: "missing brand, model, vehicle type, created",
    }


def test_dealership_semicolon_cp1252(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    text = (
        DEALER_HEADER.replace(",", ";") + "\n"
        "Compra;Activa;CC 1;Honda;CB 190R;CBR-R;XYZ-12A;Motocicleta;12.500.000;;Mixto;"
        "02/01/2024 08:30:15\n"
    )
    path.write_bytes(text.encode("cp1252"))
    (record,) = open_source(path)
    assert isinstance(record, Record)
    assert record.event.purchase_price == 12_500_000 and record.event.sale_price is None
    assert record.event.occurred_at.isoformat() == "2024-01-02T08:30:15+00:00"


# --- Norway ----------------------------------------------------------------------------------
def _norway_2007(path: Path) -> tuple[int, set[int]]:
    """Units of 2007 in the by-make file and the line numbers of its "NA" makes (csv module)."""
    with path.open(newline="") as f:
        rows = [(n, r) for n, r in enumerate(csv.DictReader(f), start=2) if r["Year"] == "2007"]
    units = sum(int(r["Quantity"]) for _, r in rows if r["Make"] != "NA")
    return units, {n for n, r in rows if r["Make"] == "NA"}


def _read_norway(path: Path, year: int | None) -> tuple[list[Record], list[Rejected], Counter]:
    """The by-make file's count events (only ``year``'s months unless None), checking time
    order; the quantity per segment of 2007-01."""
    records, rejected, previous, per_segment = [], [], None, Counter()
    for item in open_source(path):
        at = None if isinstance(item, Rejected) else item.event.occurred_at
        if year is not None and at is not None and at.year > year:
            break  # time-ordered: the rest of the file is later
        if isinstance(item, Rejected):
            rejected.append(item)
            continue
        records.append(item)
        assert previous is None or at >= previous  # time-ordered
        previous = at
        if at.year == 2007 and at.month == 1:
            per_segment[item.key] += item.event.quantity
    return records, rejected, per_segment


def test_norway_by_make_one_count_event_per_make_month_of_a_year(shared_data: Path) -> None:
    path = shared_data / "vehicle/norway_ofv/norway_new_car_sales_by_make.csv"
    assert isinstance(open_source(path), NorwaySource)
    records, rejected, per_segment = _read_norway(path, 2007)
    units, missing = _norway_2007(path)
    assert sum(r.event.quantity for r in records) == units and units > 100_000 and missing
    # one event per (make, month), in the middle of its month
    assert len({(r.key, r.event.occurred_at) for r in records}) == len(records) < 1000
    for r in records:
        start = month_start(r.event.occurred_at)
        assert r.event.occurred_at == start + (next_month(start) - start) / 2
    assert {r.row for r in rejected} >= missing  # read before the year's events end
    assert {r.category for r in rejected} == {"missing make"}
    assert per_segment["CAR|TOYOTA|ALL|"] == 2884 and per_segment["CAR|VOLKSWAGEN|ALL|"] == 2521
    assert all(r.event.market is None for r in records)


def test_norway_by_make_whole_file(shared_data: Path) -> None:
    path = shared_data / "vehicle/norway_ofv/norway_new_car_sales_by_make.csv"
    records, rejected, per_segment = _read_norway(path, None)
    # 4,377 rows summing to 1,347,250; 10 rows have Make "NA" (16 cars): rejected.
    assert sum(r.event.quantity for r in records) == expected_events(path) == 1_347_234
    assert len(records) == 4_367
    assert [r.category for r in rejected] == ["missing make"] * 10
    assert open_source(path).estimated_total == 4_367 + 10
    assert per_segment["CAR|TOYOTA|ALL|"] == 2884 and per_segment["CAR|VOLKSWAGEN|ALL|"] == 2521


def test_norway_market_leads_the_segment_key(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "vehicle/norway_ofv/norway_new_car_sales_by_make.csv"
    first = next(iter(open_source(path, market="no").records()))
    assert first.event.market == "no" and first.key == "NO|CAR|TOYOTA|ALL|"
    assert first.event.segment == ("NO", "CAR", "TOYOTA", "ALL", "")
    dealer = tmp_path / "contracts.csv"
    dealer.write_text(DEALER_HEADER + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="--market applies to count feeds"):
        open_source(dealer, market="NO")


def test_norway_by_model_one_event_per_model_month(shared_data: Path) -> None:
    path = shared_data / "vehicle/norway_ofv/norway_new_car_sales_by_model_clean.csv"
    passat = [
        r.event
        for r in NorwaySource(path).records()
        if r.event.model == "Volkswagen Passat" and r.event.occurred_at.month == 1
        and r.event.occurred_at.year == 2007
    ]  # fmt: skip
    assert [e.quantity for e in passat] == [1267]
    assert passat[0].occurred_at.isoformat() == "2007-01-16T12:00:00+00:00"
    assert passat[0].brand == "Volkswagen" and passat[0].line == ""
    assert expected_events(path) == 696_443


def test_norway_ids_deterministic_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "norway.csv"
    path.write_text(
        '"Year","Month","Make","Quantity","Pct"\n2017,1,"Tesla",3,1\n'
        '2017,1,NA,2,0\n2017,13,"Volvo",1,0\n2017,1,"Audi",-4,0\n'
        '2017,1,"Kia",x,0\n2017,2,"Kia",0,0\n2017,2,"Audi",10000001,0\n',
        encoding="utf-8",
    )
    records, rejected = split(NorwaySource(path))
    assert [(r.event.brand, r.event.quantity) for r in records] == [("Tesla", 3)]
    assert {r.row: r.category for r in rejected} == {
        3: "missing make",
        4: "bad date",
        5: "negative quantity",
        6: "bad quantity",
        8: "invalid event",  # above MAX_QUANTITY: the contract refuses it
    }
    assert "quantity" in rejected[-1].reason
    again = [r.event.event_id for r in NorwaySource(path).records()]
    assert again == [r.event.event_id for r in records]
    assert records[0].event.occurred_at.isoformat() == "2017-01-16T12:00:00+00:00"


# --- Irish 5G --------------------------------------------------------------------------------
def test_irish_full_file(shared_data: Path) -> None:
    path = shared_data / "cellular/irish_5g_raca2020/irish_5g_all_traces.csv.gz"
    assert count_rows(path) == 188_711
    published, rejected, sentinel_none, empty_none, cells = 0, Counter(), 0, 0, set()
    dropped: Counter[tuple[str, str]] = Counter()
    with gzip.open(path, "rt") as raw:
        next(raw)
        for item, line in zip(Irish5GSource(path), raw, strict=True):
            if isinstance(item, Rejected):
                rejected[item.category] += 1
                continue
            published += 1
            cells.add(item.key)
            dropped.update((d.field, d.reason) for d in item.dropped)
            for d in item.dropped:  # published as read, for the worker to drop and count
                assert getattr(item.event, d.field) == float(d.value)
            nr_rsrq = line.rstrip("\n").rsplit(",", 1)[1]
            if nr_rsrq == "2147483647.0":
                sentinel_none += item.event.nr_rsrq is None
            elif nr_rsrq == "":
                empty_none += item.event.nr_rsrq is None
    # Every row has a CellID and a timestamp: all 188,711 become events.
    assert published + sum(rejected.values()) == 188_711
    assert published == 188_711 and not rejected
    assert sentinel_none == 1_096 and empty_none == 37_242
    assert len(cells) == 190
    # values outside their physical range (markers such as RSRP -200 dBm, NR RSRQ -204 dB):
    # the rows are kept, those values named for the worker to drop
    assert dropped == {
        ("rsrp", "below_range"): 73,
        ("nr_rsrp", "below_range"): 91,
        ("nr_rsrq", "below_range"): 4_393,
    }


def test_irish_values_and_determinism(shared_data: Path) -> None:
    path = shared_data / "cellular/irish_5g_raca2020/irish_5g_all_traces.csv.gz"
    first = list(itertools.islice(Irish5GSource(path), 500))
    again = list(itertools.islice(Irish5GSource(path), 500))
    assert [r.event.event_id for r in first] == [r.event.event_id for r in again]
    event = first[0].event
    assert event.cell_id == "2" and event.network_mode == "LTE" and event.rsrp == -92
    assert event.occurred_at.isoformat() == "2019-12-01T12:11:21+00:00"
    assert event.ping_avg is None and event.nr_rsrp is None  # empty -> None, not 0
    assert event.speed == 0 and event.dl_bitrate == 29
    assert first[0].event.event_id == deterministic_id("irish_5g", path.name, 2)


def test_irish_bad_rows(tmp_path: Path) -> None:
    header = (
        "Timestamp,Longitude,Latitude,Speed,Operatorname,CellID,NetworkMode,RSRP,RSRQ,SNR,"
        "CQI,RSSI,DL_bitrate,UL_bitrate,State,NRxRSRP,NRxRSRQ"
    )
    rows = [
        "2020-01-03 09:22:01,-8.39,51.88,0,B,11,5G,-100,-10.0,-,12.0,,184,12,D,-101.0,2147483647.0",
        "2020-01-03 09:22:02,-8.39,51.88,0,B,,5G,-100,-10,7,12,,184,12,D,,",
        ",-8.39,51.88,0,B,11,5G,-100,-10,7,12,,184,12,D,,",
        "yesterday,-8.39,51.88,0,B,11,5G,-100,-10,7,12,,184,12,D,,",
        "2020-01-03 09:22:05,-8.39,51.88,0,B,11,5G,strong,-10,7,12,,184,12,D,,",
        "2020-01-03 09:22:06,-8.39,99.0,0,B,11,5G,-100,-10,7,12,,184,12,D,,",
        "2020-01-03 09:22:07,-8.39,51.88,0,B,11,5G,-100,-10,7,12,,-5,12,D,,",
        "2020-01-03 09:22:08,-8.39,51.88,,B,11,5G,-200,-50,-,-,,-5,-1,D,,",
    ]
    path = tmp_path / "traces.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(header + "\n" + "\n".join(rows) + "\n")
    records, rejected = split(open_source(path))
    assert len(records) == 3
    event = records[0].event
    assert event.snr is None and event.rssi is None and event.nr_rsrq is None
    assert event.nr_rsrp == -101.0 and event.cqi == 12.0 and records[0].dropped == ()
    # one invalid value does not throw the row away: it is named, the rest is kept
    by_row = {r.row: r for r in records}
    assert [(d.field, d.reason, d.value) for d in by_row[7].dropped] == [
        ("latitude", "above_range", "99.0")
    ]
    assert [(d.field, d.reason, d.value) for d in by_row[8].dropped] == [
        ("dl_bitrate", "below_range", "-5.0")
    ]
    assert by_row[8].event.rsrp == -100 and by_row[8].event.ul_bitrate == 12
    assert {r.row: r.category for r in rejected} == {
        3: "missing cell id",
        4: "missing timestamp",
        5: "bad timestamp",
        6: "bad number",
        9: "invalid event",  # nothing valid left: RSRP -200 dBm, RSRQ -50 dB, DL and UL negative
    }
    assert "every measured value is invalid" in next(r for r in rejected if r.row == 9).reason


# --- open_source / replay --------------------------------------------------------------------
def test_open_source_unknown(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match="unknown file format"):
        open_source(path)
    with pytest.raises(ValueError, match="no such file"):
        open_source(tmp_path / "missing.csv")


def test_replay_publishes_and_summarises(tmp_path: Path, shared_data: Path) -> None:
    path = shared_data / "vehicle/sgivu_contracts/report_export_sample.csv"
    producer, settings = FakeProducer(), Settings()
    summary = replay(open_source(path), producer, settings, progress=False)
    assert summary.published == 10 and summary.rejected == 0 and producer.flushed == 1
    assert {topic for topic, _, _ in producer.messages} == {settings.topic_sales}
    assert all(key == event.segment_key for _, key, event in producer.messages)
    assert summary.render().row_count >= 4


def test_replay_rejections_limit_and_rate(tmp_path: Path) -> None:
    path = tmp_path / "norway.csv"
    path.write_text(
        "datetime,Make,Model,Quantity,Pct\n"
        + "".join(f"2017-{m:02d}-01,Tesla,Tesla Model S,50,1\n" for m in range(1, 13))
        + "2017-01-01,Kia,Kia Soul,-1,0\n2017-01-01,Kia,NA,3,0\n"
        + "".join(f"2018-{m:02d}-01,Tesla,Tesla Model S,50,1\n" for m in range(1, 13)),
        encoding="utf-8",
    )
    producer = FakeProducer()
    summary = replay(NorwaySource(path), producer, Settings(), rate=200, limit=20, progress=True)
    assert summary.published == 20 == len(producer.messages)
    assert summary.reasons == {"negative quantity": 1, "missing model": 1}
    assert summary.examples == [(14, "negative quantity: -1"), (15, "missing model: 'NA'")]
    # 20 events at 200/s are scheduled over 0.095 s: pacing must neither drift nor be skipped.
    assert 0.09 <= summary.elapsed < 0.5


def test_id_factory_matches_deterministic_id() -> None:
    assert IdFactory("a", "b")(1, "x") == deterministic_id("a", "b", 1, "x")
    assert IdFactory()(7) == deterministic_id(7)


def test_irish_by_time_orders_rows_and_keeps_their_ids(shared_data: Path, tmp_path: Path) -> None:
    # every 50th row of the real file (~3,800 rows of every trace), in the file's trace order
    path = tmp_path / "sample.csv.gz"
    with gzip.open(
        shared_data / "cellular/irish_5g_raca2020/irish_5g_all_traces.csv.gz", "rt"
    ) as raw:
        head = next(raw)
        with gzip.open(path, "wt") as out:
            out.write(head)
            out.writelines(itertools.islice(raw, 0, None, 50))
    in_file = {r.event.event_id: r.event.occurred_at for r in Irish5GSource(path).records()}
    ordered = list(Irish5GSource(path, by_time=True).records())
    times = [r.event.occurred_at for r in ordered]
    assert len(ordered) == len(in_file) > 3_000
    assert times == sorted(times) and times != [t for t in in_file.values()]
    assert {r.event.event_id: r.event.occurred_at for r in ordered} == in_file
