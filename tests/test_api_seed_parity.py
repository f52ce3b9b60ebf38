"""Seed parity over real HTTP, one API process and one trainer on the session broker, over a
registry holding a live demand version, stored network windows, the default network configs,
a trained LightGBM config and an elected field:

- the 5G lifecycle service's routes: ``POST /training/train``, ``DELETE /training/jobs/{id}``
  (a queued job ends ``cancelled``, with no version), ``GET /models/{id}`` for a config,
  ``/fields?include_model_status=true`` with ``has_models``, the degradation threshold in
  ``/performance/{field}/best``, ``training/jobs?model_id=``;
- the monitoring service's prediction log: ``GET /v1/ml/predictions?last=N`` and
  ``/v1/ml/monitoring`` computed from it, both unchanged after the API restarts;
- the metadata service's ``/health``: ``healthy`` and the ``SERVICE_NAME``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from ml.network.configs import FIELDS
from ml.network.state import FieldState
from ml.registry.network import SqlFieldStateRepository
from ml.registry.store import Store
from tests.api_server import ApiServer, start_api, train_first_version
from tests.fixtures.broker import Proc, wait_for_job, wait_for_progress, wait_for_start
from tests.training_data import seed_network

pytestmark = pytest.mark.integration

GBM, LINEAR = "rsrp-lightgbm", "rsrp-river_linear"
ELECTED = datetime(2026, 1, 5, 12, tzinfo=UTC)


def prepare(store: Store, model_dir: Path) -> None:
    train_first_version(store, model_dir)
    seed_network(store, model_dir, seed=5, start=datetime(2026, 1, 5, 8, tzinfo=UTC),
                 minutes=120, model=GBM)  # fmt: skip
    SqlFieldStateRepository(store).save(
        FieldState(
            field="rsrp",
            metric="rmse",
            best_model_id=LINEAR,
            baseline=4.0,
            elected_at=ELECTED,
            updated_at=ELECTED,
        )  # fmt: skip
    )


@pytest.fixture(scope="module")
def api(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    directory = tmp_path_factory.mktemp("parity")
    server = start_api(kafka, directory, prepare, SERVICE_NAME="dealer-ml",
                       PREDICTION_LOG_FLUSH_SECONDS="0.2")  # fmt: skip
    trainer = Proc(["trainer"], server.env, directory / "trainer.log")
    server.others.append(trainer)
    # jobs left queued are recovered at the trainer's start: it must be past that
    wait_for_start(trainer, lambda: "trainer consuming" in trainer.output())
    yield server
    trainer.stop()
    server.proc.stop()


def test_health_is_healthy_with_the_configured_service_name(api: ApiServer) -> None:
    body = httpx.get(api.url + "/health", timeout=30).json()
    assert (body["status"], body["service"], body["model_available"]) == (
        "healthy", "dealer-ml", True,
    )  # fmt: skip


def test_train_a_model_by_id_and_list_its_jobs(api: ApiServer) -> None:
    accepted = api.post("/v1/ml/training/train", json={"model_id": GBM})
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert (body["model_id"], body["domain"], body["status"]) == (GBM, "network", "queued")
    job = wait_for_job(api.store, body["job_id"], trainer=api.others[0])
    assert job.status == "completed" and job.scope == GBM, job.reason
    mine = api.get("/v1/ml/training/jobs", params={"model_id": GBM}).json()
    assert mine["total"] == 2 and {j["scope"] for j in mine["items"]} == {GBM}
    assert body["job_id"] in {j["id"] for j in mine["items"]}
    everything = api.get("/v1/ml/training/jobs").json()
    assert everything["total"] > mine["total"]  # the demand job is not the model's
    unknown = api.post("/v1/ml/training/train", json={"model_id": "nosuch-config"})
    assert unknown.status_code == 404 and "nosuch-config" in unknown.json()["detail"]


def test_cancel_a_queued_job(api: ApiServer) -> None:
    job = api.store.jobs.create_job("network", "rsrp-river_forest", "manual")
    first = api.request("DELETE", f"/v1/ml/training/jobs/{job.id}")
    assert first.status_code in (200, 202), first.text  # 202: the trainer had not taken it yet
    done = wait_for_job(api.store, job.id, trainer=api.others[0])
    assert done.status == "cancelled" and done.version is None and done.outcome is None
    assert done.reason.startswith("cancelled by ") and "before it started" in done.reason
    again = api.request("DELETE", f"/v1/ml/training/jobs/{job.id}")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert again.json()["cancel"]["reason"] == "cancelled through the API"
    assert api.store.models.list_versions(domain="network", scope="rsrp-river_forest") == []
    completed = api.store.jobs.list_jobs(domain="network", scope=GBM, status="completed")[0]
    ended = api.request("DELETE", f"/v1/ml/training/jobs/{completed.id}")
    assert ended.status_code == 409 and "completed" in ended.json()["detail"]
    assert api.request("DELETE", "/v1/ml/training/jobs/nope").status_code == 404


def test_get_model_by_config_id(api: ApiServer) -> None:
    config = api.get(f"/v1/ml/models/{GBM}").json()
    assert config["id"] == GBM and config["config"]["architecture"] == "lightgbm"
    assert [s["model_id"] for s in config["status"]] == [GBM]
    assert config["status"][0]["live_version"] is not None
    version = config["status"][0]["live_version"]
    by_version = api.get(f"/v1/ml/models/{version}", params={"domain": "network", "scope": GBM})
    assert by_version.status_code == 200 and by_version.json()["version"] == version
    missing = api.get("/v1/ml/models/no-such-model")
    assert missing.status_code == 404 and "no-such-model" in missing.json()["detail"]


def test_fields_say_which_have_models(api: ApiServer) -> None:
    plain = api.get("/v1/ml/fields").json()
    assert {f["field"] for f in plain} == {"dl_bitrate", "rsrp"}
    assert all(f["has_models"] for f in plain)
    detailed = {f["field"]: f for f in api.get(
        "/v1/ml/fields", params={"include_model_status": "true"}).json()}  # fmt: skip
    assert set(detailed) == set(FIELDS)
    assert detailed["rsrp"]["has_models"] and detailed["rsrp"]["model_status"]
    without = [f for f in FIELDS if f not in ("dl_bitrate", "rsrp")]
    assert without and not any(detailed[f]["has_models"] for f in without)
    assert all(detailed[f]["models"] == [] for f in without)


def test_best_carries_the_degradation_threshold(api: ApiServer) -> None:
    best = api.get("/v1/ml/performance/rsrp/best").json()
    assert (best["best_model_id"], best["baseline"]) == (LINEAR, 4.0)
    assert best["degradation_factor"] == 1.5 and best["degradation_threshold"] == 6.0


def _segment(api: ApiServer) -> dict:
    items = api.get("/v1/ml/segments").json()["items"]
    key = next(i for i in items if i["in_model"])
    return {"vehicle_type": key["vehicle_type"], "brand": key["brand"],
            "model": key["model"], "line": key["line"], "horizon_months": 2}  # fmt: skip


def test_prediction_log_and_monitoring_survive_a_restart(api: ApiServer) -> None:
    def book_ready() -> bool:
        items = api.get("/v1/ml/segments").json()["items"]
        return any(i["in_model"] for i in items)

    wait_for_progress(book_ready, api.progress)
    body = _segment(api)
    served = [api.post("/v1/ml/predict", json=body) for _ in range(3)]
    assert all(r.status_code == 200 for r in served), served[0].text
    version = served[0].json()["model_version"]
    cell = api.store.series.observations("network")[0].series_key
    online = api.post("/v1/ml/inference", json={"cell_id": cell, "field": "rsrp",
                                                "model_id": GBM})  # fmt: skip
    assert online.status_code == 200, online.text

    log = api.get("/v1/ml/predictions", params={"last": 10}).json()
    assert log["total"] == 4 and [p["endpoint"] for p in log["items"]] == [
        "inference", "predict", "predict", "predict"]  # fmt: skip
    newest_demand = log["items"][1]
    assert newest_demand["model_version"] == version and newest_demand["domain"] == "demand"
    assert newest_demand["inputs"]["brand"] == body["brand"]
    assert newest_demand["output"]["predictions"] == served[-1].json()["predictions"]
    assert newest_demand["latency_ms"] > 0 and newest_demand["served_at"]
    assert log["items"][0]["inputs"]["cell_id"] == cell
    assert log["items"][0]["output"]["value"] == online.json()["value"]
    assert (
        api.get("/v1/ml/predictions", params={"last": 1}).json()["items"][0]["id"]
        == (log["items"][0]["id"])
    )
    before = api.get("/v1/ml/monitoring").json()  # the default domain's: demand
    assert before["overall"]["count"] == 3 and before["by_model_version"][version]["count"] == 3
    assert before["overall"]["p99_ms"] >= before["overall"]["avg_ms"] > 0
    assert api.get("/v1/ml/monitoring", params={"last": 2}).json()["overall"]["count"] == 2
    network = api.get("/v1/ml/monitoring", params={"domain": "network"}).json()
    assert network["overall"]["count"] == 1

    api.proc.stop()
    api.proc = Proc(["api"], api.env, Path(api.proc.log).with_name("api-restarted.log"))

    def up() -> bool:
        try:
            return httpx.get(api.url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for_start(api.proc, up)
    after = api.get("/v1/ml/monitoring").json()
    assert after["overall"] == before["overall"]
    assert after["by_model_version"] == before["by_model_version"]
    assert api.get("/v1/ml/predictions", params={"last": 10}).json() == log
