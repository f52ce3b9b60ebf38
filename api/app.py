"""FastAPI application factory: read-only over the registry; commands become events.

Routers: health and probes (``/livez``, ``/readyz``; public), models, predictions, monitoring,
training, observations; ``/metrics`` (public, Prometheus); the operator dashboard at ``/``
(``api.dashboard``). At start the served versions are loaded, then kept fresh by the
model-updated subscriber and a periodic store check (``api.updates``); forecast books are built
in a worker process (``api.books``). Served predictions are buffered and written to the
prediction log by a background task (``api.prediction_log``) through that same worker process,
flushed once more at shutdown (before the worker stops).

Limits before work: bodies over ``API_MAX_BODY_BYTES`` answer 413 before authentication
(``api.limits``), JSON bodies are parsed strictly (no NaN / Infinity / overflow: 422), failed
authentications are throttled per address (``api.throttle``). Heads and URLs are bounded by the
server's protocol (``api.protocol``, given to uvicorn by ``millrace api``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

import millrace
from api import (
    commands,
    dead_letters,
    health,
    models,
    monitoring,
    network,
    observations,
    predict,
    probes,
    training,
)
from api.auth import Authenticator, document_security
from api.dashboard import router as dashboard_router
from api.limits import BodyLimitMiddleware, install_error_handlers
from api.live import LiveModel, LiveModels
from api.prediction_log import PredictionRecorder
from api.publisher import CommandPublisher
from api.telemetry import Telemetry, TelemetryMiddleware
from api.updates import follow_model_updates, refresh_periodically
from millrace.settings import Settings, get_settings
from ml.registry.store import Store

__all__ = ["create_app"]

_TAGS = [
    {"name": "health", "description": "Liveness and dependencies (public)."},
    {"name": "models", "description": "Model versions and activations (`ml:models`)."},
    {"name": "predictions", "description": "Demand forecasts (`ml:predict`)."},
    {"name": "monitoring", "description": "Drift, latency (`ml:models`), Prometheus metrics."},
    {"name": "training", "description": "Retrain requests and jobs (`ml:retrain`, `ml:models`)."},
    {"name": "network", "description": "Network fields, model configs, inference, performance."},
    {"name": "observations", "description": "What the streams have stored."},
]


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """Build the app; the store is opened (and migrated) here unless one is given."""
    settings = settings or get_settings()
    telemetry = Telemetry()
    store = store or Store.from_url(settings.database_url, upgrade=True)

    def on_change(domain: str, current: LiveModel | None) -> None:
        row = current.version if current else None
        telemetry.serving(domain, row.version if row else None, row.algorithm if row else None)

    live = LiveModels(
        store,
        on_change=on_change,
        on_check=telemetry.refresh_check,
        on_build=lambda domain, built: telemetry.book_built(domain, built.seconds),
    )
    # the prediction log is written by the book worker's process, off this process's GIL
    recorder = PredictionRecorder(
        store, settings, on_drop=telemetry.log_dropped.inc, worker=live.builder
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.publisher = CommandPublisher(settings)
        await run_in_threadpool(live.refresh_all)
        # what start-up created lives as long as the process: out of the collector's reach, so
        # a full collection never walks pandas, sklearn and SQLAlchemy between two requests
        gc.freeze()
        tasks = [
            asyncio.create_task(follow_model_updates(settings, live)),
            asyncio.create_task(refresh_periodically(settings, live)),
            asyncio.create_task(recorder.run()),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await recorder.flush()
            app.state.publisher.close()
            await run_in_threadpool(live.close)

    app = FastAPI(
        title="Millrace ML API",
        version=millrace.__version__,
        description=(
            "Model metadata, predictions and monitoring for the gateway. Read-only: retrain and "
            "activate are published as events and answered with the job they created. "
            "Auth: `Authorization: Bearer <JWT>` or `X-Internal-Service-Key`."
        ),
        openapi_tags=_TAGS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.live = live
    app.state.auth = Authenticator(settings)
    app.state.telemetry = telemetry
    app.state.predictions = recorder

    install_error_handlers(app)
    document_security(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)  # outermost: counts 413s too

    # predictions first: the hot path is matched before the other routers are tried (the docs
    # keep the order of the tags above)
    for module in (predict, health, models, monitoring, commands, training, network,
                   observations, dead_letters):  # fmt: skip
        app.include_router(module.router)
    app.include_router(monitoring.metrics_router)
    app.include_router(probes.router)
    app.include_router(dashboard_router)  # the operator pages at / (api/dashboard/)
    return app
