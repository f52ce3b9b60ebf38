"""Retraining: ``POST /v1/ml/retrain`` publishes a retrain request and (by default) waits for
its job; ``GET /v1/ml/training/jobs`` (``?model_id=``: one model's) and ``/{job_id}`` read the
jobs.

The trainer coalesces a request into the scope's queued or running job, so a retrain asked for
while a job runs joins that job; the answer is that job's outcome. Jobs can be looked up by
their id or by the id of any request they hold (the ``job_id`` a 202 answer gives).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import ML_MODELS, ML_RETRAIN, Principal, require
from api.common import (
    AUTH_ERRORS,
    DOMAIN_EXAMPLES,
    NOT_FOUND,
    Detail,
    Metrics,
    domain_or_default,
    iso_z,
    metrics_of,
    store,
)
from api.limits import StrictJSONRoute, client_event
from api.publisher import BrokerUnavailable
from ml.domains import all_domains
from ml.registry.entities import JOB_STATUSES, TrainingJobRow
from ml.training.errors import (
    EXTRA_NOT_INSTALLED,
    UNKNOWN_SCOPE,
    ExtraNotInstalled,
    TrainingDataError,
    UnknownScope,
)
from schemas.events import RetrainReason, RetrainRequest

__all__ = [
    "JobOut",
    "RetrainBody",
    "check_scope",
    "failure_status",
    "job_out",
    "publish_retrain",
    "router",
]

router = APIRouter(route_class=StrictJSONRoute, prefix="/v1/ml", tags=["training"])

#: Failure reasons answered 400 (the caller's request cannot be trained), not 500.
_CALLER_ERRORS = ("Insufficient training data", "No sales observations", "end_date must be after",
                  "No test rows")  # fmt: skip


def failure_status(error: str) -> int:
    """The status of a failed job's answer, by its recorded error: the caller's fault is a
    4xx (unknown scope 404, a missing optional extra 422, unusable data 400), else 500."""
    if error.startswith(UNKNOWN_SCOPE):
        return 404
    if error.startswith(EXTRA_NOT_INSTALLED):
        return 422
    return 400 if error.startswith(_CALLER_ERRORS) else 500


async def check_scope(request: Request, domain: str, scope: str) -> None:
    """Refuse a retrain the trainer could only fail: an unknown scope (404), a model whose
    optional extra is not installed (422, naming it), a scope it cannot train (400)."""
    found = next(d for d in all_domains() if d.name == domain)
    configured = found.configure(request.app.state.settings)
    try:
        await run_in_threadpool(configured.check_scope, scope, store(request))
    except UnknownScope as exc:
        raise HTTPException(404, detail=str(exc)) from exc
    except ExtraNotInstalled as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    except TrainingDataError as exc:
        raise HTTPException(400, detail=str(exc)) from exc


class RetrainBody(BaseModel):
    model_config = {
        "json_schema_extra": {"examples": [{"start_date": "2024-01-01", "end_date": "2026-10-31"}]}
    }

    start_date: date | None = None
    end_date: date | None = None


class Samples(BaseModel):
    train: int = Field(examples=[4620])
    test: int = Field(examples=[1180])
    total: int = Field(examples=[5800])


class RetrainResult(BaseModel):
    """The dealership clients' retrain answer, plus the job and whether it went live."""

    version: str = Field(examples=["v1.0.1-20261122"])
    metrics: Metrics
    trained_at: str = Field(examples=["2026-11-22T10:15:00Z"])
    samples: Samples
    job_id: str
    promoted: bool = Field(description="False when the new version did not beat the live one")
    reason: str = Field(
        examples=[
            "lightgbm mae 35.3 beats active v1.0.0-20261122 re-scored on the same window (36.4)"
        ]
    )


class JobAccepted(BaseModel):
    job_id: str = Field(description="Look it up at /v1/ml/training/jobs/{job_id}")
    status: str = Field(examples=["queued"])


