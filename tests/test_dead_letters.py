"""Dead letters you can see: a real streams worker on PostgreSQL refuses every kind of poison;
each refusal is stored with its batch (error type, reason, bounded payload excerpt) and
``GET /v1/ml/dead-letters`` shows the counts by error type and topic and the latest ones.
The same worker keeps network measurements with a few invalid values (their valid values are
stored) and the route shows the dropped values by field and reason."""

from __future__ import annotations

from collections import Counter

import httpx
import orjson
import pytest

from millrace.kafka import ensure_topics
from ml.registry.store import Store
from tests.factories import poison, sale
from tests.fixtures.broker import settings_from, wait_for_events, wait_for_progress, wait_for_start
from tests.test_poison_worker import Sender

pytestmark = pytest.mark.integration

MAX_BYTES = 65536
EXCERPT = 200
KEY = "dead-letters-key"
ERROR_TYPES = {"invalid_json", "schema_violation", "oversize", "too_old", "future_timestamp",
               "duplicate"}  # fmt: skip


def test_every_refusal_is_stored_and_shown_by_the_route(make_env, spawn, fresh_postgres_url):
    env = make_env(DATABASE_URL=fresh_postgres_url, MAX_EVENT_BYTES=str(MAX_BYTES),
                   DEAD_LETTER_PAYLOAD_CHARS=str(EXCERPT), INTERNAL_SERVICE_KEY=KEY)  # fmt: skip
    settings = settings_from(env)
    ensure_topics(settings)
    store = Store.from_url(fresh_postgres_url)
    spawn(["streams"], env)
    api = spawn(["api"], env)
    url = f"http://127.0.0.1:{env['API_PORT']}/v1/ml/dead-letters"

    def get(**params: object) -> httpx.Response | None:
        try:
            return httpx.get(url, params=params, headers={"X-Internal-Service-Key": KEY})
        except httpx.HTTPError:
            return None

    cases = poison(MAX_BYTES)
    sender = Sender(settings.bootstrap_servers)
    for i in range(20):
        sender.send(settings.topic_sales, f"seg-{i % 3}", orjson.dumps(sale(i)), "good")
    for kind, error_type, payload in cases:
        if error_type != "duplicate":
            sender.send(settings.topic_sales, f"poison-{kind}", payload, kind)
    sender.flush()
    wait_for_events(store, "demand", 20)
    for kind, error_type, payload in cases:
        if error_type == "duplicate":  # the originals are stored: now they are duplicates
            sender.send(settings.topic_sales, "again", payload, kind)
    sender.flush()

    expected = Counter(error_type for _, error_type, _ in cases)
    counts = wait_for_progress(
        lambda: (c := store.dead_letters.counts()).total >= len(cases) and c,
        lambda: store.dead_letters.counts().total,
    )
    assert counts.by_error_type == dict(expected) and set(expected) == ERROR_TYPES
    assert counts.by_topic == {settings.topic_sales: len(cases)}

    wait_for_start(api, lambda: (r := get()) is not None and r.status_code == 200)
    body = get(limit=500).json()
    assert body["total"] == len(cases) and body["by_error_type"] == dict(expected)
    assert body["by_topic"] == {settings.topic_sales: len(cases)}
    items = body["items"]
    assert len(items) == len(cases) and {i["error_type"] for i in items} == ERROR_TYPES
    assert all(i["reason"] and i["topic"] == settings.topic_sales for i in items)
    assert all(len(i["payload"]) <= EXCERPT and "\x00" not in i["payload"] for i in items)
    oversize = [i for i in items if i["error_type"] == "oversize"]
    assert all(i["payload_bytes"] > EXCERPT and i["payload"].endswith("…") for i in oversize)
    by_offset = {(i["partition"], i["offset"]): i for i in items}
    for (partition, offset), kind in sender.placed.items():
        if kind != "good":
            assert (partition, offset) in by_offset, kind
    future = get(error_type="future_timestamp").json()
    assert future["total"] == expected["future_timestamp"]
    assert all("in the future" in i["reason"] for i in future["items"])
    assert len(get(limit=2).json()["items"]) == 2
    for bad in ({"limit": 0}, {"limit": 501}, {"limit": "x"}, {"error_type": "nope"}):
        resp = get(**bad)
        assert resp.status_code == 422 and resp.json()["detail"], bad
    resp = httpx.get(url)
    assert resp.status_code == 401
    assert body["dropped_values"] == 0 and body["field_rejections"] == []

    # a bad field does not throw away good ones: each measurement keeps its valid values
    def cell(i: int, **values: object) -> bytes:
        at = f"2024-03-01T10:00:{i:02d}Z"
        return orjson.dumps({"event_id": f"cell-{i}", "occurred_at": at, "cell_id": "c-1",
                             "rsrp": -95.0, "dl_bitrate": 1000.0, **values})  # fmt: skip

    measurements = [
        cell(0, ul_bitrate=-3.0),  # a counter reset
        cell(1, ul_bitrate=-8.0, cqi=40),
        cell(2).replace(b'"rsrp":-95.0', b'"rsrp":NaN'),
        cell(3, ul_bitrate=12.0),
        cell(4, rsrp=-200.0, dl_bitrate=-1.0),  # nothing valid left: dead-lettered
    ]
    for i, payload in enumerate(measurements):
        sender.send(settings.topic_network, "c-1", payload, f"cell-{i}")
    sender.flush()
    wait_for_events(store, "network", 4)
    net = wait_for_progress(
        lambda: (r := get(topic=settings.topic_network).json())["total"] >= 1 and r,
        lambda: store.dead_letters.counts().total,
    )
    [letter] = net["items"]
    assert letter["error_type"] == "schema_violation" and net["total"] == 1
    assert letter["reason"].startswith("every measured value is invalid")
    assert "rsrp: below_range (-200.0" in letter["reason"] and "dl_bitrate" in letter["reason"]
    rejections = {(r["field"], r["reason"]): r for r in net["field_rejections"]}
    assert {k: r["count"] for k, r in rejections.items()} == {
        ("ul_bitrate", "below_range"): 2,
        ("cqi", "above_range"): 1,
        ("rsrp", "not_finite"): 1,
    }
    assert net["dropped_values"] == 4
    ul = rejections[("ul_bitrate", "below_range")]
    assert ul["topic"] == settings.topic_network and ul["domain"] == "network"
    assert ul["example_value"] == "-8.0" and ul["example_event_id"] == "cell-1"
    assert ul["example_key"] == "c-1" and "greater than or equal to 0" in ul["example_detail"]
    assert get().json()["dropped_values"] == 4  # unfiltered too
    assert get(topic=settings.topic_sales).json()["field_rejections"] == []
    # the valid values of those measurements are in the store, the dropped ones are not
    [window] = store.series.observations("network")
    assert window.n_events == 4
    assert window.fields["rsrp"].count == 3 and window.fields["dl_bitrate"].count == 4
    assert window.fields["ul_bitrate"].count == 1 and "cqi" not in window.fields
    store.close()
