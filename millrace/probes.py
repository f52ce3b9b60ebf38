"""Liveness, readiness and Prometheus metrics of a consumer process (streams worker, trainer)
on its own port: ``GET /livez``, ``GET /readyz``, ``GET /metrics``.

The port is served by a small sidecar process, not by a thread of the consumer: a stalled or
stopped consumer (SIGSTOP, a loop stuck in a C call, a frozen thread holding the GIL) answers
nothing at all, so a thread of it could never say 503. The consumer writes its heartbeat into
shared memory (a few doubles, no lock, no system call) and the sidecar judges it:

- ``/livez``: 200 while the consumer's loop ran within ``PROBE_HEARTBEAT_SECONDS`` (and while
  it starts, before its loop first ran); 503 after.
- ``/readyz``: 200 while the consumer has partitions assigned and polled the broker within
  ``PROBE_HEARTBEAT_SECONDS``; 503 (with a ``detail``) otherwise.
- ``/metrics``: forwarded to the consumer's own registry, which it serves on a loopback port
  chosen by the system; 503 when the consumer does not answer within a few seconds.

The sidecar is ``python -m millrace.probes`` started with the listening socket and the
heartbeat's shared file mapping as inherited file descriptors (it imports nothing of the
consumer). The clock is ``time.monotonic`` (CLOCK_MONOTONIC: one clock for every process of the
machine, not moved by wall-clock changes). The sidecar ends with its parent (it watches its
parent id), however the parent ends.
"""

from __future__ import annotations

import argparse
import json
import logging
import mmap
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["Beat", "Heartbeat", "Probes", "liveness", "readiness", "serve_probes"]

log = logging.getLogger("millrace.probes")

#: started at, loop ran at, polled at (monotonic seconds), partitions assigned
_LAYOUT = struct.Struct("=dddd")
_STARTED, _LOOP, _POLLED, _ASSIGNED = (i * 8 for i in range(4))
#: how long the sidecar waits for the consumer's own metrics
METRICS_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class Beat:
    """What a heartbeat says at one instant (monotonic seconds; 0: never)."""

    started_at: float
    loop_at: float
    polled_at: float
    partitions: int


class Heartbeat:
    """The consumer's side: cheap writes into a file mapping shared with the sidecar (an
    unlinked temporary file: nothing is left behind)."""

    def __init__(self, fd: int | None = None) -> None:
        if fd is None:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
            self._file.write(_LAYOUT.pack(time.monotonic(), 0.0, 0.0, 0.0))
            self._file.flush()
            fd = self._file.fileno()
        self.fd = fd
        self._map = mmap.mmap(fd, _LAYOUT.size)

    def _set(self, at: int, value: float) -> None:
        struct.pack_into("=d", self._map, at, value)

    def tick(self) -> None:
        """The process's loop ran."""
        self._set(_LOOP, time.monotonic())

    def polled(self) -> None:
        """The consumer polled the broker (its loop ran too)."""
        now = time.monotonic()
        self._set(_POLLED, now)
        self._set(_LOOP, now)

    def assigned(self, partitions: int) -> None:
        """How many partitions the consumer has now."""
        self._set(_ASSIGNED, float(partitions))

    def read(self) -> Beat:
        started, loop, polled, partitions = _LAYOUT.unpack_from(self._map)
        return Beat(started, loop, polled, int(partitions))


def _ago(at: float, now: float) -> float | None:
    return round(now - at, 3) if at else None


def liveness(beat: Beat, now: float, heartbeat_seconds: float) -> tuple[int, dict[str, Any]]:
    """``/livez``: status code and body."""
    if not beat.loop_at:
        return 200, {"status": "starting", "started_seconds_ago": _ago(beat.started_at, now)}
    age = now - beat.loop_at
    body: dict[str, Any] = {
        "loop_seconds_ago": round(age, 3),
        "heartbeat_seconds": heartbeat_seconds,
    }
    if age <= heartbeat_seconds:
        return 200, {"status": "live", **body}
    return 503, {
        "status": "stalled",
        "detail": f"the process's loop has not run for {age:.1f} s "
        f"(PROBE_HEARTBEAT_SECONDS={heartbeat_seconds:g})",
        **body,
    }


