"""Replay of the Irish 5G data (in timestamp order: the first 20,000 measurements in the suite,
all 188,711 in ``make acceptance``) through the real streams worker on the session broker:
windows per cell, online forecasts of dl_bitrate and rsrp for the cells by every stored online
config (a deleted one forecasts nothing, an added one does), running scores with their
persistence baseline."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from millrace.importers.irish5g import Irish5GSource
from millrace.kafka import EventProducer, encode_event, ensure_topics
from ml.network.configs import DEFAULT_CONFIGS, parse_config
from ml.network.processor import forecast_series_key, online_model_version
from ml.registry.store import Store
from tests.fixtures.broker import deliver, settings_from, wait_for_events, wait_for_progress

pytestmark = pytest.mark.integration

WHOLE, SLICE = 188_711, 20_000
TREE = {
    "id": "rsrp-tree-2m",
    "architecture": "river_tree",
    "input_fields": ["rsrp", "rsrq", "snr"],
    "output_fields": ["rsrp"],
    "window_duration_seconds": 120,
    "lookback_steps": 3,
}


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(SLICE, id="first-20k"),
        pytest.param(WHOLE, id="whole-file", marks=pytest.mark.acceptance),
    ],
)
def test_irish_replay_through_the_worker(make_env, spawn, shared_data: Path, size: int) -> None:
    path = shared_data / "cellular/irish_5g_raca2020/irish_5g_all_traces.csv.gz"
    records = list(Irish5GSource(path, by_time=True).records())
    assert len(records) == WHOLE
    records = records[:size]
    total = len(records)
    env = make_env(STREAMS_BATCH_SIZE="2000")
    settings = settings_from(env)
    ensure_topics(settings)
    store = Store.from_url(env["DATABASE_URL"])
    # the worker follows the stored configs: one deleted, one added (2-minute windows, tree)
    registry = store.network
    registry.seed_configs(list(DEFAULT_CONFIGS))
    assert registry.delete_config("dl_bitrate-river_forest")
    assert registry.put_config(parse_config(TREE))
    worker = spawn(["streams"], env)

    started = time.monotonic()
    producer = EventProducer(settings)
    for r in records:
        producer.publish(settings.topic_network, r.key, encode_event(r.event))
    assert deliver(producer) == 0 and producer.failed == 0
    wait_for_events(store, "network", total, interval=2, worker=worker)
    elapsed = time.monotonic() - started
    print(f"\n{total} network events through the worker in {elapsed:.1f} s")
    assert store.series.count_events("network") == total

    # windows per cell: every measurement counted once, in its cell's windows
    per_cell = Counter()
    for row in store.series.observations("network"):
        per_cell[row.series_key] += row.n_events
    expected = Counter(r.key for r in records)
    assert per_cell == expected and len(per_cell) == (190 if size == WHOLE else 66)

    # online forecasts of both fields for the busy cells, and running scores
    busy = [cell for cell, n in expected.most_common(10)]
    deleted = online_model_version("dl_bitrate-river_forest")
    assert not any(store.series.forecasts("network", forecast_series_key(c, "dl_bitrate"), deleted)
                   for c in busy)  # fmt: skip
    for config in registry.live_configs():
        if not config.online:
            continue
        field = config.output_fields[0]
        version = online_model_version(config.id)
        with_forecasts = [
            c
            for c in busy
            if store.series.forecasts("network", forecast_series_key(c, field), version)
        ]
        assert len(with_forecasts) >= 8, (config.id, with_forecasts)

        def scored(field: str = field, model: str = config.id) -> list:
            return store.monitoring.score_history("network", field, model)

        scores = wait_for_progress(scored, worker.progress)
        assert {s.trigger for s in scores} == {"online"}
        assert all(s.baseline is not None for s in scores)
        assert {s.metric for s in scores} >= {"mae", "rmse"}
        # each partition writes its own windowed score, with its count and statistics; the
        # reader merges the latest of every partition within the window
        assert {s.partition for s in scores} <= {0, 1, 2, 3}
        assert all(s.n and s.stats for s in scores)
        mae = [s for s in scores if s.metric == "mae"]
        newest = max(s.recorded_at for s in mae)
        live = {s.partition for s in mae if s.recorded_at >= newest - timedelta(hours=1)}
        recent = store.monitoring.recent_online_score(
            "network", field, config.id, "mae", timedelta(hours=1)
        )
        assert recent is not None and recent.partitions == len(live) >= 1
        assert recent.n == sum([s for s in mae if s.partition == p][-1].n for p in live)
