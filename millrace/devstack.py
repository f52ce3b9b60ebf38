"""``millrace up``: the whole system on one machine for development and demos.

Migrates the store, starts the embedded broker itself when no external Kafka is configured (so
it can stop it last), runs the Procfile's other processes with honcho, waits until the API is
healthy, feeds the seeded simulator and prints where to look. Ctrl-C or SIGTERM stops
everything it started: the Procfile processes first, then the broker.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
from rich.console import Console

from millrace.broker import BrokerError, EmbeddedBroker
from millrace.kafka import ensure_topics
from millrace.settings import Settings

__all__ = ["DevStack"]


class DevStack:
    """Starts and stops the local stack."""

    def __init__(self, settings: Settings, root: Path, console: Console) -> None:
        self.settings = settings
        self.root = root
        self.console = console
        self._stop = threading.Event()
        #: the API key the printed curl lines use; a random one when none is configured
        self.service_key = settings.internal_service_key or secrets.token_urlsafe(24)

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def _processes(self) -> list[str]:
        return ["api", "streams", "trainer"]

    def _start_procfile(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["INTERNAL_SERVICE_KEY"] = self.service_key
        cmd = [
            sys.executable,
            "-m",
            "honcho",
            "-f",
            str(self.root / "Procfile"),
            "-d",
            str(self.root),
            "start",
            *self._processes(),
        ]
        return subprocess.Popen(cmd, env=env, cwd=self.root)

    def _wait_healthy(self, honcho: subprocess.Popen[bytes], timeout: float = 90.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            if honcho.poll() is not None:
                return False
            try:
                body = httpx.get(f"{self.api_url}/health", timeout=2.0).json()
                if body.get("status") == "healthy":
                    return True
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        return False

    def _sources(self) -> list[tuple[str, object, int | None]]:
        """What ``up`` feeds: the shared real data sets when present (dealership contracts,
        the first 20,000 Irish 5G measurements), else the seeded simulator."""
        from millrace.importers.replay import open_source
        from millrace.importers.simulate import simulate_demand, simulate_network

        data = self.root.parent / "shared" / "data"
        contracts = data / "vehicle" / "sgivu_contracts" / "contracts_36m.csv"
        cells = data / "cellular" / "irish_5g_raca2020" / "irish_5g_all_traces.csv.gz"
        now = datetime.now(UTC)
        if contracts.is_file():
            demand = ("dealership contracts", open_source(contracts), None)
        else:
            source = simulate_demand(
                seed=42, start=date(now.year - 3, 1, 1), months=36, segments=24
            )
            demand = ("simulated demand", source, None)
        if cells.is_file():
            network = ("Irish 5G measurements", open_source(cells, by_time=True), 20_000)
        else:
            start = now.replace(microsecond=0, hour=0, minute=0, second=0)
            network = ("simulated network", simulate_network(seed=42, start=start, seconds=3600,
                                                             cells=8), None)  # fmt: skip
        return [demand, network]

    def _feed(self, rate: float) -> None:
        from millrace.importers.replay import replay
        from millrace.kafka import EventProducer

        producer = EventProducer(self.settings)
        for index, (name, source, limit) in enumerate(self._sources()):
            if self._stop.is_set():
                return
            self.console.print(f"feeding {name} at {rate:.0f} events/s ...")
            summary = replay(source, producer, self.settings, rate=rate, limit=limit,
                             progress=False)  # fmt: skip
            self.console.print(summary.render())
            if index == 0:
                self._request_retrain(producer)

    def _example_body(self) -> str:
        """A predict body for the first stored segment (a placeholder if none answers)."""
        segment = {"vehicle_type": "CAR", "brand": "BRAND", "model": "MODEL", "line": ""}
        try:
            items = httpx.get(
                f"{self.api_url}/v1/ml/segments",
                headers={"X-Internal-Service-Key": self.service_key},
                timeout=5,
            ).json()["items"]
            if items:
                segment = {k: items[0][k] for k in segment}
                if items[0].get("market"):  # a segment of a market: name it
                    segment = {"market": items[0]["market"], **segment}
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        return json.dumps({**segment, "horizon_months": 6})

    def _wait_stored(self, producer: object, stall: float = 60.0) -> None:
        """Until the streams stored every sale the feed delivered (their stored positions reach
        the delivered offsets), so the model trains on all of it. Progress-based: gives up
        only when the stored positions stop moving for ``stall`` seconds, and says so."""
        from ml.registry.store import Store

        topic = self.settings.topic_sales
        wanted = {p: off for (t, p), off in getattr(producer, "delivered", {}).items()
                  if t == topic}  # fmt: skip
        store = Store.from_url(self.settings.database_url, upgrade=False)
        try:
            seen, since = None, time.monotonic()
            while not self._stop.is_set():
                stored = {p: pos.offset for (t, p), pos in
                          store.stream.positions(self.settings.streams_app_id).items()
                          if t == topic}  # fmt: skip
                if all(stored.get(p, -1) >= off for p, off in wanted.items()):
                    return
                if stored != seen:
                    seen, since = stored, time.monotonic()
                elif time.monotonic() - since > stall:
                    self.console.print(
                        f"[yellow]the streams stored nothing new for {stall:.0f} s; asking for a "
                        "model with what is stored[/yellow]"
                    )
                    return
                self._stop.wait(0.5)
        finally:
            store.close()

    def _request_retrain(self, producer: object) -> None:
        """After the demand feed: ask the trainer for a model, as a person would."""
        import uuid

        from schemas.events import RetrainReason, RetrainRequest

        self._wait_stored(producer)
        request = RetrainRequest(
            event_id=str(uuid.uuid4()),
            occurred_at=datetime.now(UTC),
            domain="demand",
            reason=RetrainReason.MANUAL,
            requested_by="millrace up",
        )
        producer.publish(self.settings.topic_retrain_requests, "demand/global", request)  # type: ignore[attr-defined]
        producer.flush(10)  # type: ignore[attr-defined]
        key = f"-H 'X-Internal-Service-Key: {self.service_key}'"
        body = self._example_body()
        self.console.print(
            "[bold]retrain requested[/bold]; in a few seconds the best candidate goes live (the "
            "first version of a scope always does, a later one only if it beats the live one; "
            "the job says which and why, `millrace jobs` too):\n"
            f"  curl -s {key} {self.api_url}/v1/ml/training/jobs\n"
            f"  curl -s {key} {self.api_url}/v1/ml/models/latest\n"
            f"  curl -s {key} {self.api_url}/v1/ml/segments\n"
            f"  curl -s {key} {self.api_url}/v1/ml/dead-letters\n"
            f"  curl -s {key} -H 'Content-Type: application/json' -d '{body}' "
            f"{self.api_url}/v1/ml/predict\n"
        )

    def run(self, feed: bool = True, rate: float = 500.0) -> None:
        from ml.registry.db import upgrade

        upgrade(self.settings.database_url)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self._stop.set())
        broker = self._start_broker()
        honcho = self._start_procfile()
        try:
            if not self._wait_healthy(honcho):
                self.console.print("[red]the stack did not become healthy; see the log above[/red]")
                raise SystemExit(1)
            self.console.print(
                f"\n[bold green]Millrace is up.[/bold green]\n"
                f"  API:          {self.api_url}  (docs: {self.api_url}/docs)\n"
                f"  Dashboard:    {self.api_url}/  (sign in with the service key below)\n"
                f"  Health:       curl -s {self.api_url}/health\n"
                f"  Data arrives: curl -s -H 'X-Internal-Service-Key: {self.service_key}' "
                f"{self.api_url}/v1/ml/observations/stats\n"
                f"  Kafka:        {self.settings.bootstrap_servers}   Store: "
                f"{self.settings.database_url}\n"
                "  Ctrl-C stops everything.\n"
            )
            if feed:
                threading.Thread(target=self._feed, args=(rate,), daemon=True).start()
            while not self._stop.is_set() and honcho.poll() is None:
                self._stop.wait(0.5)
        finally:
            if honcho.poll() is None:
                honcho.send_signal(signal.SIGTERM)
                try:
                    honcho.wait(20)
                except subprocess.TimeoutExpired:
                    honcho.kill()
                    honcho.wait()
            if broker is not None:
                broker.stop()

    def _start_broker(self) -> EmbeddedBroker | None:
        if not self.settings.embedded:
            return None
        log_dir = self.root / "var"
        log_dir.mkdir(exist_ok=True)
        broker = EmbeddedBroker(
            self.settings.embedded_broker_host,
            self.settings.embedded_broker_port,
            log_path=log_dir / "broker.log",
        )
        try:
            broker.start()
        except BrokerError as exc:
            self.console.print(f"[red]{exc}[/red]")
            raise SystemExit(1) from None
        created = ensure_topics(self.settings)
        self.console.print(
            f"embedded broker ready on {broker.bootstrap_servers} "
            f"(topics created: {', '.join(created) or 'none'})"
        )
        self._reset_positions()
        return broker

    def _reset_positions(self) -> None:
        """The embedded broker keeps nothing: positions stored by an earlier run point into
        data it no longer has, so they move to its (empty) beginning. Observations, model
        state and processed event ids stay: events fed again are recognised as duplicates."""
        from millrace.checkpoints import reset_topic
        from ml.registry.store import Store

        store = Store.from_url(self.settings.database_url)
        try:
            topics = (self.settings.topic_sales, self.settings.topic_network)
            moved = sum(reset_topic(self.settings, store, topic) for topic in topics)
        finally:
            store.close()
        if moved:
            self.console.print(
                f"the embedded broker starts empty: {moved} stored stream position(s) of "
                f"{', '.join(topics)} moved to its beginning (observations and model state kept)"
            )
