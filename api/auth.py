"""Authentication and permissions for the gateway: Bearer JWT or ``X-Internal-Service-Key``.

- JWT: HS256 with ``JWT_SECRET`` and/or RS256 with ``JWT_PUBLIC_KEY``; ``exp`` is required,
  ``nbf`` checked when present, ``iss`` / ``aud`` when configured (5 s leeway). Permissions
  come from the first claim of ``AUTH_PERMISSION_CLAIMS`` present in the token: a list, or a
  space/comma separated string.
- Service key: compared in constant time; a valid key holds every permission (it is the
  gateway's own identity).
- Nothing configured: every protected route answers 401 (never open by accident).

Errors: 401 ``{"detail": "Not authenticated"}`` (with ``WWW-Authenticate: Bearer``) and 403
``{"detail": "User does not have required permission: ml:models"}``. Tokens and keys are never
logged.

Cost: :func:`require` is ONE ``async`` dependency reading the two headers itself. The checks are
microseconds of CPU, cheaper on the event loop than a hop to the thread pool, and every extra
FastAPI dependency (the security scheme objects, a shared sub-dependency) cost tens of
microseconds per request. The schema still documents both schemes on every protected operation
(:func:`document_security`).

Throttle: a request that presents credentials which fail counts against its client address
(:class:`~api.throttle.FailureThrottle`); past ``AUTH_FAILURE_LIMIT`` failures within
``AUTH_FAILURE_WINDOW_SECONDS`` the address gets 429 with ``Retry-After`` before any credential
is checked. A request without credentials is not a guess and is not counted.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import FastAPI, HTTPException, Request, status

from api.throttle import FailureThrottle
from millrace.settings import Settings

__all__ = [
    "ML_MODELS",
    "ML_PREDICT",
    "ML_RETRAIN",
    "Authenticator",
    "Principal",
    "document_security",
    "require",
]

log = logging.getLogger(__name__)

ML_MODELS, ML_PREDICT, ML_RETRAIN = "ml:models", "ml:predict", "ml:retrain"
ALL_PERMISSIONS = frozenset({ML_MODELS, ML_PREDICT, ML_RETRAIN})

SERVICE_KEY_HEADER = "X-Internal-Service-Key"
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "HTTPBearer": {
        "type": "http",
        "description": "JWT signed with HS256 or RS256",
        "scheme": "bearer",
    },
    "APIKeyHeader": {
        "type": "apiKey",
        "description": "Internal service key",
        "in": "header",
        "name": SERVICE_KEY_HEADER,
    },
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling and what they may do."""

    subject: str
    permissions: frozenset[str]
    via: str  # "jwt" | "service-key"


class Authenticator:
    """Validates credentials against the settings; built once per app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys: list[tuple[str, str]] = []
        if settings.jwt_secret:
            self.keys.append(("HS256", settings.jwt_secret))
        if settings.jwt_public_key:
            self.keys.append(("RS256", settings.jwt_public_key.replace("\\n", "\n")))
        self.claims = [c.strip() for c in settings.auth_permission_claims.split(",") if c.strip()]
        self.throttle = FailureThrottle(
            settings.auth_failure_limit, settings.auth_failure_window_seconds
        )

    def from_token(self, token: str) -> Principal | None:
        """The principal of a valid token; None for any invalid one (reason logged, not token)."""
        options = {"require": ["exp"], "verify_aud": bool(self.settings.jwt_audience)}
        for algorithm, key in self.keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=self.settings.jwt_audience or None,
                    issuer=self.settings.jwt_issuer or None,
                    options=options,
                    leeway=5,
                )
            except jwt.InvalidTokenError as exc:
                log.info("bearer token refused (%s): %s", algorithm, type(exc).__name__)
                continue
            return Principal(str(claims.get("sub", "")), self._permissions(claims), "jwt")
        return None

    def from_service_key(self, key: str) -> Principal | None:
        expected = self.settings.internal_service_key
        if expected and hmac.compare_digest(key.encode(), expected.encode()):
            return Principal("internal-service", ALL_PERMISSIONS, "service-key")
        log.info("service key refused")
        return None

    def _permissions(self, claims: dict) -> frozenset[str]:
        for name in self.claims:
            value = claims.get(name)
            if value is None:
                continue
            if isinstance(value, str):
                value = value.replace(",", " ").split()
            if isinstance(value, list | tuple):
                return frozenset(str(v) for v in value)
            return frozenset()
        return frozenset()


def _bearer_token(request: Request) -> str | None:
    """The credentials of ``Authorization: Bearer <token>`` (None when absent or another
    scheme, as FastAPI's ``HTTPBearer(auto_error=False)``)."""
    value = request.headers.get("authorization")
    if not value:
        return None
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def _principal(request: Request) -> Principal:
    auth: Authenticator = request.app.state.auth
    address = request.client.host if request.client else "unknown"
    wait = auth.throttle.retry_after(address)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"Too many failed authentications from this address; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    service_key = request.headers.get(SERVICE_KEY_HEADER)
    token = _bearer_token(request)
    principal = None
    if service_key:
        principal = auth.from_service_key(service_key)
    if principal is None and token:
        principal = auth.from_token(token)
    if principal is None:
        if service_key or token:
            auth.throttle.failure(address)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Not authenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def require(permission: str) -> Callable[..., Any]:
    """Dependency: a principal holding ``permission`` (401 / 403 otherwise)."""

    async def check(request: Request) -> Principal:
        principal = _principal(request)
        if permission not in principal.permissions:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"User does not have required permission: {permission}",
            )
        return principal

    check.__name__ = f"require_{permission.replace(':', '_')}"
    return check


def document_security(app: FastAPI) -> None:
    """Both schemes in the OpenAPI schema, either one required by every protected operation:
    those documenting 401 (every route using :func:`require` lists ``AUTH_ERRORS``)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if "401" in operation.get("responses", {}):
                    operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
