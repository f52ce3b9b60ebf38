"""Network routes over real HTTP against the running API, on a registry holding stored
network windows, the default configs, a trained LightGBM version, online forecasts and a
field with an election (the trainer's side of the commands is tested in
``test_network_trainer.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ml.network.configs import DEFAULT_CONFIGS
from ml.network.state import FieldState
from ml.registry.entities import ForecastRow, ScoreRow
from ml.registry.network import SqlFieldStateRepository
from ml.registry.store import Store
from tests.api_server import ApiServer, bearer, start_api, token
from tests.store_helpers import upsert_forecasts
from tests.training_data import seed_network

pytestmark = pytest.mark.integration

START = datetime(2026, 1, 5, 8, tzinfo=UTC)
ELECTED = datetime(2026, 1, 5, 12, tzinfo=UTC)


def prepare(store: Store, model_dir: Path) -> None:
    seed_network(store, model_dir, seed=5, start=START, minutes=120)
    cell = store.series.observations("network")[0].series_key
    upsert_forecasts(
        store,
        [
            ForecastRow(
                "network",
                f"{cell}|dl_bitrate",
                "online:dl_bitrate-river_linear",
                START + timedelta(hours=2),
                5210.0,
                4000.0,
                6400.0,
            )
        ],  # fmt: skip
    )
    repo = SqlFieldStateRepository(store)
    repo.save(
        FieldState(
            field="rsrp",
            metric="rmse",
            best_model_id="rsrp-river_linear",
            baseline=4.2,
            elected_at=ELECTED,
            updated_at=ELECTED,
        )  # fmt: skip
    )
    for i, (model, trigger) in enumerate(
        [
            ("rsrp-river_linear", "evaluate"),
            ("rsrp-lightgbm", "evaluate"),
            ("rsrp-river_linear", "monitor"),
            ("rsrp-river_linear", "online"),
        ]  # fmt: skip
    ):
        repo.add_score(
            ScoreRow(
                "network",
                "rsrp",
                model,
                "rmse",
                4.2 + i,
                4.2,
                trigger,
                ELECTED + timedelta(minutes=i),
            )  # fmt: skip
        )


@pytest.fixture(scope="module")
def api(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = start_api(kafka, tmp_path_factory.mktemp("netapi"), prepare)
    yield server
    server.proc.stop()


def test_fields_with_and_without_model_status(api: ApiServer) -> None:
    fields = {f["field"]: f for f in api.get("/v1/ml/fields").json()}
    assert set(fields) == {"dl_bitrate", "rsrp"}
    assert fields["rsrp"]["best_model_id"] == "rsrp-river_linear"
    assert fields["dl_bitrate"]["state"] == "MONITORING" and fields["rsrp"]["model_status"] is None
    detailed = api.get("/v1/ml/fields", params={"include_model_status": "true"}).json()
    status = {m["model_id"]: m for f in detailed for m in f["model_status"]}
    assert status["rsrp-lightgbm"]["live_version"] and not status["rsrp-lightgbm"]["online"]
    assert status["rsrp-river_linear"]["online_scores"]["rmse"] == pytest.approx(7.2)


def test_models_list_includes_the_configs(api: ApiServer) -> None:
    page = api.get("/v1/ml/models", params={"domain": "network", "include_details": "true"})
    body = page.json()
    assert {c["id"] for c in body["configs"]} == {c.id for c in DEFAULT_CONFIGS}
    assert all(c["status"] for c in body["configs"])
    assert [v["scope"] for v in body["items"]] == ["rsrp-lightgbm"]
    assert api.get("/v1/ml/models", params={"domain": "demand"}).json()["configs"] is None


def test_create_and_delete_are_published_commands_validated_first(api: ApiServer) -> None:
    config = {
        "id": "dl-linear-3",
        "architecture": "river_linear",
        "input_fields": ["dl_bitrate", "snr"],
        "output_fields": ["dl_bitrate"],
        "window_duration_seconds": 120,
        "lookback_steps": 3,
    }
    created = api.post("/v1/ml/models", json=config)
    assert created.status_code == 202 and created.json()["id"] == "dl-linear-3"
    assert api.post("/v1/ml/models", json={**config, "architecture": "magic"}).status_code == 422
    bad_field = api.post("/v1/ml/models", json={**config, "output_fields": ["weather"]})
    assert bad_field.status_code == 422 and "weather" in bad_field.json()["detail"]
    exists = api.post("/v1/ml/models", json={**config, "id": "rsrp-lightgbm"})
    assert exists.status_code == 409
    gone = api.request("DELETE", "/v1/ml/models/rsrp-river_forest")
    assert gone.status_code == 202 and gone.json()["command"] == "delete_config"
    assert api.request("DELETE", "/v1/ml/models/nope").status_code == 404


def test_inference_from_the_stream_and_from_a_trained_version(api: ApiServer) -> None:
    cell = api.store.series.observations("network")[0].series_key
    online = api.post("/v1/ml/inference", json={"cell_id": cell, "field": "dl_bitrate",
                                                "model_id": "dl_bitrate-river_linear"})  # fmt: skip
    assert online.status_code == 200, online.text
    assert online.json()["value"] == 5210.0 and online.json()["source"] == "stream"
    batch = api.post("/v1/ml/inference", json={"cell_id": cell, "field": "rsrp",
                                               "model_id": "rsrp-lightgbm"})  # fmt: skip
    assert batch.status_code == 200, batch.text
    assert batch.json()["source"] == "batch" and batch.json()["model_version"].startswith("v")
    best = api.post("/v1/ml/inference", json={"cell_id": "no-such-cell", "field": "rsrp"})
    assert best.status_code == 404  # best model (online) has no forecast for that cell
    no_best = api.post("/v1/ml/inference", json={"cell_id": cell, "field": "dl_bitrate"})
    assert no_best.status_code == 404 and "No best model" in no_best.json()["detail"]
    unknown = api.post("/v1/ml/inference", json={"cell_id": cell, "field": "weather"})
    assert unknown.status_code == 404 and "weather" in unknown.json()["detail"]


def test_performance_best_status_and_history(api: ApiServer) -> None:
    perf = api.get("/v1/ml/performance/rsrp").json()
    assert perf["best_model_id"] == "rsrp-river_linear" and perf["baseline"] == 4.2
    assert perf["latest"]["rsrp-lightgbm"]["trigger"] == "evaluate"
    best = api.get("/v1/ml/performance/rsrp/best").json()
    assert best["best_model_id"] == "rsrp-river_linear" and best["metric"] == "rmse"
    missing = api.get("/v1/ml/performance/dl_bitrate/best")
    assert missing.status_code == 404 and "dl_bitrate" in missing.json()["detail"]
    status = api.get("/v1/ml/performance/rsrp/status").json()
    assert status["state"] == "MONITORING" and status["factor"] == 1.5
    assert status["interval_seconds"] == 300 and status["active_jobs"] == []
    history = api.get("/v1/ml/performance/rsrp/history").json()
    assert [h["trigger"] for h in history] == ["evaluate", "evaluate", "monitor"]
    mine = api.get("/v1/ml/performance/rsrp/history", params={"model_id": "rsrp-lightgbm"})
    assert [h["model_id"] for h in mine.json()] == ["rsrp-lightgbm"]
    assert api.get("/v1/ml/performance/weather/status").status_code == 404


def test_field_commands_refuse_what_cannot_work_before_publishing(api: ApiServer) -> None:
    monitor = api.post("/v1/ml/performance/dl_bitrate/monitor")
    assert monitor.status_code == 422 and "No best model" in monitor.json()["detail"]
    set_best = api.post("/v1/ml/performance/rsrp/set-best/dl_bitrate-lightgbm")
    assert set_best.status_code == 404  # a model of another field
    assert api.post("/v1/ml/performance/weather/evaluate").status_code == 404
    assert api.post("/v1/ml/performance/rsrp/evaluate?metric=bogus").status_code == 422
    forbidden = api.post("/v1/ml/performance/rsrp/evaluate", headers=bearer(token(["ml:models"])))
    assert forbidden.json()["detail"] == "User does not have required permission: ml:retrain"
