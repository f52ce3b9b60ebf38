"""Model metadata: ``/v1/ml/models/latest`` (dealership shape), the version list, one version
(or one model config of a domain that has them), the activation history, and
``POST /v1/ml/models/{version}/activate`` (published command)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import ML_MODELS, ML_RETRAIN, Principal, require
from api.common import (
    AUTH_ERRORS,
    DOMAIN_EXAMPLES,
    NO_MODELS,
    NOT_FOUND,
    Detail,
    Metrics,
    domain_or_default,
    iso_z,
    live,
    metrics_of,
    store,
)
from api.limits import StrictJSONRoute, client_event
from api.publisher import BrokerUnavailable
from ml.registry.entities import VERSION_STATUSES, ModelVersionRow
from schemas.events import ModelCommand, ModelCommandType

__all__ = [
    "CONFIG_GETTERS",
    "CONFIG_LISTERS",
    "LatestModel",
    "ModelConfigOut",
    "ModelVersionOut",
    "router",
]

#: Domain name -> ``(request, include_details) -> its model configs`` (pydantic models), listed
#: by ``GET /v1/ml/models`` next to the versions. A domain's router adds its own.
CONFIG_LISTERS: dict[str, Callable[[Request, bool], list[BaseModel]]] = {}
#: Domain name -> ``(request, config id) -> the live config with its status, or None``, answered
#: by ``GET /v1/ml/models/{id}`` when no version has that name. A domain's router adds its own.
CONFIG_GETTERS: dict[str, Callable[[Request, str], ModelConfigOut | None]] = {}

router = APIRouter(route_class=StrictJSONRoute, prefix="/v1/ml", tags=["models"])

Domain = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=60,
        description="Domain (default: the `DEFAULT_DOMAIN` setting)",
        examples=DOMAIN_EXAMPLES[:1],
    ),
]
_VERSION_NOT_FOUND = f"Model version v9.9.9-20260101 not found for {DOMAIN_EXAMPLES[0]}"
Scope = Annotated[str, Query(min_length=1, max_length=120, description="Model scope")]


class LatestModel(BaseModel):
    """Exactly the fields of the dealership clients' ``models/latest``."""

    version: str = Field(examples=["v1.0.0-20261122"])
    trained_at: str = Field(description="ISO 8601 UTC", examples=["2026-11-22T10:15:00Z"])
    metrics: Metrics
    train_samples: int = Field(examples=[4620])
    test_samples: int = Field(examples=[1180])
    total_samples: int = Field(examples=[5800])
    algorithm: str = Field(examples=["lightgbm"])
    features: list[str] = Field(examples=[["month_of_year", "lag_1", "lag_12"]])
    segments_covered: int = Field(examples=[39])


class ModelVersionOut(BaseModel):
    domain: str = Field(examples=DOMAIN_EXAMPLES[:1])
    scope: str = Field(examples=["global"])
    version: str = Field(examples=["v1.0.0-20261122"])
    status: str = Field(examples=["active"])
    algorithm: str = Field(examples=["lightgbm"])
    features: list[str]
    metrics: Metrics
    candidates: dict[str, dict[str, float | None]] = Field(
        default_factory=dict, description="Test scores of every candidate of the job"
    )
    train_samples: int
    test_samples: int
    total_samples: int
    segments_covered: int
    job_id: str | None
    reason: str = Field(
        examples=[
            "lightgbm mae 35.3 beats active v1.0.0-20261122 re-scored on the same window (36.4)"
        ]
    )
    trained_at: datetime


class ModelConfigOut(BaseModel):
    """A domain's model config (network: the 5G service's "model") with its status."""

    id: str = Field(examples=["dl_bitrate-river_linear"])
    config: dict[str, Any]
    created_at: datetime
    status: list[Any] | None = Field(None, description="Per output field (details asked)")


class ModelPage(BaseModel):
    items: list[ModelVersionOut]
    total: int = Field(examples=[3])
    limit: int = Field(examples=[50])
    offset: int = Field(examples=[0])
    configs: list[dict[str, Any]] | None = Field(
        None,
        description="Model configs of the domains that have them (the domain asked, or all; "
        "details on request)",
    )


