"""Poison never reaches the store: whatever bytes arrive, every message is either stored or
dead-lettered, and nothing raises, on SQLite and on a real PostgreSQL server.

Property-based (hypothesis, derandomized so CI is stable): arbitrary JSON values, raw bytes and
mutations of a valid sale and of a valid network measurement (arbitrary text, numbers and dates
in each field, fields removed) go through ``fold_batch`` and then the stream store's commit
the way ``streams/app.py::commit`` calls it; the dead letters must be publishable. A second
property runs the accepted events through the domains' partition processors too (online models,
drift monitors, forecasts and scores go to the store in the same commit).

Regressions these catch (checked by removing each rule): NUL in a segment on PostgreSQL, segment
keys over the 255-character column, prices whose squares overflow a stored sum to Infinity.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from millrace.kafka import encode_event
from millrace.settings import Settings
from ml.domains import Domain, get_domain
from ml.ingest import IngestBatch, Message, fold_batch
from ml.registry.store import Store
from ml.streaming import PartitionProcessor, ProcessorOutput
from schemas.events import NetworkMeasurementEvent, SaleContractEvent
from streams.app import drift_row
from tests.factories import poison, sale

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MAX_BYTES = 65536
LIMITS = {"max_bytes": MAX_BYTES, "max_future": timedelta(days=1), "now": NOW}
CONSUMER = "poison-test"

DEMAND = get_domain("demand")
NETWORK = get_domain("network")
SALE_FIELDS = [*SaleContractEvent.model_fields, "extra"]
CELL_FIELDS = [*NetworkMeasurementEvent.model_fields, "extra"]
CELL = {
    "event_id": "m-0",
    "occurred_at": "2024-03-01T10:00:00Z",
    "cell_id": "cell-1",
    "rsrp": -95.0,
    "dl_bitrate": 12000.0,
    "network_mode": "5G",
}

# --- strategies ---------------------------------------------------------------------------
#: any code point, control characters and lone surrogates included
ANY_CHAR = st.characters(exclude_categories=())
TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=40),
    st.text(st.sampled_from("aZ0 |\x00\x01\n\x7f\x85\ud800ßﬃ"), max_size=20),
    st.integers(100, 3000).map(lambda n: "ß" * n),
)
NUMBERS = st.one_of(
    st.integers(),
    st.integers(-(2**90), 2**90),
    st.floats(),  # NaN and infinities included: written as NaN/Infinity literals
    st.sampled_from(
        [0, -0.0, 1e12, 1e12 + 1, 1.2e154, 1e200, 1e308, -1e308, 5e-324, 2**63, 2**64 - 1]
    ),
)
OFFSETS = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
DATES = st.one_of(
    st.datetimes(timezones=st.one_of(st.none(), st.just(UTC), OFFSETS)).map(
        lambda d: d.isoformat()
    ),
    st.datetimes(
        min_value=datetime(1999, 12, 1), max_value=datetime(2026, 1, 3), timezones=st.just(UTC)
    ).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-01:00",
            "2024-02-30T00:00:00Z",
            "2024-01-01",
            "1704067200",
        ]
    ),
    st.integers(-(2**40), 2**40),
    st.floats(),
)
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(ANY_CHAR, max_size=6), inner, max_size=4),
    ),
    max_leaves=12,
)
VALUES = st.one_of(TEXT, NUMBERS, DATES, JSON)
#: nesting the parser refuses, or accepts in an ignored field
NESTED = st.integers(1, 1500).map(lambda n: b'{"x": ' + b"[" * n + b"]" * n + b"}")


def encode(value: object, ascii_only: bool) -> bytes:
    """JSON as a publisher might write it: NaN/Infinity literals, integers of any size, lone
    surrogates either as ``\\ud800`` escapes or as (invalid) UTF-8 bytes."""
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


def mutated(base: dict, fields: list[str]) -> st.SearchStrategy[bytes]:
    """``base`` with up to three fields set to arbitrary values and some fields removed."""
    return st.builds(
        lambda changes, removed, ids, ascii_only: encode(
            {
                **{k: v for k, v in base.items() if k not in removed},
                "event_id": f"{base['event_id']}-{ids}",
                **changes,
            },
            ascii_only,
        ),
        st.dictionaries(st.sampled_from(fields), VALUES, max_size=3),
        st.sets(st.sampled_from(fields), max_size=2),
        st.integers(0, 10**6),
        st.booleans(),
    )


#: unique ids for the edge cases, so that they are stored rather than duplicates of earlier
#: examples (the mutations draw their ids from hypothesis and do repeat: duplicates are tested)
SERIAL = itertools.count()

#: values at and around the contract's limits, mostly valid (what gets *stored* is tested too)
PRINTABLE = st.characters(exclude_categories=("Cc", "Cs"))
EDGE_TEXT = st.one_of(
    st.text(PRINTABLE, min_size=1, max_size=30),
    st.text(PRINTABLE, min_size=1, max_size=130),
    st.text(st.sampled_from("aZ ßﬃé"), min_size=1, max_size=40),
    st.text(st.sampled_from("aZ |\x00\x01\t\x7f\x85\u2028\ufffe"), min_size=1, max_size=8),
    st.integers(40, 125).map(lambda n: "W" * n),
)
EDGE_TIME = st.datetimes(
    min_value=datetime(1999, 12, 31), max_value=datetime(2026, 1, 2), timezones=OFFSETS
).map(lambda d: d.isoformat())
#: measurements before the series below (they never move its partition's watermark ahead)
EARLIER_TIME = st.datetimes(
    min_value=datetime(1999, 12, 31), max_value=datetime(2024, 3, 1), timezones=OFFSETS
).map(lambda d: d.isoformat())
#: within the limits, at them, and just past them (where squares and sums overflow)
PRICES = st.one_of(
    st.floats(0, 1e12),
    st.integers(0, 10**12),
    st.sampled_from([0, 1e12, 1e12 + 1e-3, 1.2e154, 1e200]),
)
MEASURES = st.one_of(
    st.floats(-1e9, 1e9), st.sampled_from([-1e9, 1e9, 0.0, 5e-324, 1e10, -1.2e154, 1.2e154])
)
#: segment keys around the 120 characters they may have (parts of 1 to 121 characters)
LENGTHS = st.sampled_from([1, 30, 60, 119, 120, 121])
LONG_SEGMENTS = st.builds(
    lambda b, m, ln: {"brand": "B" * b, "model": "M" * m, "line": "L" * ln},
    LENGTHS,
    LENGTHS,
    st.sampled_from([0, 1, 30, 120, 121]),
)
EDGE_SALE = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.text(PRINTABLE, min_size=1, max_size=128),
        "occurred_at": EDGE_TIME,
        "brand": EDGE_TEXT,
        "model": EDGE_TEXT,
        "line": EDGE_TEXT,
        "sale_price": PRICES,
        "purchase_price": PRICES,
        "contract_type": st.sampled_from(["SALE", "PURCHASE"]),
        "vehicle_type": st.sampled_from(["CAR", "MOTORCYCLE"]),
        "plate": EDGE_TEXT,
    },
)
EDGE_CELL = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.text(PRINTABLE, min_size=1, max_size=128),
        "occurred_at": EARLIER_TIME,
        "cell_id": st.one_of(st.text(PRINTABLE, min_size=1, max_size=70), EDGE_TEXT),
        **{name: MEASURES for name in NetworkMeasurementEvent.FIELDS},
        "latitude": st.floats(-90, 90),
        "longitude": st.floats(-180, 180),
        "operator": EDGE_TEXT,
    },
)


def edged(base: dict, *edges: st.SearchStrategy[dict]) -> st.SearchStrategy[bytes]:
    """``base`` with a few fields set to values at (or just past) the contract's limits."""
    return st.builds(
        lambda changes: orjson.dumps(
            {**base, "event_id": f"{base['event_id']}-edge-{next(SERIAL)}", **changes}
        ),
        st.one_of(*edges),
    )