class JobOut(BaseModel):
    id: str
    domain: str = Field(examples=DOMAIN_EXAMPLES[:1])
    scope: str = Field(examples=["global"])
    status: str = Field(examples=["completed"])
    trigger: str = Field(examples=["manual"])
    request_ids: list[str]
    start_date: date | None
    end_date: date | None
    version: str | None
    error: str | None
    outcome: str | None = Field(
        description="promoted / rejected once completed (none while open or when failed)",
        examples=["promoted"],
    )
    cancel: dict[str, Any] | None = Field(
        None,
        description="The cancel asked for the job (requested_by, at, reason, command_id): a "
        "running job ends `cancelled` at its next checkpoint",
    )
    reason: str | None = Field(
        description="Why: the gate's decision and every candidate's score (or the failure)",
        examples=[
            "first version of demand/global: the best candidate river_online goes live (mae "
            "0.3905; no live version to beat); mae of the candidates: seasonal_naive 1.875 "
            "(baseline), river_online 0.3905, lightgbm 0.5487"
        ],
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    items: list[JobOut]
    total: int = Field(examples=[3])
    limit: int = Field(examples=[50])
    offset: int = Field(examples=[0])


def job_out(job: TrainingJobRow) -> JobOut:
    return JobOut(
        id=job.id,
        domain=job.domain,
        scope=job.scope,
        status=job.status,
        trigger=job.trigger,
        request_ids=list(job.request_ids),
        start_date=job.start_date,
        end_date=job.end_date,
        version=job.version,
        error=job.error,
        outcome=job.outcome,
        cancel=job.params.get("cancel") or None,
        reason=job.reason,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


@router.post(
    "/retrain",
    response_model=RetrainResult,
    summary="Retrain (published as a request; waits for the job unless `Prefer: respond-async`)",
    responses={
        202: {"model": JobAccepted, "description": "Published; the job is not finished yet"},
        400: {
            "model": Detail,
            "description": "Bad dates, or the job failed for lack of data",
            "content": {
                "application/json": {"example": {"detail": "end_date must be after start_date"}}
            },
        },
        404: {
            "model": Detail,
            "description": "Unknown domain, or no model of the domain has this scope",
            "content": {
                "application/json": {
                    "example": {
                        "detail": "Unknown scope: network/nosuch-config (no network model "
                        "config has that id or forecasts that field)"
                    }
                }
            },
        },
        422: {
            "model": Detail,
            "description": "The scope's models need an optional extra that is not installed",
            "content": {
                "application/json": {
                    "example": {
                        "detail": "Extra not installed: architecture ann (PyTorch) needs the "
                        "optional extra 'torch' (pip install 'millrace[torch]')"
                    }
                }
            },
        },
        **AUTH_ERRORS,
        503: {"model": Detail, "description": "The broker did not acknowledge the request"},
    },
)
async def retrain(
    request: Request,
    body: RetrainBody | None = None,
    domain: Annotated[
        str | None,
        Query(
            max_length=60,
            description="Domain (default: the `DEFAULT_DOMAIN` setting)",
            examples=DOMAIN_EXAMPLES[:1],
        ),
    ] = None,
    scope: Annotated[
        str,
        Query(min_length=1, max_length=120, description="Model scope (network: a config id)"),
    ] = "global",
    prefer: Annotated[str | None, Header(examples=["respond-async"])] = None,
    principal: Principal = Depends(require(ML_RETRAIN)),  # noqa: B008
) -> Any:
    body = body or RetrainBody()
    domain = domain_or_default(request, domain)
    if body.start_date and body.end_date and body.end_date <= body.start_date:
        raise HTTPException(400, detail="end_date must be after start_date")
    await check_scope(request, domain, scope)
    settings = request.app.state.settings
    retrain_request = await publish_retrain(request, principal, domain, scope, body)
    request_id = retrain_request.event_id
    if prefer and "respond-async" in prefer.lower():
        return JSONResponse({"job_id": request_id, "status": "queued"}, status_code=202)
    job = await _wait(request, request_id, settings.api_retrain_wait_seconds)
    if job is not None and job.status == "cancelled":
        raise HTTPException(409, detail=f"Job {job.id} was cancelled: {job.reason or ''}")
    if job is None or job.status not in ("completed", "failed"):
        status = job.status if job else "queued"
        return JSONResponse({"job_id": job.id if job else request_id, "status": status}, 202)
    if job.status == "failed":
        error = job.error or "training failed"
        raise HTTPException(failure_status(error), detail=error)
    return _result(request, job)


async def publish_retrain(
    request: Request, principal: Principal, domain: str, scope: str, body: RetrainBody
) -> RetrainRequest:
    """Publish a manual retrain request for ``domain``/``scope`` (503 when the broker does
    not acknowledge it); the trainer makes it a job whose id is the request's id."""
    retrain_request = client_event(
        RetrainRequest,
        event_id=str(uuid.uuid4()),
        occurred_at=datetime.now(UTC),
        domain=domain,
        scope=scope,
        reason=RetrainReason.MANUAL,
        start_date=body.start_date,
        end_date=body.end_date,
        requested_by=principal.subject or principal.via,
    )
    try:
        await run_in_threadpool(
            request.app.state.publisher.send,
            request.app.state.settings.topic_retrain_requests,
            f"{domain}/{scope}",
            retrain_request,
        )
    except BrokerUnavailable as exc:
        raise HTTPException(503, detail=str(exc)) from exc
    return retrain_request


async def _wait(request: Request, request_id: str, seconds: float) -> TrainingJobRow | None:
    s = store(request)
    deadline = time.monotonic() + seconds
    job = None
    while True:
        job = await run_in_threadpool(s.jobs.job_for_request, request_id)
        if job is not None and job.status in ("completed", "failed", "cancelled"):
            return job
        if time.monotonic() >= deadline:
            return job
        await asyncio.sleep(0.2)


def _result(request: Request, job: TrainingJobRow) -> RetrainResult:
    row = (
        store(request).models.get_version(job.domain, job.scope, job.version)
        if job.version
        else None
    )
    if row is None:
        raise HTTPException(500, detail=f"Job {job.id} completed without a stored version")
    return RetrainResult(
        version=row.version,
        metrics=metrics_of(row.metrics),
        trained_at=iso_z(row.trained_at),
        samples=Samples(train=row.train_samples, test=row.test_samples, total=row.total_samples),
        job_id=job.id,
        promoted=row.status != "rejected",
        reason=row.reason,
    )


@router.get(
    "/training/jobs",
    response_model=JobPage,
    summary="Training jobs, newest first",
    responses=AUTH_ERRORS,
)
def jobs(
    request: Request,
    domain: Annotated[str | None, Query(max_length=60)] = None,
    model_id: Annotated[
        str | None,
        Query(max_length=120, description="Jobs of this model (scope; network: a config id)"),
    ] = None,
    status: Annotated[
        str | None, Query(pattern="^(" + "|".join(sorted(JOB_STATUSES)) + ")$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> JobPage:
    s = store(request)
    rows = s.jobs.list_jobs(
        domain=domain, scope=model_id, status=status, limit=limit, offset=offset
    )
    return JobPage(
        items=[job_out(j) for j in rows],
        total=s.jobs.count_jobs(domain=domain, scope=model_id, status=status),
        limit=limit,
        offset=offset,
    )


@router.get(
    "/training/jobs/{job_id}",
    response_model=JobOut,
    summary="One training job, by its id or the id of a request it holds",
    responses={**AUTH_ERRORS, **NOT_FOUND("Training job 5d0c... not found")},
)
def job(
    request: Request,
    job_id: str,
    _: Principal = Depends(require(ML_MODELS)),  # noqa: B008
) -> JobOut:
    found = store(request).jobs.job_for_request(job_id)
    if found is None:
        raise HTTPException(404, detail=f"Training job {job_id} not found")
    return job_out(found)
