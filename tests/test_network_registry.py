"""Network records in the registry (SQLite and a real PostgreSQL): configs, field states through
the SQL ``FieldStateRepository``, command results."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ml.network.configs import DEFAULT_CONFIGS, parse_config
from ml.network.state import FieldState, MonitoringState
from ml.registry.entities import ScoreRow
from ml.registry.network import SqlFieldStateRepository
from ml.registry.store import Store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path) -> Store:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'net.db'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    return Store.from_url(url)


def test_configs_are_seeded_once_created_deleted_and_revived(store: Store) -> None:
    registry = store.network
    assert registry.seed_configs(list(DEFAULT_CONFIGS)) == len(DEFAULT_CONFIGS)
    assert registry.seed_configs(list(DEFAULT_CONFIGS)) == 0
    first = DEFAULT_CONFIGS[0]
    assert not registry.put_config(first)  # a live config with that id exists
    assert registry.delete_config(first.id)
    assert not registry.delete_config(first.id)
    assert first.id not in {c.id for c in registry.live_configs()}
    assert registry.seed_configs(list(DEFAULT_CONFIGS)) == 0  # deleted ones are not re-seeded
    deleted = registry.get_config(first.id)
    assert deleted is not None and deleted.deleted_at is not None
    assert registry.put_config(first, command_id="c1")
    assert registry.get_config(first.id).deleted_at is None
    custom = parse_config(
        {
            "id": "dl-linear-3",
            "architecture": "river_linear",
            "input_fields": ["dl_bitrate", "rsrp"],
            "output_fields": ["dl_bitrate"],
            "window_duration_seconds": 60,
            "lookback_steps": 3,
            "forecast_steps": 1,
        }
    )
    assert registry.put_config(custom)
    assert registry.get_config("dl-linear-3").config == custom


def test_field_states_and_scores_round_trip(store: Store) -> None:
    repo = SqlFieldStateRepository(store)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    state = FieldState(
        field="dl_bitrate",
        state=MonitoringState.RETRAINING,
        metric="mae",
        best_model_id="m1",
        baseline=2.5,
        elected_at=at,
        jobs=("j1", "j2"),
        lock_owner="trainer",
        locked_at=at,
        next_check_at=at,
        reason="degraded",
        updated_at=at,
    )
    repo.save(state)
    assert repo.get("dl_bitrate") == state
    repo.save(FieldState(field="rsrp", updated_at=at))
    assert [s.field for s in repo.all()] == ["dl_bitrate", "rsrp"]
    for i, trigger in enumerate(["evaluate", "monitor", "auto_monitor"]):
        repo.add_score(
            ScoreRow(
                "network",
                "dl_bitrate",
                "m1",
                "mae",
                1.0 + i,
                2.5,
                trigger,
                datetime(2026, 1, 1, i, tzinfo=UTC),
            )  # fmt: skip
        )
    history = repo.scores("dl_bitrate", "m1")
    assert [r.trigger for r in history] == ["evaluate", "monitor", "auto_monitor"]


def test_command_results_are_recorded_once(store: Store) -> None:
    registry = store.network
    registry.record_result("c1", "evaluate", "network", "rsrp", result={"best": "m"})
    registry.record_result("c1", "evaluate", "network", "rsrp", error="ignored")
    row = registry.result("c1")
    assert row is not None and row.status == "ok" and row.result == {"best": "m"}
    registry.record_result("c2", "set_best", "network", "rsrp", error="unknown model")
    assert registry.result("c2").status == "error"
    assert registry.result("nope") is None
