"""A bad field does not throw away good ones (issue 13 item 4), without Kafka: a network
measurement with invalid values keeps its valid ones; each dropped value is counted per
partition, field and reason, once, in the batch's store transaction, and shown by
``millrace dead-letters``. A measurement with nothing valid left, or an invalid key field, is
still dead-lettered with every problem named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from millrace.kafka import encode_event
from ml.domains import get_domain
from ml.ingest import Message, Rejection, check_message, fold_batch, validate_message
from ml.registry.store import Store
from ml.salvage import FIELD_REASONS, lenient_loads
from schemas.events import NetworkMeasurementEvent
from tests.test_cli_listings import millrace

NETWORK = get_domain("network")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
LIMITS = {"max_bytes": 4096, "max_future": timedelta(days=1), "now": NOW}
TOPIC = "network.measurements"


def cell(i: int = 0, **values: object) -> dict:
    return {
        "event_id": f"m-{i}",
        "occurred_at": f"2024-03-01T10:00:{i % 60:02d}Z",
        "cell_id": "cell-1",
        "rsrp": -95.0,
        "dl_bitrate": 12000.0,
        **values,
    }


def check(payload: bytes) -> tuple[object, list[tuple[str, str, str]]]:
    result, dropped = check_message(NETWORK, payload, **LIMITS)
    return result, [(d.field, d.reason, d.value) for d in dropped]


# --- one message ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "field", "reason", "value"),
    [
        ({"ul_bitrate": -3.0}, "ul_bitrate", "below_range", "-3.0"),  # a counter reset
        ({"rsrq": -60.0}, "rsrq", "below_range", "-60.0"),
        ({"cqi": 16}, "cqi", "above_range", "16"),
        ({"snr": 1e300}, "snr", "above_range", "1e+300"),
        ({"ping_loss": 101.0}, "ping_loss", "above_range", "101.0"),
        ({"latitude": 99.0}, "latitude", "above_range", "99.0"),
        ({"speed": "fast"}, "speed", "not_a_number", '"fast"'),
        ({"rssi": True}, "rssi", "not_a_number", "true"),
    ],
)
def test_one_invalid_value_is_dropped_and_the_rest_kept(
    values: dict, field: str, reason: str, value: str
) -> None:
    event, dropped = check(orjson.dumps(cell(**values)))
    assert isinstance(event, NetworkMeasurementEvent)
    assert event.rsrp == -95.0 and event.dl_bitrate == 12000.0  # the good values are kept
    assert getattr(event, field) is None  # the bad one is missing
    assert dropped == [(field, reason, value)] and reason in FIELD_REASONS


def test_out_of_physical_range_rsrp_keeps_the_bit_rates() -> None:
    event, dropped = check(orjson.dumps(cell(rsrp=-200.0, ul_bitrate=-1.0, nr_rsrp=-90.0)))
    assert isinstance(event, NetworkMeasurementEvent)
    assert event.rsrp is None and event.ul_bitrate is None and event.nr_rsrp == -90.0
    assert event.measurements() == {"nr_rsrp": -90.0, "dl_bitrate": 12000.0}
    assert sorted(dropped) == [("rsrp", "below_range", "-200.0"),
                               ("ul_bitrate", "below_range", "-1.0")]  # fmt: skip


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_nan_and_infinity_in_a_measurement_are_dropped(literal: bytes) -> None:
    payload = orjson.dumps(cell(rsrp=0.0)).replace(b'"rsrp":0.0', b'"rsrp":' + literal)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(payload)  # not JSON: the strict parser refuses it
    event, dropped = check(payload)
    assert isinstance(event, NetworkMeasurementEvent)
    assert event.rsrp is None and event.dl_bitrate == 12000.0
    assert dropped == [("rsrp", "not_finite", literal.decode())]


@pytest.mark.parametrize(
    "payload",
    [
        b'{"event_id": "a", "occurred_at": "2024-03-01T10:00:00Z", "cell_id": NaN, "rsrp": -90}',
        b'{"event_id": "a", "occurred_at": "2024-03-01T10:00:00Z", "cell_id": "c", "rsrp": NaN,'
        b' "extra": Infinity}',
        b'{"event_id": "a", "occurred_at": "2024-03-01T10:00:00Z", "cell_id": "c", "rsrp": NaN,'
        b' "note": "\\ud800"}',
        b'{"event_id": "a", "occurred_at": "2024-03-01T10:00:00Z", "cell_id": "c", "rsrp": NaN,'
        b' "x": ' + b"[" * 300 + b"]" * 300 + b"}",
        b"[NaN]",
        b'{"rsrp": NaN',
    ],
)
def test_non_finite_literals_elsewhere_keep_the_payload_unparsable(payload: bytes) -> None:
    result, dropped = check(payload)
    assert isinstance(result, Rejection) and result.error_type == "invalid_json"
    assert dropped == []
    assert lenient_loads(payload, NetworkMeasurementEvent.DROPPABLE_FIELDS) is None


def test_a_measurement_with_nothing_valid_left_is_dead_lettered_naming_every_value() -> None:
    result, dropped = check(
        orjson.dumps(cell(rsrp=-200.0, dl_bitrate=-5.0, ul_bitrate=-1.0, latitude=51.9))
    )
    assert isinstance(result, Rejection) and result.error_type == "schema_violation"
    assert result.reason.startswith("every measured value is invalid")
    for field in ("rsrp", "dl_bitrate", "ul_bitrate"):
        assert field in result.reason
    assert dropped == []  # refused: nothing is counted as dropped


def test_an_invalid_key_field_still_refuses_the_measurement_naming_every_problem() -> None:
    for bad in ({"cell_id": ""}, {"occurred_at": 1709287200}, {"event_id": None}):
        result = validate_message(NETWORK, orjson.dumps(cell(ul_bitrate=-3.0, **bad)), **LIMITS)
        assert isinstance(result, Rejection) and result.error_type == "schema_violation"
        assert next(iter(bad)) in result.reason and "ul_bitrate" in result.reason


def test_a_measurement_without_values_is_still_accepted() -> None:
    event, dropped = check(orjson.dumps(cell(rsrp=None, dl_bitrate=None)))
    assert isinstance(event, NetworkMeasurementEvent) and dropped == []


def test_sales_are_not_salvaged() -> None:
    demand = get_domain("demand")
    from tests.factories import sale

    result = validate_message(demand, orjson.dumps({**sale(0), "sale_price": -1.0}), **LIMITS)
    assert isinstance(result, Rejection) and result.error_type == "schema_violation"


# --- a batch: counted per partition, field and reason, only for accepted events -------------
def messages(payloads: list[bytes], partition: int = 0, start: int = 0) -> list[Message]:
    return [Message(TOPIC, partition, start + i, b"cell-1", p) for i, p in enumerate(payloads)]


def test_a_batch_counts_dropped_values_of_accepted_events_only() -> None:
    payloads = [
        orjson.dumps(cell(0, ul_bitrate=-3.0)),
        orjson.dumps(cell(1, ul_bitrate=-7.0, cqi=99)),
        orjson.dumps(cell(1, ul_bitrate=-9.0)),  # duplicate id: refused, not counted
        orjson.dumps(cell(2, ul_bitrate=-9.0, occurred_at="2030-01-01T00:00:00Z")),  # future
        orjson.dumps(cell(3, rsrp=-200.0, dl_bitrate=-1.0)),  # nothing left: dead-lettered
        orjson.dumps(cell(4)),
    ]
    batch = fold_batch(NETWORK, messages(payloads), {}, consumer="c", **LIMITS)
    assert batch.accepted == 3
    assert sorted(r.error_type for _, r in batch.dead_letters) == [
        "duplicate", "future_timestamp", "schema_violation"]  # fmt: skip
    counts = {(c.topic, c.partition, c.field, c.reason): c for c in batch.field_rejections}
    assert {k: c.count for k, c in counts.items()} == {
        (TOPIC, 0, "ul_bitrate", "below_range"): 2,
        (TOPIC, 0, "cqi", "above_range"): 1,
    }
    ul = counts[(TOPIC, 0, "ul_bitrate", "below_range")]
    assert ul.example_value == "-7.0" and ul.example_event_id == "m-1" and ul.example_offset == 1
    assert ul.domain == "network" and ul.example_key == "cell-1"
    # the kept events' observations: rsrp of all three, ul_bitrate of none
    [delta] = batch.deltas
    assert delta.n_events == 3 and delta.fields["rsrp"].count == 3
    assert "ul_bitrate" not in delta.fields and "cqi" not in delta.fields


def test_a_redelivered_batch_counts_nothing_again(tmp_path: Path) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path / 'fields.db'}")
    payloads = [orjson.dumps(cell(i, ul_bitrate=-1.0 - i)) for i in range(4)]
    checkpoints: dict[tuple[str, int], int] = {}

    def commit(batch) -> None:
        marks = {("c", t, p): off for (t, p), off in batch.offsets.items()}
        store.stream.apply_observations(
            batch.deltas,
            marks,
            event_ids=[("network", i) for i in batch.event_ids],
            expected={("c", *tp): checkpoints.get(tp) for tp in batch.offsets},
            field_rejections=batch.field_rejections,
        )
        checkpoints.update(batch.offsets)

    known = lambda ids: store.stream.known_event_ids("network", ids)  # noqa: E731
    commit(fold_batch(NETWORK, messages(payloads[:2]), checkpoints, consumer="c",
                      known_ids=known, **LIMITS))  # fmt: skip
    # partition 1 of the same topic, and the rest of partition 0 with a redelivered prefix
    commit(fold_batch(NETWORK, messages([orjson.dumps(cell(9, rsrq=30.0))], partition=1),
                      checkpoints, consumer="c", known_ids=known, **LIMITS))  # fmt: skip
    again = fold_batch(NETWORK, messages(payloads), checkpoints, consumer="c",
                       known_ids=known, **LIMITS)  # fmt: skip
    assert again.skipped == 2 and [c.count for c in again.field_rejections] == [2]
    commit(again)

    [ul, rsrq] = store.dead_letters.field_rejections()
    assert (ul.topic, ul.field, ul.reason, ul.count) == (TOPIC, "ul_bitrate", "below_range", 4)
    assert ul.example_value == "-4.0" and ul.example_event_id == "m-3"
    assert (rsrq.field, rsrq.reason, rsrq.count) == ("rsrq", "above_range", 1)
    assert store.dead_letters.field_rejections(topic="other") == []
    [row] = store.series.observations("network")
    assert row.n_events == 5 and row.fields["rsrp"].count == 5
    store.close()

    shown = millrace(f"sqlite:///{tmp_path / 'fields.db'}", "dead-letters")
    assert shown.returncode == 0, shown.stderr
    assert "Dropped values (events kept): 5" in shown.stdout
    assert "ul_bitrate" in shown.stdout and "below_range" in shown.stdout
    assert "-4.0 (Input should be greater than or equal to 0)" in shown.stdout


# --- the replay says how many values the worker will drop ------------------------------------
def test_the_replay_summary_names_the_values_the_worker_will_drop(tmp_path: Path) -> None:
    from millrace.importers import open_source, replay
    from millrace.settings import Settings
    from tests.test_importers import FakeProducer

    header = "Timestamp,CellID,RSRP,RSRQ,DL_bitrate,UL_bitrate,NRxRSRQ"
    rows = ["2020-01-03 09:22:01,11,-95,-10,184,12,-204",
            "2020-01-03 09:22:02,11,-200,-10,184,-3,-12",
            "2020-01-03 09:22:03,11,-96,-11,190,14,-204"]  # fmt: skip
    path = tmp_path / "traces.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    producer = FakeProducer()
    summary = replay(open_source(path), producer, Settings(), progress=False)
    assert summary.published == 3 and summary.rejected == 0
    assert summary.dropped == {"nr_rsrq below_range": 2, "rsrp below_range": 1,
                               "ul_bitrate below_range": 1}  # fmt: skip
    # published as read: the worker drops (and counts) them, keeping the rest
    published = {event.event_id: event for _, _, event in producer.messages}
    assert sorted(e.rsrp for e in published.values()) == [-200.0, -96.0, -95.0]
    batch = fold_batch(
        NETWORK,
        [Message(TOPIC, 0, i, b"11", encode_event(e)) for i, e in enumerate(published.values())],
        {}, consumer="c", **LIMITS,
    )  # fmt: skip
    assert batch.accepted == 3
    assert {(c.field, c.reason): c.count for c in batch.field_rejections} == {
        ("nr_rsrq", "below_range"): 2, ("rsrp", "below_range"): 1,
        ("ul_bitrate", "below_range"): 1}  # fmt: skip
    rendered = summary.render()
    assert "values the worker will drop" in [str(c) for c in rendered.columns[0]._cells]
