"""The API against its own OpenAPI schema, over real HTTP: every protected route refuses bad
credentials (401) and missing permissions (403, naming the permission), accepts good ones, and a
property-based run of the whole schema (schemathesis) finds no 5xx."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api_server import (
    ALL,
    AUDIENCE,
    ISSUER,
    KEY_HEADERS,
    RSA_PRIVATE,
    ApiServer,
    bearer,
    start_api,
    token,
    train_first_version,
)

pytestmark = pytest.mark.integration

PUBLIC = {"/health", "/metrics", "/livez", "/readyz"}
#: the permission each protected route needs (everything else: ml:models)
NEEDS = {
    ("POST", "/v1/ml/predict"): "ml:predict",
    ("POST", "/v1/ml/predict-with-history"): "ml:predict",
    ("POST", "/v1/ml/inference"): "ml:predict",
    ("POST", "/v1/ml/retrain"): "ml:retrain",
    ("POST", "/v1/ml/models/{version}/activate"): "ml:retrain",
    ("POST", "/v1/ml/models"): "ml:retrain",
    ("DELETE", "/v1/ml/models/{model_id}"): "ml:retrain",
    ("POST", "/v1/ml/performance/{field}/evaluate"): "ml:retrain",
    ("POST", "/v1/ml/performance/{field}/set-best/{model_id}"): "ml:retrain",
    ("POST", "/v1/ml/performance/{field}/monitor"): "ml:retrain",
    ("POST", "/v1/ml/training/train"): "ml:retrain",
    ("DELETE", "/v1/ml/training/jobs/{job_id}"): "ml:retrain",
}
BODIES = {
    "/v1/ml/predict": {"vehicle_type": "CAR", "brand": "A", "model": "B"},
    "/v1/ml/predict-with-history": {"vehicle_type": "CAR", "brand": "A", "model": "B"},
}


@pytest.fixture(scope="module")
def api(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = start_api(
        kafka,
        tmp_path_factory.mktemp("contract"),
        train_first_version,
        API_RETRAIN_WAIT_SECONDS="0.2",
        AUTH_FAILURE_LIMIT="1000000",  # every route is called with bad credentials many times
    )
    yield server
    server.proc.stop()


def _routes(api: ApiServer) -> list[tuple[str, str]]:
    schema = httpx.get(api.url + "/openapi.json").json()
    return [
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if path not in PUBLIC
    ]


def _call(api: ApiServer, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    url = api.url + (
        path.replace("{version}", "v0.0.0-20000101")
        .replace("{job_id}", "nope")
        .replace("{field}", "dl_bitrate")
        .replace("{model_id}", "nope")
    )
    return httpx.request(method, url, headers=headers, json=BODIES.get(path, {}), timeout=30)


def test_every_route_but_health_and_metrics_is_protected(api: ApiServer) -> None:
    routes = _routes(api)
    assert len(routes) >= 24
    for method, path in [("GET", p) for p in sorted(PUBLIC)]:
        assert _call(api, method, path, {}).status_code == 200


BAD_CREDENTIALS: dict[str, dict[str, str]] = {
    "no credentials": {},
    "bad signature": bearer(token(key="another-secret-of-at-least-32-bytes")),
    "expired token": bearer(token(expires_in=-60)),
    "not yet valid": bearer(token(nbf=9_999_999_999)),
    "wrong audience": bearer(token(audience="someone-else")),
    "wrong issuer": bearer(token(issuer="evil")),
    "no exp claim": bearer(
        __import__("jwt").encode({"iss": ISSUER, "aud": AUDIENCE, "permissions": ALL}, "x" * 40)
    ),
    "garbage token": bearer("not.a.jwt"),
    "wrong service key": {"X-Internal-Service-Key": "wrong-key"},
}


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
def test_bad_credentials_get_401_on_every_protected_route(api: ApiServer, case: str) -> None:
    wrong = []
    for method, path in _routes(api):
        resp = _call(api, method, path, BAD_CREDENTIALS[case])
        if (resp.status_code, resp.json()) != (401, {"detail": "Not authenticated"}):
            wrong.append((method, path, resp.status_code, resp.text[:100]))
    assert not wrong


def test_a_missing_permission_gets_403_naming_it(api: ApiServer) -> None:
    wrong = []
    for method, path in _routes(api):
        needed = NEEDS.get((method, path), "ml:models")
        others = [p for p in ALL if p != needed]
        resp = _call(api, method, path, bearer(token(others)))
        expected = {"detail": f"User does not have required permission: {needed}"}
        if (resp.status_code, resp.json()) != (403, expected):
            wrong.append((method, path, resp.status_code, resp.text[:100]))
    assert not wrong


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param(lambda p: bearer(token([p])), id="HS256 permissions list"),
        pytest.param(
            lambda p: bearer(
                token(f"openid {p}", claim="scope", key=RSA_PRIVATE, algorithm="RS256")
            ),
            id="RS256 scope string",
        ),
        pytest.param(lambda p: bearer(token([p], claim="rolesAndPermissions")), id="dealership"),
        pytest.param(lambda p: KEY_HEADERS, id="service key"),
    ],
)
def test_good_credentials_pass(api: ApiServer, credentials: Any) -> None:
    for method, path in _routes(api):
        resp = _call(api, method, path, credentials(NEEDS.get((method, path), "ml:models")))
        assert resp.status_code not in (401, 403), (method, path, resp.text)


def test_schemathesis_finds_no_server_errors(api: ApiServer, tmp_path) -> None:
    """Property-based requests generated from the OpenAPI schema, authenticated."""
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{api.url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--header",
        f"X-Internal-Service-Key: {KEY_HEADERS['X-Internal-Service-Key']}",
        "--max-examples",
        "25",
        "--generation-deterministic",
        "--request-timeout",
        "20",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    print(run.stdout[-3000:])
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    # warnings (e.g. operations that only ever answer 404 without data) are not failures
    assert re.search(r"\d+ generated, \d+ passed", run.stdout), run.stdout[-4000:]


def _has_examples(schema: Any, components: dict, depth: int = 0) -> bool:
    if depth > 3 or not isinstance(schema, dict):
        return False
    if "example" in schema or "examples" in schema:
        return True
    if "$ref" in schema:
        return _has_examples(components[schema["$ref"].split("/")[-1]], components, depth + 1)
    nested = [*schema.get("properties", {}).values(), *schema.get("anyOf", [])]
    if "items" in schema:
        nested.append(schema["items"])
    return any(_has_examples(v, components, depth + 1) for v in nested)


def test_every_route_documents_an_example_and_the_docs_page_works(api: ApiServer) -> None:
    schema = httpx.get(api.url + "/openapi.json").json()
    components = schema["components"]["schemas"]
    missing = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            contents = [
                content
                for code, response in operation["responses"].items()
                if code.startswith("2")
                for content in response.get("content", {}).values()
            ]
            if not any(
                "example" in c or "examples" in c or _has_examples(c.get("schema"), components)
                for c in contents
            ):
                missing.append(f"{method.upper()} {path}")
    assert not missing
    docs = httpx.get(api.url + "/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
