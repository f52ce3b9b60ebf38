"""A running API process over a store holding a trained demand version, for the API tests.

Tokens are signed here with the same secret / key pair the API is configured with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from millrace.kafka import ensure_topics
from ml.registry.store import Store
from ml.training.runner import TrainingRunner
from tests.fixtures.broker import (
    Proc,
    build_env,
    settings_from,
    wait_for_progress,
    wait_for_start,
)
from tests.training_data import seed_demand

SECRET = "test-secret-with-at-least-32-bytes!!"
SERVICE_KEY = "internal-key-for-tests"
ISSUER, AUDIENCE = "company-gateway", "millrace"
ALL = ["ml:models", "ml:predict", "ml:retrain"]

_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PRIVATE = _RSA.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
RSA_PUBLIC = (
    _RSA.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def token(
    permissions: list[str] | str | None = None,
    *,
    claim: str = "permissions",
    key: str | bytes = SECRET,
    algorithm: str = "HS256",
    expires_in: float = 300,
    audience: str = AUDIENCE,
    issuer: str = ISSUER,
    **extra: Any,
) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": "tester",
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + timedelta(seconds=expires_in),
        **extra,
    }
    claims[claim] = ALL if permissions is None else permissions
    return jwt.encode(claims, key, algorithm=algorithm)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


KEY_HEADERS = {"X-Internal-Service-Key": SERVICE_KEY}


@dataclass
class ApiServer:
    url: str
    env: dict[str, str]
    store: Store
    proc: Proc
    #: the other processes working for it (a trainer), part of :meth:`progress`
    others: list[Proc] = field(default_factory=list)

    def progress(self) -> tuple:
        """The work of the API process and of :attr:`others`, for :func:`wait_for_progress`."""
        return tuple(p.progress() for p in (self.proc, *self.others))

    def get(self, path: str, **kw: Any) -> httpx.Response:
        kw.setdefault("headers", KEY_HEADERS)
        return httpx.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        kw.setdefault("headers", KEY_HEADERS)
        kw.setdefault("timeout", 60)
        return httpx.post(self.url + path, **kw)

    def post_while_working(self, path: str, **kw: Any) -> httpx.Response:
        """:meth:`post` for a request answered once other work is done (a synchronous retrain):
        no client timeout; fails when :meth:`progress` stops moving instead."""
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(self.post, path, timeout=None, **kw)
            wait_for_progress(future.done, self.progress)
            return future.result()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        kw.setdefault("headers", KEY_HEADERS)
        return httpx.request(method, self.url + path, timeout=60, **kw)


def train_first_version(store: Store, model_dir: Path) -> str:
    """Seed 30 months of simulated demand and run one job (its version goes live)."""
    seed_demand(store, months=30, segments=6)
    job = store.jobs.create_job("demand", "global", "manual")
    outcome = TrainingRunner(store, model_dir).run(job)
    assert outcome.promoted, outcome.reason
    return outcome.version or ""


def start_api(
    kafka: str, directory: Path, prepare: Callable[[Store, Path], object] | None = None,
    **overrides: str,
) -> ApiServer:  # fmt: skip
    env = build_env(
        kafka,
        directory,
        JWT_SECRET=SECRET,
        JWT_PUBLIC_KEY=RSA_PUBLIC,
        JWT_ISSUER=ISSUER,
        JWT_AUDIENCE=AUDIENCE,
        INTERNAL_SERVICE_KEY=SERVICE_KEY,
        **overrides,
    )
    store = Store.from_url(env["DATABASE_URL"])
    if prepare is not None:
        prepare(store, Path(env["MODEL_DIR"]))
    ensure_topics(settings_from(env))
    proc = Proc(["api"], env, directory / "api.log")
    url = f"http://127.0.0.1:{env['API_PORT']}"

    def up() -> bool:
        try:
            return httpx.get(url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for_start(proc, up)  # a slow machine only slows the start
    except AssertionError:
        proc.stop()
        raise
    time.sleep(0.2)
    return ApiServer(url, env, store, proc)