SALES = st.one_of(mutated(sale(0), SALE_FIELDS), edged(sale(0), EDGE_SALE))
CELLS = st.one_of(mutated(CELL, CELL_FIELDS), edged(CELL, EDGE_CELL))
ANYTHING = st.one_of(
    st.builds(encode, JSON, st.booleans()),
    st.binary(max_size=64),
    NESTED,
)
#: the same observation again and again, with prices or measurements at and past the limits
#: (what matters for sums and squares is that they meet in one aggregate)
SAME_SALE = st.builds(
    lambda price, purchase, kind: orjson.dumps(
        {
            **sale(0),
            "event_id": f"same-{next(SERIAL)}",
            "sale_price": price,
            "purchase_price": purchase,
            "contract_type": kind,
        }
    ),
    PRICES,
    PRICES,
    st.sampled_from(["SALE", "PURCHASE"]),
)


def _next_in_series() -> dict[str, str]:
    """A new id, 15 s after the previous one: the cell's windows close and its models learn."""
    n = next(SERIAL)
    at = datetime(2024, 3, 1, tzinfo=UTC) + timedelta(seconds=15 * n)
    return {"event_id": f"same-{n}", "occurred_at": at.isoformat()}


SAME_CELL = st.builds(
    lambda values: orjson.dumps({**CELL, **_next_in_series(), **values}),
    st.fixed_dictionaries({name: MEASURES for name in ("rsrp", "dl_bitrate", "ping_avg")}),
)
#: a batch: mostly sales/measurements at or past the limits, then mutations and arbitrary bytes
SALE_BATCH = st.lists(
    st.one_of(edged(sale(0), EDGE_SALE), edged(sale(0), LONG_SEGMENTS), SAME_SALE, SALES, ANYTHING),
    min_size=10,
    max_size=40,
)
#: for the processors: a cell's series at the limits, with earlier edge cases and noise
#: (no random dates: they would move the partition's watermark years ahead of the series)
CELL_SERIES_BATCH = st.lists(
    st.one_of(SAME_CELL, SAME_CELL, edged(CELL, EDGE_CELL), ANYTHING), min_size=10, max_size=40
)
CELL_BATCH = st.lists(
    st.one_of(edged(CELL, EDGE_CELL), SAME_CELL, CELLS, ANYTHING), min_size=10, max_size=40
)


