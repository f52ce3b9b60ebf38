"""Dead letters you can see: a real streams worker on PostgreSQL refuses every kind of poison;
each refusal is stored with its batch (error type, reason, bounded payload excerpt) and
``GET /v1/ml/dead-letters`` shows the counts by error type and topic and the latest ones."""

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
    store.close()
