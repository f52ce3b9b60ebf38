"""``StreamStore.progress``: every consumer's stored position per partition and when it last
moved (what the dashboard's ``GET /v1/ml/dashboard/streams`` reads), on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime

from ml.registry.store import Store


def test_progress_lists_every_consumer_partition_with_its_last_move(tmp_path) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    assert store.stream.progress() == []
    before = datetime.now(UTC)
    store.stream.apply_observations([], {("b", "sales", 1): 7, ("a", "net", 0): 3})
    store.stream.apply_observations([], {("b", "sales", 1): 9})
    rows = store.stream.progress()
    assert [(r.consumer, r.topic, r.partition, r.offset) for r in rows] == [
        ("a", "net", 0, 3),
        ("b", "sales", 1, 9),
    ]
    assert all(r.updated_at.tzinfo is not None and r.updated_at >= before for r in rows)
    assert rows[1].updated_at >= rows[0].updated_at  # moved again by the second batch
    store.close()