# --- the worker's path ----------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    url = (
        f"sqlite:///{tmp_path / 'poison.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("fresh_postgres_url")
    )
    store = Store.from_url(url, upgrade=True)
    yield store
    store.close()


@pytest.fixture
def workers(store: Store) -> dict[str, Worker]:
    """One worker per domain; a test's examples share them (one worker's life of batches)."""
    return {d.name: Worker(store, d) for d in (DEMAND, NETWORK)}


@pytest.fixture
def processing_workers(store: Store) -> dict[str, Worker]:
    """The same, running the domains' partition processors too."""
    return {d.name: Worker(store, d, processors=True) for d in (DEMAND, NETWORK)}


class Worker:
    """``streams/app.py``'s fold and commit for one domain, against ``store``."""

    def __init__(self, store: Store, domain: Domain, *, processors: bool = False) -> None:
        self.store, self.domain, self.topic = store, domain, f"t-{domain.name}"
        self.offsets = itertools.count()
        self.checkpoints: dict[tuple[str, int], int] = {}
        self.processors: dict[tuple[str, int], PartitionProcessor] | None = (
            {} if processors else None
        )
        self.settings = Settings()
        self.stored = 0
        self.dropped = 0

    def feed(self, payloads: list[bytes]) -> IngestBatch:
        messages = [
            Message(self.topic, i % 2, next(self.offsets), b"key", value)
            for i, value in enumerate(payloads)
        ]
        batch = fold_batch(
            self.domain,
            messages,
            self.checkpoints,
            consumer=CONSUMER,
            known_ids=lambda ids: self.store.stream.known_event_ids(self.domain.name, ids),
            **LIMITS,
        )
        # every message is accepted or dead-lettered, exactly once
        refused = {record.offset for _, record in batch.dead_letters}
        assert (
            batch.accepted + len(refused)
            == len(messages)
            == len(batch.dead_letters) + len(batch.event_ids)
        )
        for _, record in batch.dead_letters:
            assert record.reason and record.error_type in {
                "invalid_json",
                "schema_violation",
                "oversize",
                "future_timestamp",
                "too_old",
                "duplicate",
            }
            encode_event(record)  # the worker must be able to publish it
        output, states = self.process(batch)
        marks = {(CONSUMER, t, p): off for (t, p), off in batch.offsets.items()}
        self.store.stream.apply_observations(
            batch.deltas,
            marks,
            states,
            event_ids=[(self.domain.name, event_id) for event_id in batch.event_ids],
            corrections=output.corrections,
            drift_events=[drift_row(event) for event in output.drift_events],
            forecasts=output.forecasts,
            scores=output.scores,
            field_rejections=batch.field_rejections,
        )
        for request in output.retrain_requests:
            encode_event(request)
        self.checkpoints.update(batch.offsets)
        # an accepted event counts once, as its ``quantity`` of units (a sale may carry one;
        # the mutated payloads set it to any integer the contract accepts)
        self.stored += sum(
            getattr(event, "quantity", 1) for events in batch.events.values() for event in events
        )
        assert self.store.series.count_events(self.domain.name) == self.stored
        # values dropped from accepted events: each counted once, whatever they were
        self.dropped += sum(c.count for c in batch.field_rejections)
        stored = self.store.dead_letters.field_rejections(topic=self.topic)
        assert sum(r.count for r in stored) == self.dropped
        return batch

    def process(self, batch: IngestBatch) -> tuple[ProcessorOutput, dict]:
        output, states = ProcessorOutput(), {}
        if self.processors is None:
            return output, states
        for tp, events in batch.events.items():
            processor = self.processors.get(tp) or self.domain.partition_processor(self.settings)
            if processor is None:
                continue
            self.processors[tp] = processor
            output.extend(processor.process(events))
            states[(CONSUMER, *tp)] = processor.state()
        return output, states


