"""Replays publish every format in event-time order (``--file-order`` keeps the file's), and
the summary counts and names the rows the worker will refuse for their time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from millrace.importers import open_source, replay
from millrace.importers.base import Record
from millrace.importers.norway import NorwaySource
from millrace.importers.ordering import TimeOrdered
from millrace.settings import Settings
from tests.test_importers import DEALER_HEADER, FakeProducer

OK = "Activa,CC {n},Mazda,3 Touring,Skyactiv,ABC-{n},Automóvil,45.000.000,55000000,Efectivo"


def report(tmp_path: Path, dates: list[str]) -> Path:
    rows = [f"Venta,{OK.format(n=i)},{when}" for i, when in enumerate(dates)]
    path = tmp_path / "report.csv"
    path.write_text(f"{DEALER_HEADER}\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_every_format_is_replayed_in_event_time_order(tmp_path: Path) -> None:
    dates = ["05/03/2024 10:00", "01/01/2024 09:00", "20/02/2024 08:00", "01/01/2024 09:00",
             "Bad date"]  # fmt: skip
    path = report(tmp_path, dates)
    ordered = list(open_source(path))
    assert [getattr(i, "row", None) for i in ordered][0] == 6  # the rejection comes first
    records = [i for i in ordered if isinstance(i, Record)]
    assert [r.row for r in records] == [3, 5, 4, 2]  # by time; the tie keeps the file's order
    in_file = [i for i in open_source(path, by_time=False) if isinstance(i, Record)]
    assert [r.row for r in in_file] == [2, 3, 4, 5]
    # same events either way: the ids come from the rows, not from the order
    assert {r.event.event_id for r in records} == {r.event.event_id for r in in_file}


def test_sources_already_in_time_order_are_not_held_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "by_make.csv"
    path.write_text('"Year","Month","Make","Quantity","Pct"\n2007,2,"Kia",2,1\n2007,1,"Audi",1,1\n')
    source = open_source(path)
    assert isinstance(source, NorwaySource)  # sorts itself, streamed
    assert isinstance(open_source(report(tmp_path, ["01/01/2024 09:00"])), TimeOrdered)


def test_the_summary_counts_and_names_rows_the_worker_will_refuse(tmp_path: Path) -> None:
    soon = datetime.now(UTC) + timedelta(days=30)
    dates = ["01/01/2024 09:00", soon.strftime("%d/%m/%Y %H:%M"), "31/12/1999 23:00",
             "02/01/2024 09:00"]  # fmt: skip
    producer, settings = FakeProducer(), Settings()
    summary = replay(open_source(report(tmp_path, dates)), producer, settings, progress=False)
    # still published: the worker dead-letters them visibly
    assert summary.published == 4 and summary.rejected == 0 and len(producer.messages) == 4
    assert summary.refused == 2
    assert summary.refusals == {"future_timestamp": 1, "too_old": 1}
    named = dict(summary.refused_examples)
    assert (
        named["row 3"].startswith("future_timestamp: ") and "MAX_FUTURE_SECONDS" in named["row 3"]
    )
    assert named["row 4"].startswith("too_old: ") and "MIN_EVENT_TIME" in named["row 4"]
    console = Console(width=200, record=True)
    console.print(summary.render())
    text = console.export_text()
    assert re.search(r"refused by the worker\s*│ 2 ", text) and "e.g. row 3" in text
