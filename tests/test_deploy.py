"""Deployment hygiene, checked on the files (no Docker engine needed).

docker-compose.yml: restart policies, healthchecks with timeouts, the one-shot ``init`` job,
one image for the four Millrace services, Kafka's log dirs on its volume, secrets only where
used, pinned images, healthchecks on each process's own ``/readyz``. deploy/: Prometheus scrapes
every process, the Grafana dashboard queries every consumer metric. Dockerfile: non-root, the
lock installed before the source is copied. .dockerignore: no venv or runtime data in the build
context. Locks: every dependency declared in pyproject.toml pinned exactly, with hashes, the
image's lock agreeing with the venv's.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
APP_SERVICES = ("init", "api", "streams", "trainer")
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
#: extras that `make install` installs (torch is optional and never locked)
DEV_EXTRAS = ("embedded", "dev")

#: variable -> the only services that may receive it
SECRETS = {
    "POSTGRES_PASSWORD": {"postgres", "init", "api", "streams", "trainer"},
    "JWT_SECRET": {"api"},
    "JWT_PUBLIC_KEY": {"api"},
    "JWT_ISSUER": {"api"},
    "JWT_AUDIENCE": {"api"},
    "INTERNAL_SERVICE_KEY": {"api"},
}

_DEFAULTED = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}")


def _resolve(value: str) -> str:
    """``${VAR:-default}`` -> default (what compose uses when VAR is unset)."""
    return _DEFAULTED.sub(lambda m: m.group(1), value)


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration):
        total += float(number) * units[unit]
    return total


def _one_shot_jobs() -> set[str]:
    """Services with restart "no" that some service waits for to complete successfully."""
    waited = {
        name
        for service in SERVICES.values()
        for name, cond in (service.get("depends_on") or {}).items()
        if isinstance(cond, dict) and cond.get("condition") == "service_completed_successfully"
    }
    return {n for n in waited if str(SERVICES[n].get("restart", "no")) == "no"}


# --- docker-compose.yml ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_has_restart_policy_and_timed_healthcheck_or_is_one_shot(name: str) -> None:
    service = SERVICES[name]
    if name in _one_shot_jobs():
        assert "healthcheck" not in service or service["healthcheck"].get("disable")
        return
    assert service.get("restart") in {"always", "unless-stopped", "on-failure"} or str(
        service.get("restart", "")
    ).startswith("on-failure:"), f"{name}: no restart policy"
    check = service.get("healthcheck") or {}
    assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
    assert _seconds(str(check.get("timeout", ""))) > 0, f"{name}: healthcheck without timeout"


def test_init_is_a_one_shot_job_the_app_services_wait_for() -> None:
    assert "init" in _one_shot_jobs()
    for name in ("api", "streams", "trainer"):
        assert SERVICES[name]["depends_on"]["init"]["condition"] == (
            "service_completed_successfully"
        )
    for dep in ("kafka", "postgres"):
        assert SERVICES["init"]["depends_on"][dep]["condition"] == "service_healthy"


def test_app_healthchecks_ask_their_own_process_readyz() -> None:
    # api: its own port; streams / trainer: the probe port of their own setting, served on every
    # interface of the container (Prometheus scrapes it too) and exposed to the network
    api = " ".join(SERVICES["api"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/readyz" in api
    assert SERVICES["api"]["command"][-2:] == ["--port", "8000"]
    for name in ("streams", "trainer"):
        service = SERVICES[name]
        test = " ".join(service["healthcheck"]["test"])
        variable = f"{name.upper()}_METRICS_PORT"
        assert "/readyz" in test and f"os.environ['{variable}']" in test, name
        env = _environment(service)
        port = int(env[variable])
        assert port > 0 and env["METRICS_HOST"] == "0.0.0.0", name
        assert [str(p) for p in service.get("expose", [])] == [str(port)], name
        # a stalled consumer turns unhealthy: the heartbeat is shorter than the checks' patience
        check = service["healthcheck"]
        patience = _seconds(str(check["interval"])) * int(check["retries"])
        assert float(env["PROBE_HEARTBEAT_SECONDS"]) < patience, name


def test_prometheus_scrapes_every_probe_port_and_grafana_reads_its_metrics() -> None:
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = {
        target
        for job in scrape["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    ports = {
        "api": "8000",
        "streams": _environment(SERVICES["streams"])["STREAMS_METRICS_PORT"],
        "trainer": _environment(SERVICES["trainer"])["TRAINER_METRICS_PORT"],
    }
    assert {f"{name}:{port}" for name, port in ports.items()} <= targets
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "millrace.json").read_text())
    queried = " ".join(
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    )
    for metric in (
        "millrace_events_consumed_total",
        "millrace_dead_letters_total",
        "millrace_batch_commit_duration_seconds_bucket",
        "millrace_consumer_lag_messages",
        "millrace_drift_detections_total",
        "millrace_retrain_requests_total",
        "millrace_training_jobs_total",
        "millrace_training_job_duration_seconds_bucket",
        "millrace_live_model_age_seconds",
        "millrace_build_info",
    ):
        assert metric in queried, metric


def test_app_services_stop_gracefully_after_the_shutdown_bound() -> None:
    # SHUTDOWN_TIMEOUT_SECONDS defaults to 10 s, as does Docker's own grace: leave headroom.
    for name in ("api", "streams", "trainer"):
        assert _seconds(str(SERVICES[name].get("stop_grace_period", "0s"))) >= 20, name


def test_the_four_app_services_share_one_image_built_once() -> None:
    images = {SERVICES[n].get("image") for n in APP_SERVICES}
    assert len(images) == 1 and None not in images, images
    built = [n for n in APP_SERVICES if "build" in SERVICES[n]]
    assert len(built) == 1, f"build once, not in {built}"
    assert not [n for n in SERVICES if n not in APP_SERVICES and "build" in SERVICES[n]]


def test_images_are_pinned_to_exact_tags() -> None:
    for name, service in SERVICES.items():
        image = _resolve(str(service.get("image", "")))
        assert image, f"{name}: no image"
        if "@sha256:" in image:
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.match(r"^\d+\.\d+", tag), f"{name}: {image} not exact"


def test_kafka_log_dirs_are_on_its_named_volume() -> None:
    kafka = SERVICES["kafka"]
    log_dirs = _environment(kafka).get("KAFKA_LOG_DIRS")
    assert log_dirs, "KAFKA_LOG_DIRS unset: the image writes to /tmp/kraft-combined-logs"
    mounts = {}
    for volume in kafka.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[PurePosixPath(target)] = source
    for log_dir in log_dirs.split(","):
        path = PurePosixPath(log_dir.strip())
        holding = [t for t in mounts if path == t or t in path.parents]
        assert holding, f"{path} is not inside a mounted volume"
        assert mounts[holding[0]] in (COMPOSE.get("volumes") or {}), "not a named volume"


def test_secrets_reach_only_the_services_that_use_them() -> None:
    for name, service in SERVICES.items():
        env = _environment(service)
        text = " ".join(f"{k}={v}" for k, v in env.items())
        for secret, allowed in SECRETS.items():
            if name not in allowed:
                assert secret not in text, f"{secret} passed to {name}"
        # An env_file hands a service every variable in it: list what each one needs instead.
        assert "env_file" not in service, f"{name}: env_file"


def test_database_password_is_never_written_in_the_file() -> None:
    for name, service in SERVICES.items():
        env = _environment(service)
        url = env.get("DATABASE_URL")
        if url:
            password = url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
            assert password.startswith("${"), f"{name}: literal password in DATABASE_URL"
        if "POSTGRES_PASSWORD" in env:
            assert env["POSTGRES_PASSWORD"].startswith("${"), f"{name}: literal password"


# --- Dockerfile and .dockerignore -------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_base_image_is_pinned() -> None:
    bases = [rest.split()[0] for kw, rest in _dockerfile() if kw == "FROM"]
    assert bases
    for base in bases:
        assert "@sha256:" in base or re.search(r":\d+\.\d+\.\d+", base), base


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [rest for kw, rest in _dockerfile() if kw == "USER"]
    assert users, "no USER: the container runs as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_dockerfile_installs_the_lock_before_copying_the_source() -> None:
    steps = _dockerfile()
    lock_copy = next(
        i for i, (kw, rest) in enumerate(steps) if kw == "COPY" and "requirements.lock" in rest
    )
    lock_install = next(
        i for i, (kw, rest) in enumerate(steps) if kw == "RUN" and "-r requirements.lock" in rest
    )
    sources = [
        i
        for i, (kw, rest) in enumerate(steps)
        if kw == "COPY" and re.search(r"\b(millrace|ml|streams|api|schemas)\b", rest)
    ]
    project = [
        i for i, (kw, rest) in enumerate(steps) if kw == "RUN" and "pip install --no-deps ." in rest
    ]
    assert sources and project
    assert lock_copy < lock_install < min(sources) <= max(sources) < min(project)
    assert "--require-hashes" in steps[lock_install][1]


def test_dockerignore_keeps_venv_and_runtime_data_out() -> None:
    patterns = {
        line.strip().rstrip("/").removeprefix("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "var", ".git", ".env"} <= patterns


# --- locks -------------------------------------------------------------------------------------


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def _declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


@pytest.mark.parametrize(
    ("lock", "extras"), [(RUNTIME_LOCK, ()), (DEV_LOCK, DEV_EXTRAS)], ids=["runtime", "dev"]
)
def test_lock_pins_every_declared_dependency(lock: Path, extras: tuple[str, ...]) -> None:
    pins = _pins(lock)
    for req in _declared(*extras):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} missing from {lock.name}; run `make lock`"
        assert req.specifier.contains(Version(pins[name]), prereleases=True), (
            f"{lock.name}: {req.name}=={pins[name]} does not satisfy {req}; run `make lock`"
        )
    entries = re.findall(r"^[A-Za-z0-9][^\s]*==.*$", lock.read_text(), flags=re.M)
    assert len(entries) == len(pins)
    assert lock.read_text().count("--hash=sha256:") >= len(pins)


def test_the_image_lock_agrees_with_the_dev_lock() -> None:
    runtime, dev = _pins(RUNTIME_LOCK), _pins(DEV_LOCK)
    assert {n: v for n, v in runtime.items() if dev.get(n) != v} == {}
    assert "torch" not in runtime and "torch" not in dev


def test_make_install_installs_from_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    sentinel = re.search(r"^\$\(VENV\)/\.installed:(.*)$", makefile, flags=re.M)
    assert sentinel and "pyproject.toml" in sentinel.group(1)
    assert "$(DEV_LOCK)" in sentinel.group(1) or "requirements-dev.lock" in sentinel.group(1)
    assert "--no-deps -e ." in makefile
    assert re.search(r"^lock:", makefile, flags=re.M)
