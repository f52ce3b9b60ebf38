"""Training by model and cancellation (the 5G lifecycle service's routes):
``POST /v1/ml/training/train`` and ``DELETE /v1/ml/training/jobs/{job_id}``.

Both are published as events (the API never writes the registry): train is a manual retrain
request for one model (a model config of a domain that has them, e.g. a network config id,
or a domain's scope); cancel is a ``cancel_job`` model command. The trainer ends a queued job
``cancelled`` at once and a running one at its next checkpoint (before each candidate), with no
version stored.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import ML_RETRAIN, Principal, require
from api.commands import JobOut, RetrainBody, check_scope, job_out, publish_retrain
from api.common import AUTH_ERRORS, NOT_FOUND, Detail, store
from api.limits import StrictJSONRoute, client_event
from api.models import CONFIG_GETTERS
from api.publisher import BrokerUnavailable
from ml.domains import all_domains
from schemas.events import ModelCommand, ModelCommandType

__all__ = ["router"]

router = APIRouter(route_class=StrictJSONRoute, prefix="/v1/ml", tags=["training"])


class TrainBody(BaseModel):
    model_config = {"json_schema_extra": {"examples": [{"model_id": "rsrp-lightgbm"}]}}

    model_id: str = Field(
        min_length=1, max_length=120,
        description="A model config id (network), or a domain's scope with `domain` given",
    )  # fmt: skip
    domain: str | None = Field(
        None, max_length=60, description="Default: the domain whose config has this id"
    )
    start_date: date | None = None
    end_date: date | None = None


class TrainAccepted(BaseModel):
    job_id: str = Field(description="Look it up at /v1/ml/training/jobs/{job_id}")
    model_id: str = Field(examples=["rsrp-lightgbm"])
    domain: str = Field(examples=["network"])
    status: str = Field("queued", examples=["queued"])


def _domain_of(request: Request, body: TrainBody) -> str:
    """The domain training ``body.model_id``: the one asked (its config must exist when the
    domain has configs), else the domain whose live config has that id (404 when none)."""
    known = {d.name for d in all_domains()}
    if body.domain is not None:
        if body.domain not in known:
            raise HTTPException(404, detail=f"Unknown domain: {body.domain}")
        getter = CONFIG_GETTERS.get(body.domain)
        if getter is not None and getter(request, body.model_id) is None:
            raise HTTPException(404, detail=f"Model {body.model_id} not found in {body.domain}")
        return body.domain
    for name, getter in CONFIG_GETTERS.items():
        if getter(request, body.model_id) is not None:
            return name
    raise HTTPException(
        404, detail=f"Model {body.model_id} not found (no model config has this id)"
    )


@router.post(
    "/training/train",
    response_model=TrainAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Train one model (published as a retrain request; answered with its job id)",
    responses={
        **AUTH_ERRORS,
        **NOT_FOUND("Model nosuch-config not found (no model config has this id)"),
        400: {"model": Detail, "description": "end_date not after start_date"},
        422: {"model": Detail, "description": "The model needs an optional extra not installed"},
        503: {"model": Detail, "description": "The broker did not acknowledge the request"},
    },
)
async def train(
    request: Request,
    body: TrainBody,
    principal: Principal = Depends(require(ML_RETRAIN)),  # noqa: B008
) -> TrainAccepted:
    if body.start_date and body.end_date and body.end_date <= body.start_date:
        raise HTTPException(400, detail="end_date must be after start_date")
    domain = await run_in_threadpool(_domain_of, request, body)
    await check_scope(request, domain, body.model_id)  # e.g. 422 an extra not installed
    published = await publish_retrain(
        request, principal, domain, body.model_id,
        RetrainBody(start_date=body.start_date, end_date=body.end_date),
    )  # fmt: skip
    return TrainAccepted(job_id=published.event_id, model_id=body.model_id, domain=domain)


_ENDED = ("completed", "failed")


@router.delete(
    "/training/jobs/{job_id}",
    response_model=JobOut,
    summary="Cancel a training job (published as a command): 200 once `cancelled`, 202 while "
    "a running job reaches its next checkpoint",
    responses={
        **AUTH_ERRORS,
        **NOT_FOUND("Training job 5d0c... not found"),
        202: {"model": JobOut, "description": "Cancel asked; the job has not stopped yet"},
        409: {"model": Detail, "description": "The job already ended (completed or failed)"},
        503: {"model": Detail, "description": "The broker did not acknowledge the command"},
    },
)
async def cancel(
    request: Request,
    job_id: Annotated[str, Path(min_length=1, max_length=64)],
    principal: Principal = Depends(require(ML_RETRAIN)),  # noqa: B008
) -> Any:
    jobs = store(request).jobs
    job = await run_in_threadpool(jobs.job_for_request, job_id)
    if job is None:
        raise HTTPException(404, detail=f"Training job {job_id} not found")
    if job.status in _ENDED:
        raise HTTPException(409, detail=f"Training job {job.id} already {job.status}")
    if job.status != "cancelled":
        command = client_event(
            ModelCommand,
            event_id=str(uuid.uuid4()),
            occurred_at=datetime.now(UTC),
            command=ModelCommandType.CANCEL_JOB,
            domain=job.domain,
            scope=job.scope,
            job_id=job.id,
            reason="cancelled through the API",
            requested_by=principal.subject or principal.via,
        )
        settings = request.app.state.settings
        try:
            await run_in_threadpool(
                request.app.state.publisher.send,
                settings.topic_model_commands,
                job.domain,
                command,
            )
        except BrokerUnavailable as exc:
            raise HTTPException(503, detail=str(exc)) from exc
        deadline = time.monotonic() + settings.api_command_wait_seconds
        while True:  # until the trainer took the cancel (or ended the job), or the wait ends
            job = await run_in_threadpool(jobs.get_job, job.id)
            assert job is not None
            if job.status not in ("queued", "running") or job.params.get("cancel"):
                break
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.1)
        if job.status in _ENDED:
            raise HTTPException(
                409, detail=f"Training job {job.id} {job.status} before the cancel reached it"
            )
    out = job_out(job)
    if job.status == "cancelled":
        return out
    return JSONResponse(out.model_dump(mode="json"), status_code=202)