class ActivationOut(BaseModel):
    version: str = Field(examples=["v1.0.1-20261122"])
    previous_version: str | None = Field(examples=["v1.0.0-20261122"])
    activated_at: datetime
    reason: str
    actor: str = Field(examples=["trainer"])
    command_id: str | None


class ActivationHistory(BaseModel):
    domain: str = Field(examples=DOMAIN_EXAMPLES[:1])
    scope: str = Field(examples=["global"])
    at: datetime | None = Field(description="The instant asked about (now when omitted)")
    live_version: str | None = Field(description="The version live at `at`")
    items: list[ActivationOut] = Field(description="Oldest first")


class CommandAccepted(BaseModel):
    command_id: str = Field(examples=["0b6f2f0e-3c1e-4f8e-9a51-2f7d1c1f9a10"])
    command: str = Field(examples=["activate"])
    domain: str = Field(examples=DOMAIN_EXAMPLES[:1])
    version: str = Field(examples=["v1.0.0-20261122"])
    status: str = Field("published", examples=["published"])


def version_out(row: ModelVersionRow) -> ModelVersionOut:
    candidates = row.metrics.get("candidates")
    return ModelVersionOut(
        domain=row.domain,
        scope=row.scope,
        version=row.version,
        status=row.status,
        algorithm=row.algorithm,
        features=list(row.features),
        metrics=metrics_of(row.metrics),
        candidates=candidates if isinstance(candidates, dict) else {},
        train_samples=row.train_samples,
        test_samples=row.test_samples,
        total_samples=row.total_samples,
        segments_covered=row.segments_covered,
        job_id=row.job_id,
        reason=row.reason,
        trained_at=row.trained_at,
    )


