"""The ``millrace`` command line (Typer): run processes, migrate, replay data, simulate."""

from __future__ import annotations

import signal
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from millrace.settings import Settings, SettingsError, get_settings

if TYPE_CHECKING:
    from ml.registry.entities import TrainingJobRow
    from ml.registry.store import Store

__all__ = ["app"]

app = typer.Typer(help="Millrace: ML models kept alive on event streams.", no_args_is_help=True)
db_app = typer.Typer(help="Registry store schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
models_app = typer.Typer(help="Model versions: list, activate.", no_args_is_help=True)
app.add_typer(models_app, name="models")
checkpoints_app = typer.Typer(
    help="Stored stream positions: list them, reconcile them after a broker reset.",
    no_args_is_help=True,
)
app.add_typer(checkpoints_app, name="checkpoints")
console = Console(stderr=True, soft_wrap=True)
ROOT = Path(__file__).resolve().parents[1]


def _settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _wait_for_broker(settings: Settings, timeout: float = 60.0) -> None:
    from millrace.kafka import broker_reachable

    deadline = time.monotonic() + timeout
    why = ""
    while time.monotonic() < deadline:
        ok, why = broker_reachable(settings.bootstrap_servers, timeout=1.0)
        if ok:
            return
        time.sleep(0.5)
    console.print(f"[red]Kafka at {settings.bootstrap_servers} is not reachable: {why}[/red]")
    raise typer.Exit(1)


def _publish(
    source: object, settings: Settings, *, rate: float | None, limit: int | None, progress: bool
) -> None:
    from millrace.importers.replay import replay as replay_source
    from millrace.kafka import EventProducer, ensure_topics

    ensure_topics(settings)
    producer = EventProducer(settings)
    summary = replay_source(source, producer, settings, rate=rate, limit=limit, progress=progress)
    console.print(summary.render())
    if producer.failed:
        console.print(
            f"[red]{producer.failed} events were not accepted by the broker: "
            f"{producer.last_error}[/red]"
        )
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to DATABASE_URL (also done at every process start)."""
    from ml.registry.db import current_revision, upgrade

    settings = _settings()
    upgrade(settings.database_url)
    console.print(f"database at revision {current_revision(settings.database_url)}")


@app.command()
def broker() -> None:
    """Start the embedded broker on loopback, create the topics, run until Ctrl-C / SIGTERM."""
    from millrace.broker import BrokerError, EmbeddedBroker
    from millrace.kafka import ensure_topics

    settings = _settings()
    if not settings.embedded:
        console.print(
            f"KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers}: external Kafka "
            "configured, nothing embedded to start."
        )
        raise typer.Exit(0)
    embedded = EmbeddedBroker(settings.embedded_broker_host, settings.embedded_broker_port)
    try:
        embedded.start()
    except BrokerError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        created = ensure_topics(settings)
        console.print(
            f"embedded broker ready on {embedded.bootstrap_servers} "
            f"(topics created: {', '.join(created) or 'none'})"
        )
        while not stop.is_set() and embedded.running():
            stop.wait(0.5)
    finally:
        embedded.stop()
        console.print("embedded broker stopped")


@app.command()
def topics() -> None:
    """Create the configured topics with their partition counts (idempotent)."""
    from millrace.kafka import ensure_topics

    settings = _settings()
    _wait_for_broker(settings)
    created = ensure_topics(settings)
    console.print(f"topics created: {', '.join(created) or 'none (all exist)'}")


@app.command()
def streams(loglevel: str = "info") -> None:
    """Run the Faust stream worker (scale by running more, up to the partition count)."""
    from streams.app import run_worker

    settings = _settings()
    _wait_for_broker(settings)
    sys.argv = [sys.argv[0]]  # faust's worker parses argv
    run_worker(settings, loglevel=loglevel)


@app.command()
def trainer() -> None:
    """Run the batch trainer: retrain requests -> jobs -> versions; model commands."""
    import logging

    from millrace.metrics import TrainerMetrics
    from millrace.probes import serve_probes
    from millrace.trainer import TrainerService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = _settings()
    _wait_for_broker(settings)
    stop = _stop_event(settings, "trainer")
    metrics = TrainerMetrics()
    probes = serve_probes(
        "trainer",
        settings.metrics_host,
        settings.trainer_metrics_port,
        metrics.registry,
        settings.probe_heartbeat_seconds,
    )
    heartbeat = probes.heartbeat if probes else None
    TrainerService(settings, metrics=metrics, heartbeat=heartbeat).run(stop)


def _stop_event(settings: Settings, name: str) -> threading.Event:
    """An event set by SIGINT / SIGTERM; the first signal also arms the shutdown watchdog
    (the process ends within SHUTDOWN_TIMEOUT_SECONDS), a second one exits at once."""
    import os

    from millrace.shutdown import arm_watchdog

    stop = threading.Event()

    def on_signal(*_: object) -> None:
        if stop.is_set():
            os._exit(1)
        stop.set()
        arm_watchdog(settings.shutdown_timeout_seconds, name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    return stop


def _wait_for_job(store: Store, request_id: str, timeout: float) -> TrainingJobRow | None:
    """The job that took ``request_id`` once it has finished (None on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job in store.jobs.list_jobs(limit=20):
            if request_id in job.request_ids and job.finished_at is not None:
                return job
        time.sleep(0.5)
    return None


@app.command()
def retrain(
    domain: Annotated[str | None, typer.Option(help="Default: the DEFAULT_DOMAIN setting")] = None,
    scope: str = "global",
    start_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    end_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the job and show its outcome")] = False,
    timeout: float = 600.0,
) -> None:
    """Publish a manual retrain request (the trainer process runs it)."""
    import uuid

    from millrace.kafka import EventProducer, ensure_topics
    from ml.registry.store import Store
    from schemas.events import RetrainRequest

    settings = _settings()
    domain = domain or settings.default_domain
    try:
        request = RetrainRequest(
            event_id=str(uuid.uuid4()),  # this invocation is the fact; a re-send keeps the id
            occurred_at=datetime.now(UTC),
            domain=domain,
            scope=scope,
            requested_by="cli",
            start_date=date.fromisoformat(start_date) if start_date else None,
            end_date=date.fromisoformat(end_date) if end_date else None,
        )
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    _wait_for_broker(settings)
    ensure_topics(settings)
    producer = EventProducer(settings)
    producer.publish(settings.topic_retrain_requests, f"{domain}/{scope}", request)
    producer.flush()
    console.print(f"retrain request {request.event_id} published")
    if not wait:
        return
    store = Store.from_url(settings.database_url)
    with console.status("waiting for the trainer..."):
        job = _wait_for_job(store, request.event_id, timeout)
    if job is None:
        console.print(f"[red]no outcome within {timeout:.0f} s (is the trainer running?)[/red]")
        raise typer.Exit(1)
    if job.status != "completed":
        console.print(f"[red]job {job.id} {job.status}: {job.error}[/red]")
        raise typer.Exit(1)
    version = store.models.get_version(domain, scope, job.version)
    state = "ACTIVE" if version and version.status == "active" else version and version.status
    console.print(
        f"job {job.id} completed, {job.outcome or '-'}: {job.version} ({state}) "
        f"{job.reason or (version and version.reason)}"
    )


@models_app.command("list")
def models_list(domain: str | None = None, status: str | None = None, limit: int = 20) -> None:
    """Model versions, newest first."""
    from rich.table import Table

    from ml.registry.store import Store

    store = Store.from_url(_settings().database_url)
    table = Table("domain", "scope", "version", "status", "algorithm", "mae", "trained_at")
    for v in store.models.list_versions(domain=domain, status=status, limit=limit):
        mae = v.metrics.get("mae")
        table.add_row(
            v.domain,
            v.scope,
            v.version,
            v.status,
            v.algorithm,
            f"{mae:.4g}" if isinstance(mae, float) else "-",
            v.trained_at.isoformat(timespec="seconds"),
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@app.command("jobs")
def jobs_list(
    domain: str | None = None,
    status: Annotated[str | None, typer.Option(help="queued, running, completed, failed")] = None,
    limit: int = 20,
) -> None:
    """Training jobs, newest first, with their outcome (promoted / rejected) and reason."""
    from millrace.listings import jobs_table
    from ml.registry.store import Store

    store = Store.from_url(_settings().database_url)
    rows = store.jobs.list_jobs(domain=domain, status=status, limit=limit)
    Console(width=None if sys.stdout.isatty() else 200).print(jobs_table(rows))


@app.command("dead-letters")
def dead_letters(
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many of the latest")] = 20,
    error_type: Annotated[str | None, typer.Option(help="Only this error type")] = None,
    topic: Annotated[str | None, typer.Option(help="Only this source topic")] = None,
) -> None:
    """Messages the stream refused: counts by error type and topic, the latest with reasons;
    and the invalid values it dropped from events it kept, by field and reason."""
    from millrace.listings import (
        dead_letter_counts_table,
        dead_letters_table,
        field_rejections_table,
    )
    from ml.registry.store import Store

    store = Store.from_url(_settings().database_url)
    out = Console(width=None if sys.stdout.isatty() else 200)
    out.print(dead_letter_counts_table(store.dead_letters.counts(topic, error_type)))
    out.print(dead_letters_table(store.dead_letters.recent(limit, topic, error_type)))
    out.print(field_rejections_table(store.dead_letters.field_rejections(topic)))


@models_app.command("activate")
def models_activate(
    version: str,
    domain: Annotated[str | None, typer.Option(help="Default: the DEFAULT_DOMAIN setting")] = None,
    scope: str = "global",
    reason: str = "manual activation",
    timeout: float = 30.0,
) -> None:
    """Make VERSION the live one (rollback or roll forward) through ml.model-commands."""
    import uuid

    from millrace.kafka import EventProducer, ensure_topics
    from ml.registry.store import Store
    from schemas.events import ModelCommand

    settings = _settings()
    domain = domain or settings.default_domain
    store = Store.from_url(settings.database_url)
    if store.models.get_version(domain, scope, version) is None:
        console.print(f"[red]unknown version {version!r} for {domain}/{scope}[/red]")
        raise typer.Exit(2)
    _wait_for_broker(settings)
    ensure_topics(settings)
    command = ModelCommand(
        event_id=str(uuid.uuid4()),
        occurred_at=datetime.now(UTC),
        command="activate",
        domain=domain,
        scope=scope,
        version=version,
        reason=reason,
        requested_by="cli",
    )
    producer = EventProducer(settings)
    producer.publish(settings.topic_model_commands, f"{domain}/{scope}", command)
    producer.flush()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.models.active_version(domain, scope) == version:
            console.print(f"{version} is active for {domain}/{scope}")
            return
        time.sleep(0.3)
    console.print(
        f"[red]{version} not active after {timeout:.0f} s (is the trainer running?)[/red]"
    )
    raise typer.Exit(1)


@checkpoints_app.command("list")
def checkpoints_list(consumer: str | None = None) -> None:
    """Stored positions of the streams worker (or CONSUMER) and the partitions it refused."""
    from ml.registry.store import Store

    settings = _settings()
    store = Store.from_url(settings.database_url)
    consumer = consumer or settings.streams_app_id
    for (topic, partition), pos in sorted(store.stream.positions(consumer).items()):
        print(f"{topic}[{partition}]\toffset {pos.offset}")
    for fault in store.stream.faults(consumer):
        print(f"REFUSED {fault.topic}[{fault.partition}]\t{fault.reason}")


@checkpoints_app.command("reset")
def checkpoints_reset(
    topic: Annotated[str, typer.Option(help="The topic whose stored positions move.")],
    to: Annotated[
        str, typer.Option(help="earliest: consume all the broker holds; latest: skip it.")
    ] = "earliest",
    consumer: Annotated[
        str | None, typer.Option(help="Consumer group (default STREAMS_APP_ID).")
    ] = None,
) -> None:
    """Reconcile after a broker lost its data: move TOPIC's stored positions to the broker's
    beginning or end. Observations and model state stay; running workers resume the refused
    partitions within seconds."""
    from millrace.checkpoints import reset_topic
    from ml.registry.store import Store

    if to not in ("earliest", "latest"):
        console.print(f"[red]--to must be earliest or latest, got {to!r}[/red]")
        raise typer.Exit(2)
    settings = _settings()
    store = Store.from_url(settings.database_url)
    if to == "latest":
        _wait_for_broker(settings)
    try:
        moved = reset_topic(settings, store, topic, to, consumer)  # type: ignore[arg-type]
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(
        f"{moved} stored position(s) of {topic} moved to {to} "
        f"(consumer {consumer or settings.streams_app_id}); refusals cleared"
    )


@app.command()
def api(host: str | None = None, port: int | None = None) -> None:
    """Serve the read-only HTTP API with uvicorn."""
    import uvicorn

    from api.app import create_app
    from api.protocol import bounded_httptools
    from millrace.shutdown import arm_watchdog

    class BoundedServer(uvicorn.Server):
        """uvicorn's server; a stop signal also arms the shutdown watchdog."""

        def handle_exit(self, sig: int, frame: object) -> None:
            arm_watchdog(settings.shutdown_timeout_seconds, "api")
            super().handle_exit(sig, frame)  # type: ignore[arg-type]

    settings = _settings()
    config = uvicorn.Config(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="info",
        access_log=settings.api_access_log,
        loop="uvloop",
        http=bounded_httptools(settings.api_max_header_bytes, settings.api_max_url_bytes),
        timeout_graceful_shutdown=max(1.0, settings.shutdown_timeout_seconds / 2),
    )
    BoundedServer(config).run()


@app.command()
def replay(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV / CSV.gz file")],
    rate: Annotated[float | None, typer.Option(help="Events per second (default: max)")] = None,
    limit: Annotated[int | None, typer.Option(help="Publish at most this many")] = None,
    progress: bool = True,
    by_time: Annotated[
        bool,
        typer.Option(
            "--by-time/--file-order",
            help="Publish in event-time order (every format; the dealership export and the "
            "Irish traces are not in time order), or in the file's order",
        ),
    ] = True,
    market: Annotated[
        str | None,
        typer.Option(
            help="Market the events name (e.g. NO), a segment level above vehicle type so "
            "several countries share one deployment (Norway count files only)"
        ),
    ] = None,
) -> None:
    """Publish a real data set: dealership report CSV, Norway sales CSV or Irish 5G CSV(.gz)."""
    from millrace.importers.replay import open_source

    settings = _settings()
    try:
        source = open_source(path, by_time=by_time, market=market)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    _wait_for_broker(settings)
    _publish(source, settings, rate=rate, limit=limit, progress=progress)


@app.command()
def simulate(
    domain: Annotated[
        str | None, typer.Option(help="A shipped domain; default: the DEFAULT_DOMAIN setting")
    ] = None,
    seed: int = 42,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD")] = "2023-01-01",
    months: Annotated[int, typer.Option(help="demand: months to generate")] = 36,
    segments: Annotated[int, typer.Option(help="demand: number of segments")] = 24,
    cells: Annotated[int, typer.Option(help="network: number of cells")] = 8,
    seconds: Annotated[int, typer.Option(help="network: seconds of measurements")] = 3600,
    drift_at: Annotated[str | None, typer.Option(help="Inject drift from this date")] = None,
    drift_factor: float = 2.0,
    rate: Annotated[float | None, typer.Option(help="Events per second (default: max)")] = None,
    limit: int | None = None,
    progress: bool = True,
) -> None:
    """Publish seeded synthetic demand or network events (optional injected drift)."""
    from millrace.importers.simulate import simulate_demand, simulate_network

    settings = _settings()
    domain = domain or settings.default_domain
    first = date.fromisoformat(start)
    drift = date.fromisoformat(drift_at) if drift_at else None
    if domain == "demand":
        source = simulate_demand(
            seed=seed,
            start=first,
            months=months,
            segments=segments,
            drift_at=drift,
            drift_factor=drift_factor,
        )
    elif domain == "network":
        begin = datetime(first.year, first.month, first.day, tzinfo=UTC)
        source = simulate_network(
            seed=seed,
            start=begin,
            seconds=seconds,
            cells=cells,
            drift_at=drift,
            drift_factor=drift_factor,
        )
    else:
        console.print(f"[red]--domain must be demand or network, got {domain!r}[/red]")
        raise typer.Exit(2)
    _wait_for_broker(settings)
    _publish(source, settings, rate=rate, limit=limit, progress=progress)


@app.command()
def schemas(check: bool = typer.Option(False, help="Fail if a schema file is stale")) -> None:
    """Regenerate the JSON Schema files in schemas/ from the pydantic models."""
    from schemas.events import EVENT_MODELS
    from schemas.generate import SCHEMA_DIR, render, write_all

    if check:
        stale = [
            n for n in EVENT_MODELS if (SCHEMA_DIR / f"{n}.schema.json").read_text() != render(n)
        ]
        if stale:
            console.print(f"[red]stale: {', '.join(stale)}; run `millrace schemas`[/red]")
            raise typer.Exit(1)
        console.print("schemas up to date")
        return
    for path in write_all():
        console.print(str(path))


@app.command()
def up(
    feed: bool = typer.Option(True, help="Feed the simulator once everything is healthy"),
    rate: float = typer.Option(500.0, help="Simulator events per second"),
) -> None:
    """Run the whole system locally: embedded broker, api, streams (Procfile), simulator feed."""
    from millrace.devstack import DevStack

    DevStack(_settings(), root=ROOT, console=console).run(feed=feed, rate=rate)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