PROPERTY = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def test_every_poison_kind_is_dead_lettered_with_its_reason(store: Store) -> None:
    worker = Worker(store, DEMAND)
    worker.feed([orjson.dumps(sale(0))])
    cases = poison(MAX_BYTES)
    batch = worker.feed([payload for _, _, payload in cases])
    assert batch.accepted == 0
    got = {record.offset - 1: record.error_type for _, record in batch.dead_letters}
    assert [got[i] for i in range(len(cases))] == [kind for _, kind, _ in cases]


@PROPERTY
@given(sales=SALE_BATCH, cells=CELL_BATCH)
def test_arbitrary_messages_are_stored_or_dead_lettered(
    workers: dict[str, Worker], sales: list[bytes], cells: list[bytes]
) -> None:
    workers["demand"].feed(sales)
    workers["network"].feed(cells)


@settings(PROPERTY, max_examples=60)
@given(sales=SALE_BATCH, cells=CELL_SERIES_BATCH)
def test_accepted_extremes_also_pass_the_partition_processors(
    processing_workers: dict[str, Worker], sales: list[bytes], cells: list[bytes]
) -> None:
    """What the contract accepts at its limits (prices of 1e12, measurements of 1e9, 120-char
    segments, any date since 2000) must also get through the online models, drift monitors and
    the store's forecast, drift and score rows."""
    processing_workers["demand"].feed(sales)
    processing_workers["network"].feed(cells)