def readiness(beat: Beat, now: float, heartbeat_seconds: float) -> tuple[int, dict[str, Any]]:
    """``/readyz``: ready while partitions are assigned and the last poll is recent enough."""
    body: dict[str, Any] = {
        "partitions": beat.partitions,
        "polled_seconds_ago": _ago(beat.polled_at, now),
        "heartbeat_seconds": heartbeat_seconds,
    }
    if not beat.loop_at:
        why = "starting: the consumer has not run its loop yet"
    elif beat.partitions <= 0:
        why = "no partition assigned"
    elif not beat.polled_at:
        why = "no poll yet"
    elif now - beat.polled_at > heartbeat_seconds:
        why = (
            f"no poll for {now - beat.polled_at:.1f} s "
            f"(PROBE_HEARTBEAT_SECONDS={heartbeat_seconds:g})"
        )
    else:
        return 200, {"status": "ready", **body}
    return 503, {"status": "not ready", "detail": why, **body}


class Probes:
    """The consumer's handle on its sidecar."""

    def __init__(self, heartbeat: Heartbeat, process: Any, port: int) -> None:
        self.heartbeat = heartbeat
        self.process = process
        self.port = port

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)


def serve_probes(
    name: str, host: str, port: int, registry: CollectorRegistry, heartbeat_seconds: float
) -> Probes | None:
    """Start the sidecar serving ``host:port`` for this process (``name`` in its logs); None
    when ``port`` is 0 (off) or taken (said loudly: the process runs on without probes)."""
    from prometheus_client import start_http_server

    if not port:
        return None
    try:
        sock = socket.create_server((host, port))
    except OSError as exc:
        log.error("%s: metrics and probes NOT served, %s:%d: %s", name, host, port, exc)
        return None
    internal, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    heartbeat = Heartbeat()
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    command = [
        sys.executable, "-m", "millrace.probes",
        "--socket-fd", str(sock.fileno()),
        "--heartbeat-fd", str(heartbeat.fd),
        "--metrics-url", f"http://127.0.0.1:{internal.server_port}/metrics",
        "--heartbeat-seconds", repr(heartbeat_seconds),
        "--parent", str(os.getpid()),
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        pass_fds=(sock.fileno(), heartbeat.fd),
        env={**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{path}" if path else root},
        stdin=subprocess.DEVNULL,
    )
    sock.close()  # the sidecar holds its own copy
    log.info("%s: /metrics, /livez, /readyz on %s:%d (pid %d)", name, host, port, process.pid)
    return Probes(heartbeat, process, port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock: socket.socket, heartbeat: Heartbeat, metrics_url: str,
                 heartbeat_seconds: float) -> None:  # fmt: skip
        super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.heartbeat = heartbeat
        self.metrics_url = metrics_url
        self.heartbeat_seconds = heartbeat_seconds


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        """Quiet: probes come every few seconds."""

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, body: dict[str, Any]) -> None:
        self._send(code, json.dumps(body).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - stdlib's name
        path = self.path.split("?", 1)[0]
        server = self.server
        now = time.monotonic()
        if path == "/livez":
            self._json(*liveness(server.heartbeat.read(), now, server.heartbeat_seconds))
        elif path == "/readyz":
            self._json(*readiness(server.heartbeat.read(), now, server.heartbeat_seconds))
        elif path == "/metrics":
            self._metrics()
        else:
            self._json(404, {"detail": f"no route {path}: /metrics, /livez, /readyz"})

    do_HEAD = do_GET  # noqa: N815 - stdlib's name

    def _metrics(self) -> None:
        accept = self.headers.get("Accept")
        request = urllib.request.Request(
            self.server.metrics_url, headers={"Accept": accept} if accept else {}
        )
        try:
            with urllib.request.urlopen(request, timeout=METRICS_TIMEOUT_SECONDS) as resp:
                body, kind = resp.read(), resp.headers.get("Content-Type", "text/plain")
        except (OSError, urllib.error.URLError) as exc:
            self._json(503, {"detail": f"the process did not answer for its metrics: {exc}"})
            return
        self._send(200, body, kind)


def _watch_parent(parent: int) -> None:
    """End the sidecar when its parent is gone (even killed without a goodbye)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """The sidecar: serve until the parent is gone."""
    parser = argparse.ArgumentParser(prog="python -m millrace.probes")
    parser.add_argument("--socket-fd", type=int, required=True)
    parser.add_argument("--heartbeat-fd", type=int, required=True)
    parser.add_argument("--metrics-url", required=True)
    parser.add_argument("--heartbeat-seconds", type=float, required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the parent
    threading.Thread(target=_watch_parent, args=(args.parent,), daemon=True).start()
    sock = socket.socket(fileno=args.socket_fd)
    server = _Server(sock, Heartbeat(args.heartbeat_fd), args.metrics_url, args.heartbeat_seconds)
    server.serve_forever(poll_interval=0.5)


if __name__ == "__main__":
    main()
