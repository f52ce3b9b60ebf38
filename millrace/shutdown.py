"""Bounded stops and patient starts for the long-running processes.

- :func:`arm_watchdog`: once a stop is asked for, the process ends within a bound even if the
  broker or the store is gone and a graceful step hangs. Ending early loses nothing: every
  process resumes from what the store holds.
- :func:`connect_store`: a process that starts while the database is down waits for it (with
  backoff, saying so) instead of crashing in a restart loop.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

from millrace.settings import Settings
from ml.registry.errors import Backoff, is_transient
from ml.registry.store import Store

__all__ = ["EXIT_STORE_REFUSED", "arm_watchdog", "connect_store", "stop_on_store_error"]

#: exit status of a process stopped by a store error that retrying cannot cure
EXIT_STORE_REFUSED = 3

_armed = threading.Event()


def arm_watchdog(seconds: float, name: str) -> None:
    """Exit the process ``seconds`` from now unless it has ended by then (armed once)."""
    if _armed.is_set():
        return
    _armed.set()

    def expire() -> None:
        time.sleep(seconds)
        sys.stderr.write(
            f"{name}: graceful stop did not finish within {seconds:g} s "
            "(SHUTDOWN_TIMEOUT_SECONDS); exiting now. Nothing is lost: the store holds "
            "where to resume.\n"
        )
        sys.stderr.flush()
        os._exit(1)

    threading.Thread(target=expire, name="shutdown-watchdog", daemon=True).start()


def stop_on_store_error(log: logging.Logger, what: str, exc: BaseException) -> None:
    """The store refused something a retry cannot cure: stop rather than skip (exit status
    :data:`EXIT_STORE_REFUSED`). Nothing past what is stored was acknowledged, so a restart
    after the cause is fixed consumes the same messages again."""
    log.critical(
        "STOPPING: the store refused %s with an error retrying cannot cure: %s: %s. Nothing "
        "was skipped; after fixing the cause, restart and it resumes from what is stored.",
        what,
        type(exc).__name__,
        exc,
    )
    logging.shutdown()
    os._exit(EXIT_STORE_REFUSED)


def connect_store(
    settings: Settings, log: logging.Logger, stop: threading.Event | None = None
) -> Store:
    """Open (and migrate) the store, waiting while the database is unreachable."""
    delays = Backoff(settings.store_retry_initial_seconds, settings.store_retry_max_seconds)
    while True:
        try:
            return Store.from_url(settings.database_url, upgrade=True)
        except Exception as exc:  # noqa: BLE001 - only transient errors are waited out
            if not is_transient(exc) or (stop is not None and stop.is_set()):
                raise
            delay = delays.next()
            log.warning(
                "store unreachable at start (%s); retry %d in %.1f s",
                str(exc).splitlines()[0],
                delays.attempts,
                delay,
            )
            if stop is not None:
                if stop.wait(delay):
                    raise
            else:
                time.sleep(delay)
