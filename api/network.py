"""Network domain routes: fields, model configs (create / delete as published commands),
inference per cell, and per-field performance (read: scores, best, status, history; act:
evaluate, set-best, monitor as published commands answered with the trainer's result).

Reads come from the registry (configs, field states, score history, stored online forecasts,
live versions); the API never writes it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import ML_MODELS, ML_PREDICT, ML_RETRAIN, Principal, require
from api.common import AUTH_ERRORS, NOT_FOUND, Detail, store
from api.limits import StrictJSONRoute, client_event
from api.models import CONFIG_GETTERS, CONFIG_LISTERS, ModelConfigOut
from api.publisher import BrokerUnavailable
from ml.network.configs import (
    FIELDS,
    ConfigError,
    ModelConfig,
    configs_for_field,
    parse_config,
)
from ml.network.state import MonitoringState
from ml.registry.entities import CommandResultRow
from ml.registry.network import SqlFieldStateRepository
from ml.registry.stores.network import NetworkStore
from ml.training.versioning import load_model
from ml.triggers import degradation_limit
from schemas.events import ModelCommand, ModelCommandType

__all__ = ["ConfigOut", "config_get", "config_list", "router"]

router = APIRouter(route_class=StrictJSONRoute, prefix="/v1/ml", tags=["network"])

DOMAIN = "network"
Metric = Literal["rmse", "mae", "mape", "r2"]
FieldName = Annotated[str, Path(min_length=1, max_length=60, examples=["dl_bitrate"])]
_UNKNOWN_FIELD = NOT_FOUND("Unknown field: bogus (no model config forecasts it)")


def _registry(request: Request) -> NetworkStore:
    return store(request).network


def _configs_of(request: Request, field: str) -> list[ModelConfig]:
    configs = configs_for_field(_registry(request).live_configs(), field)
    if not configs:
        raise HTTPException(404, detail=f"Unknown field: {field} (no model config forecasts it)")
    return configs


# --- models (configs) ------------------------------------------------------------------------
class ModelConfigIn(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "dl-linear-10m",
                    "architecture": "river_linear",
                    "input_fields": ["dl_bitrate", "rsrp", "snr"],
                    "output_fields": ["dl_bitrate"],
                    "window_duration_seconds": 600,
                    "lookback_steps": 3,
                    "forecast_steps": 1,
                    "hidden_size": 32,
                }
            ]
        }
    }

    id: str = Field(min_length=1, max_length=56)
    architecture: str = Field(examples=["river_linear"])
    input_fields: list[str] = Field(min_length=1)
    output_fields: list[str] = Field(min_length=1)
    window_duration_seconds: int = Field(60, ge=1)
    lookback_steps: int = Field(5, ge=1)
    forecast_steps: int = Field(1, ge=1)
    hidden_size: int = Field(32, ge=1)


class CommandAccepted(BaseModel):
    id: str = Field(examples=["dl-linear-10m"])
    command_id: str = Field(examples=["9b2c6f1e-0a7d-4c55-8d8e-3e1f0c2b7a11"])
    command: str = Field(examples=["create_config"])
    status: str = Field("published", examples=["published"])


async def _publish(request: Request, principal: Principal, **fields: Any) -> ModelCommand:
    command = client_event(
        ModelCommand,
        event_id=str(uuid.uuid4()),
        occurred_at=datetime.now(UTC),
        domain=DOMAIN,
        requested_by=principal.subject or principal.via,
        **fields,
    )
    settings = request.app.state.settings
    try:
        await run_in_threadpool(
            request.app.state.publisher.send, settings.topic_model_commands, DOMAIN, command
        )
    except BrokerUnavailable as exc:
        raise HTTPException(503, detail=str(exc)) from exc
    return command


async def _result(request: Request, command: ModelCommand) -> CommandResultRow:
    registry = _registry(request)
    deadline = time.monotonic() + request.app.state.settings.api_command_wait_seconds
    while True:
        row = await run_in_threadpool(registry.result, command.event_id)
        if row is not None:
            return row
        if time.monotonic() >= deadline:
            raise HTTPException(
                504, detail=f"The trainer did not answer command {command.event_id} in time"
            )
        await asyncio.sleep(0.1)


@router.post(
    "/models",
    response_model=CommandAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Create a network model config (published as a command)",
    responses={
        **AUTH_ERRORS,
        409: {"model": Detail, "description": "A live config has this id"},
        422: {"model": Detail, "description": "Invalid config: every problem named at once"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ModelConfigIn.model_json_schema()}},
        }
    },
)
async def create_model(
    request: Request,
    body: Annotated[dict[str, Any], Body(description="A model config (see ModelConfigIn)")],
    principal: Principal = Depends(require(ML_RETRAIN)),  # noqa: B008
) -> CommandAccepted:
    # validated in one pass, so that the 422 names every problem at once (unknown keys are
    # ignored, as they always were)
    known = {k: v for k, v in body.items() if k in ModelConfigIn.model_fields}
    try:
        config = parse_config(known)
    except ConfigError as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    existing = await run_in_threadpool(_registry(request).get_config, config.id)
    if existing is not None and existing.deleted_at is None:
        raise HTTPException(409, detail=f"Model config {config.id} exists")
    command = await _publish(
        request,
        principal,
        command=ModelCommandType.CREATE_CONFIG,
        scope=config.id,
        config=config.model_dump(mode="json"),
    )
    return CommandAccepted(id=config.id, command_id=command.event_id, command="create_config")


@router.delete(
    "/models/{model_id}",
    response_model=CommandAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Delete a network model config (published as a command)",
    responses={**AUTH_ERRORS, **NOT_FOUND("Model config nope not found")},
)
async def delete_model(
    request: Request,
    model_id: Annotated[str, Path(min_length=1, max_length=64)],
    principal: Principal = Depends(require(ML_RETRAIN)),  # noqa: B008
) -> CommandAccepted:
    existing = await run_in_threadpool(_registry(request).get_config, model_id)
    if existing is None or existing.deleted_at is not None:
        raise HTTPException(404, detail=f"Model config {model_id} not found")
    command = await _publish(
        request, principal, command=ModelCommandType.DELETE_CONFIG, scope=model_id
    )
    return CommandAccepted(id=model_id, command_id=command.event_id, command="delete_config")


# --- fields ------------------------------------------------------------------------------------
class ModelStatus(BaseModel):
    model_id: str = Field(examples=["dl_bitrate-river_linear"])
    architecture: str = Field(examples=["river_linear"])
    online: bool
    live_version: str | None = Field(description="Batch models: the live trained version")
    online_scores: dict[str, float] = Field(
        default_factory=dict, description="Online models: running scores on the stream"
    )


class FieldOut(BaseModel):
    field: str = Field(examples=["dl_bitrate"])
    has_models: bool = Field(description="Whether a live model config forecasts the field")
    models: list[str] = Field(examples=[["dl_bitrate-river_linear", "dl_bitrate-lightgbm"]])
    state: str | None = Field(None, examples=["MONITORING"])
    best_model_id: str | None = Field(None, examples=["dl_bitrate-river_linear"])
    metric: str | None = Field(None, examples=["rmse"])
    baseline: float | None = Field(None, examples=[19123.4])
    model_status: list[ModelStatus] | None = None


def _model_status(request: Request, config: ModelConfig, field: str) -> ModelStatus:
    s = store(request)
    scores = {}
    if config.online:
        for metric in ("mae", "rmse", "mape", "r2"):
            history = s.monitoring.latest_scores(DOMAIN, config.id, metric)
            if field in history:
                scores[metric] = history[field]
    return ModelStatus(
        model_id=config.id,
        architecture=str(config.architecture),
        online=config.online,
        live_version=None if config.online else s.models.active_version(DOMAIN, config.id),
        online_scores=scores,
    )


@router.get(
    "/fields",
    response_model=list[FieldOut],
    summary="Output fields with their models; with `include_model_status`, every measurement "
    "field (`has_models` false for those no config forecasts) and each model's status",
    responses=AUTH_ERRORS,
)
def fields(
    request: Request,
    include_model_status: bool = False,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> list[FieldOut]:
    configs = _registry(request).live_configs()
    repo = SqlFieldStateRepository(store(request))
    names = sorted({f for c in configs for f in c.output_fields})
    if include_model_status:
        names = [*names, *(f for f in FIELDS if f not in names)]
    out = []
    for name in names:
        models = configs_for_field(configs, name)
        state = repo.get(name)
        out.append(
            FieldOut(
                field=name,
                has_models=bool(models),
                models=[c.id for c in models],
                state=str(state.state) if state else str(MonitoringState.MONITORING),
                best_model_id=state.best_model_id if state else None,
                metric=state.metric if state else None,
                baseline=state.baseline if state else None,
                model_status=[_model_status(request, c, name) for c in models]
                if include_model_status
                else None,
            )
        )
    return out


class ConfigOut(ModelConfigOut):
    status: list[ModelStatus] | None = None


def _config_out(request: Request, row: Any, include_details: bool) -> ConfigOut:
    return ConfigOut(
        id=row.config.id,
        config=row.config.model_dump(mode="json"),
        created_at=row.created_at,
        status=[_model_status(request, row.config, f) for f in row.config.output_fields]
        if include_details
        else None,
    )


def config_list(request: Request, include_details: bool) -> list[ConfigOut]:
    """Live network model configs (``GET /v1/ml/models`` lists them next to the versions)."""
    return [_config_out(request, row, include_details) for row in _registry(request).configs()]


def config_get(request: Request, model_id: str) -> ConfigOut | None:
    """One live network model config with its status (``GET /v1/ml/models/{id}``)."""
    row = _registry(request).get_config(model_id)
    if row is None or row.deleted_at is not None:
        return None
    return _config_out(request, row, True)


CONFIG_LISTERS[DOMAIN] = config_list
CONFIG_GETTERS[DOMAIN] = config_get


# --- inference ---------------------------------------------------------------------------------
class InferenceIn(BaseModel):
    model_config = {"json_schema_extra": {"examples": [{"cell_id": "2", "field": "dl_bitrate"}]}}

    cell_id: str = Field(min_length=1, max_length=64)
    field: str = Field(min_length=1, max_length=60)
    model_id: str | None = Field(None, max_length=64, description="Default: the field's best")


class InferenceOut(BaseModel):
    cell_id: str = Field(examples=["2"])
    field: str = Field(examples=["dl_bitrate"])
    model_id: str = Field(examples=["dl_bitrate-river_linear"])
    model_version: str = Field(examples=["online:dl_bitrate-river_linear"])
    period_start: datetime = Field(description="Start of the forecast window")
    value: float = Field(examples=[5210.4])
    lower: float | None = None
    upper: float | None = None
    source: Literal["stream", "batch"] = Field(examples=["stream"])


@router.post(
    "/inference",
    response_model=InferenceOut,
    summary="Forecast of a cell's field by a model (the field's best when omitted)",
    responses={**AUTH_ERRORS, **NOT_FOUND("No forecast of dl_bitrate for cell 999 yet")},
)
def inference(
    request: Request,
    body: InferenceIn,
    _: Principal = Depends(require(ML_PREDICT)),  # noqa: B008
) -> InferenceOut:
    started = time.perf_counter()
    out = _inference(request, body)
    request.app.state.predictions.record(
        DOMAIN, "inference", out.model_version, body,
        out.model_dump(mode="json", exclude={"model_version"}),
        time.perf_counter() - started,
    )  # fmt: skip
    return out


def _inference(request: Request, body: InferenceIn) -> InferenceOut:
    # imported on the first inference, not with the app: the network models' code (River's
    # forests, scipy.stats, LightGBM) costs ~1.5 s of CPU that every API start would otherwise
    # pay, serving network models or not
    from ml.network.inference import NoCellData, forecast_cell
    from ml.network.processor import forecast_series_key, online_model_version

    configs = _configs_of(request, body.field)
    model_id = body.model_id
    if model_id is None:
        state = SqlFieldStateRepository(store(request)).get(body.field)
        if state is None or state.best_model_id is None:
            raise HTTPException(404, detail=f"No best model elected for field {body.field}")
        model_id = state.best_model_id
    config = next((c for c in configs if c.id == model_id), None)
    if config is None:
        raise HTTPException(404, detail=f"Model {model_id} does not forecast {body.field}")
    s = store(request)
    if config.online:
        version = online_model_version(config.id)
        rows = s.series.forecasts(DOMAIN, forecast_series_key(body.cell_id, body.field), version)
        if not rows:
            raise HTTPException(
                404, detail=f"No forecast of {body.field} for cell {body.cell_id} yet"
            )
        last = rows[-1]
        return InferenceOut(
            cell_id=body.cell_id, field=body.field, model_id=config.id, model_version=version,
            period_start=last.period_start, value=last.value, lower=last.lower,
            upper=last.upper, source="stream",
        )  # fmt: skip
    version = s.models.active_version(DOMAIN, config.id)
    if version is None:
        raise HTTPException(404, detail=f"Model {config.id} has no trained version yet")
    model = load_model(s, DOMAIN, config.id, version)
    observations = s.series.observations(DOMAIN, series_key=body.cell_id)
    try:
        result = forecast_cell(
            model, config, body.field, body.cell_id, observations,
            request.app.state.settings.network_window_seconds,
        )  # fmt: skip
    except NoCellData as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    return InferenceOut(
        cell_id=body.cell_id, field=body.field, model_id=config.id, model_version=version,
        period_start=result.period_start, value=result.value, source="batch",
    )  # fmt: skip


# --- performance -------------------------------------------------------------------------------
class ScoreOut(BaseModel):
    model_id: str = Field(examples=["dl_bitrate-river_linear"])
    metric: str = Field(examples=["rmse"])
    score: float = Field(examples=[19123.4])
    baseline: float | None = None
    trigger: str = Field(examples=["evaluate"])
    recorded_at: datetime
    partition: int | None = Field(None, description="Stream partition of an online score")
    n: int | None = Field(None, description="Points behind an online score (its window)")


class PerformanceOut(BaseModel):
    field: str = Field(examples=["dl_bitrate"])
    metric: str = Field(examples=["rmse"])
    best_model_id: str | None = Field(examples=["dl_bitrate-river_linear"])
    baseline: float | None = Field(examples=[19123.4])
    latest: dict[str, ScoreOut] = Field(description="Latest evaluate/monitor score per model")
    models: list[ModelStatus]


def _score(row: Any) -> ScoreOut:
    return ScoreOut(
        model_id=row.model_id,
        metric=row.metric,
        score=row.score,
        baseline=row.baseline,
        trigger=row.trigger,
        recorded_at=row.recorded_at,
        partition=row.partition,
        n=row.n,
    )


@router.get(
    "/performance/{field}",
    response_model=PerformanceOut,
    summary="Scores of every model of a field",
    responses={**AUTH_ERRORS, **_UNKNOWN_FIELD},
)
def performance(
    request: Request,
    field: FieldName,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> PerformanceOut:
    configs = _configs_of(request, field)
    repo = SqlFieldStateRepository(store(request))
    state = repo.get(field)
    latest = {}
    for row in repo.scores(field):
        if row.trigger != "online":
            latest[row.model_id] = _score(row)
    return PerformanceOut(
        field=field,
        metric=state.metric if state else "rmse",
        best_model_id=state.best_model_id if state else None,
        baseline=state.baseline if state else None,
        latest=latest,
        models=[_model_status(request, c, field) for c in configs],
    )


class BestOut(BaseModel):
    field: str = Field(examples=["dl_bitrate"])
    best_model_id: str = Field(examples=["dl_bitrate-river_linear"])
    metric: str = Field(examples=["rmse"])
    baseline: float | None = Field(examples=[19123.4])
    degradation_factor: float = Field(
        description="The `DEGRADATION_FACTOR` setting", examples=[1.5]
    )
    degradation_threshold: float | None = Field(
        description="Degraded when the best model's score goes past this (rmse, mae, ...: "
        "above baseline x factor; r2: below baseline / factor); none without a baseline",
        examples=[28685.1],
    )
    elected_at: datetime | None


@router.get(
    "/performance/{field}/best",
    response_model=BestOut,
    summary="The field's best model, its baseline and the degradation threshold",
    responses={**AUTH_ERRORS, **NOT_FOUND("No best model elected for field dl_bitrate yet")},
)
def best(
    request: Request,
    field: FieldName,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> BestOut:
    _configs_of(request, field)
    state = SqlFieldStateRepository(store(request)).get(field)
    if state is None or state.best_model_id is None:
        raise HTTPException(404, detail=f"No best model elected for field {field} yet")
    factor = request.app.state.settings.degradation_factor
    return BestOut(
        field=field,
        best_model_id=state.best_model_id,
        metric=state.metric,
        baseline=state.baseline,
        degradation_factor=factor,
        degradation_threshold=None
        if state.baseline is None
        else degradation_limit(state.baseline, state.metric, factor),
        elected_at=state.elected_at,
    )


class StatusOut(BaseModel):
    field: str = Field(examples=["dl_bitrate"])
    state: str = Field(examples=["MONITORING"])
    active_jobs: list[str] = Field(examples=[[]])
    next_check_at: datetime | None
    interval_seconds: float = Field(examples=[300.0])
    factor: float = Field(examples=[1.5])
    best_model_id: str | None = Field(examples=["dl_bitrate-river_linear"])
    metric: str = Field(examples=["rmse"])
    baseline: float | None = Field(examples=[19123.4])
    reason: str = Field(examples=["elected dl_bitrate-river_linear"])


@router.get(
    "/performance/{field}/status",
    response_model=StatusOut,
    summary="Monitoring state of a field",
    responses={**AUTH_ERRORS, **_UNKNOWN_FIELD},
)
def field_status(
    request: Request,
    field: FieldName,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> StatusOut:
    _configs_of(request, field)
    settings = request.app.state.settings
    state = SqlFieldStateRepository(store(request)).get(field)
    return StatusOut(
        field=field,
        state=str(state.state) if state else str(MonitoringState.MONITORING),
        active_jobs=list(state.jobs) if state else [],
        next_check_at=state.next_check_at if state else None,
        interval_seconds=settings.monitoring_interval_seconds,
        factor=settings.degradation_factor,
        best_model_id=state.best_model_id if state else None,
        metric=state.metric if state else "rmse",
        baseline=state.baseline if state else None,
        reason=state.reason if state else "",
    )


@router.get(
    "/performance/{field}/history",
    response_model=list[ScoreOut],
    summary="Score history of a field, oldest first (evaluate, monitor, auto_monitor)",
    responses={**AUTH_ERRORS, **_UNKNOWN_FIELD},
)
def history(
    request: Request,
    field: FieldName,
    model_id: Annotated[str | None, Query(max_length=64)] = None,
    include_online: bool = False,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> list[ScoreOut]:
    _configs_of(request, field)
    rows = SqlFieldStateRepository(store(request)).scores(field, model_id)
    return [_score(r) for r in rows if include_online or r.trigger != "online"]


class CommandOutcome(BaseModel):
    command_id: str
    command: str = Field(examples=["evaluate"])
    field: str = Field(examples=["dl_bitrate"])
    result: dict[str, Any] = Field(
        examples=[{"best_model_id": "dl_bitrate-river_linear", "baseline": 19123.4}]
    )


async def _answer(request: Request, command: ModelCommand, field: str) -> CommandOutcome:
    row = await _result(request, command)
    if row.status != "ok":
        error = row.error or "command failed"
        code = 422 if "no best model" in error.lower() else 400
        raise HTTPException(code, detail=error)
    return CommandOutcome(
        command_id=row.command_id, command=row.command, field=field, result=row.result
    )


_COMMAND_ERRORS = {
    **AUTH_ERRORS,
    **_UNKNOWN_FIELD,
    400: {"model": Detail, "description": "The trainer refused the command (reason given)"},
    503: {"model": Detail, "description": "The broker did not acknowledge the command"},
    504: {"model": Detail, "description": "The trainer did not answer in time"},
}


@router.post(
    "/performance/{field}/evaluate",
    response_model=CommandOutcome,
    summary="Evaluate every model of the field and elect the best (command + result)",
    responses=_COMMAND_ERRORS,
)
async def evaluate(
    request: Request,
    field: FieldName,
    metric: Metric = "rmse",
    principal: Principal = Depends(require(ML_RETRAIN)),  # noqa: B008
) -> CommandOutcome:
    await run_in_threadpool(_configs_of, request, field)
    command = await _publish(
        request, principal, command=ModelCommandType.EVALUATE, scope=field, metric=metric
    )
    return await _answer(request, command, field)


@router.post(
    "/performance/{field}/set-best/{model_id}",
    response_model=CommandOutcome,
    summary="Make a model the field's best without re-evaluating (command + result)",
    responses=_COMMAND_ERRORS,
)
async def set_best(
    request: Request,
    field: FieldName,
    model_id: Annotated[str, Path(min_length=1, max_length=64)],
    principal: Principal = Depends(require(ML_RETRAIN)),  # noqa: B008
) -> CommandOutcome:
    configs = await run_in_threadpool(_configs_of, request, field)
    if model_id not in {c.id for c in configs}:
        raise HTTPException(404, detail=f"Model {model_id} not found for field {field}")
    command = await _publish(
        request, principal, command=ModelCommandType.SET_BEST, scope=field, version=model_id
    )
    return await _answer(request, command, field)


@router.post(
    "/performance/{field}/monitor",
    response_model=CommandOutcome,
    summary="Re-score the field's best model against its baseline (command + result)",
    responses={
        **_COMMAND_ERRORS,
        422: {"model": Detail, "description": "The field has no best model yet"},
    },
)
async def monitor(
    request: Request,
    field: FieldName,
    principal: Principal = Depends(require(ML_RETRAIN)),  # noqa: B008
) -> CommandOutcome:
    await run_in_threadpool(_configs_of, request, field)
    state = await run_in_threadpool(SqlFieldStateRepository(store(request)).get, field)
    if state is None or state.best_model_id is None:
        raise HTTPException(422, detail=f"No best model for field {field}: evaluate first")
    command = await _publish(request, principal, command=ModelCommandType.MONITOR, scope=field)
    return await _answer(request, command, field)
