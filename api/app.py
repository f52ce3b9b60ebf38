"""FastAPI application factory: read-only over the registry; commands become events."""

from __future__ import annotations

from fastapi import FastAPI

import millrace
from api import health, observations
from millrace.settings import Settings, get_settings
from ml.registry.store import Store

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """Build the app; the store is opened (and migrated) here unless one is given."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Millrace ML API",
        version=millrace.__version__,
        description="Model metadata, predictions and monitoring for the gateway (read-only).",
    )
    app.state.settings = settings
    app.state.store = store or Store.from_url(settings.database_url, upgrade=True)
    app.include_router(health.router)
    app.include_router(observations.router)
    return app