@router.get(
    "/models/latest",
    response_model=LatestModel | Detail,
    summary="The live model version (dealership shape)",
    responses={
        200: {
            "content": {
                "application/json": {
                    "examples": {
                        "model": {
                            "value": {
                                "version": "v1.0.0-20261122",
                                "trained_at": "2026-11-22T10:15:00Z",
                                "metrics": {"mae": 35.3, "rmse": 61.8, "mape": 0.21, "r2": 0.93},
                                "train_samples": 4620,
                                "test_samples": 1180,
                                "total_samples": 5800,
                                "algorithm": "lightgbm",
                                "features": ["month_of_year", "lag_1", "lag_12"],
                                "segments_covered": 39,
                            }
                        },
                        "none": {"value": {"detail": NO_MODELS}},
                    }
                }
            }
        },
        **AUTH_ERRORS,
    },
)
async def latest(
    request: Request,
    domain: Domain = None,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> LatestModel | Detail:
    domain = domain_or_default(request, domain)
    current = live(request).get(domain)
    if current is None:
        return Detail(detail=NO_MODELS)
    row = current.version
    return LatestModel(
        version=row.version,
        trained_at=iso_z(row.trained_at),
        metrics=metrics_of(row.metrics),
        train_samples=row.train_samples,
        test_samples=row.test_samples,
        total_samples=row.total_samples,
        algorithm=row.algorithm,
        features=list(row.features),
        segments_covered=row.segments_covered,
    )


@router.get(
    "/models",
    response_model=ModelPage,
    summary="Model versions, newest first",
    responses=AUTH_ERRORS,
)
def list_models(
    request: Request,
    domain: Annotated[str | None, Query(max_length=60, examples=DOMAIN_EXAMPLES[:1])] = None,
    status_: Annotated[
        str | None,
        Query(alias="status", pattern="^(" + "|".join(sorted(VERSION_STATUSES)) + ")$"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    include_details: bool = False,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> ModelPage:
    s = store(request)
    rows = s.models.list_versions(domain=domain, status=status_, limit=limit, offset=offset)
    return ModelPage(
        items=[version_out(r) for r in rows],
        total=s.models.count_versions(domain=domain, status=status_),
        limit=limit,
        offset=offset,
        configs=_configs(request, domain, include_details),
    )


def _configs(request: Request, domain: str | None, include_details: bool) -> list | None:
    """The model configs of ``domain`` (or of every domain); None when it has no configs."""
    listers = [lister for name, lister in CONFIG_LISTERS.items() if domain in (None, name)]
    if not listers:
        return None
    return [
        c.model_dump(mode="json") for lister in listers for c in lister(request, include_details)
    ]


@router.get(
    "/models/{version}",
    response_model=ModelVersionOut | ModelConfigOut,
    summary="One model version, or a model config by its id (network: the 5G service's "
    "`GET /models/{model_id}`, with the status of each output field)",
    responses={**AUTH_ERRORS, **NOT_FOUND(_VERSION_NOT_FOUND)},
)
def get_model(
    request: Request,
    version: Annotated[str, Path(min_length=1, max_length=120)],
    domain: Domain = None,
    scope: Scope = "global",
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> ModelVersionOut | ModelConfigOut:
    asked = domain
    domain = domain_or_default(request, domain)
    row = store(request).models.get_version(domain, scope, version)
    if row is not None:
        return version_out(row)
    for name, getter in CONFIG_GETTERS.items():
        if asked in (None, name):
            config = getter(request, version)
            if config is not None:
                return config
    raise HTTPException(
        404, detail=f"Model version {version} not found for {domain} (nor a model config)"
    )


@router.get(
    "/activations",
    response_model=ActivationHistory,
    summary="Activation history; `at` answers which version was live then",
    responses=AUTH_ERRORS,
)
def activations(
    request: Request,
    domain: Domain = None,
    scope: Scope = "global",
    at: Annotated[datetime | None, Query(examples=["2026-11-22T10:00:00Z"])] = None,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> ActivationHistory:
    domain = domain_or_default(request, domain)
    s = store(request)
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    history = s.models.activations(domain, scope)
    live_version = (
        s.models.live_at(domain, scope, at) if at else s.models.active_version(domain, scope)
    )
    return ActivationHistory(
        domain=domain,
        scope=scope,
        at=at,
        live_version=live_version,
        items=[
            ActivationOut(
                version=a.version,
                previous_version=a.previous_version,
                activated_at=a.activated_at,
                reason=a.reason,
                actor=a.actor,
                command_id=a.command_id,
            )
            for a in history
        ],
    )


class ActivateBody(BaseModel):
    reason: str = Field("", max_length=500, examples=["roll back: v1.0.1 over-forecasts"])


@router.post(
    "/models/{version}/activate",
    response_model=CommandAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Publish an activate command for a version (the trainer applies it)",
    responses={
        **AUTH_ERRORS,
        **NOT_FOUND(_VERSION_NOT_FOUND),
        503: {"model": Detail, "description": "The broker did not acknowledge the command"},
    },
)
async def activate(
    request: Request,
    response: Response,
    version: str,
    body: ActivateBody | None = None,
    domain: Domain = None,
    scope: Scope = "global",
    principal: Principal = Depends(require(ML_RETRAIN)),  # noqa: B008
) -> Any:
    domain = domain_or_default(request, domain)
    s = store(request)
    row = await run_in_threadpool(s.models.get_version, domain, scope, version)
    if row is None:
        raise HTTPException(404, detail=f"Model version {version} not found for {domain}")
    command = client_event(
        ModelCommand,
        event_id=str(uuid.uuid4()),
        occurred_at=datetime.now(UTC),
        command=ModelCommandType.ACTIVATE,
        domain=domain,
        scope=scope,
        version=version,
        reason=(body.reason if body else "") or "activated through the API",
        requested_by=principal.subject or principal.via,
    )
    settings = request.app.state.settings
    try:
        await run_in_threadpool(
            request.app.state.publisher.send, settings.topic_model_commands, domain, command
        )
    except BrokerUnavailable as exc:
        raise HTTPException(503, detail=str(exc)) from exc
    return CommandAccepted(
        command_id=command.event_id, command="activate", domain=domain, version=version
    )
