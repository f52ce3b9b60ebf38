"""Forecast books built off the serving process, and what a book depends on in the store.

Building a forecast book is ~0.1-1 s of pandas / model CPU. In a thread of the API process it
holds the GIL for long stretches, and every request waits for it (predict p99 went from 8 ms
to 2.4 s while books were rebuilt). :class:`BookBuilder` builds in one worker process instead
(``spawn``, started at the first build and kept): the worker opens the store and loads
the version's model itself and hands back the pickled book (tens of KB), which the calling
thread unpickles in about a millisecond. A store that another process cannot open (in-memory
SQLite) is built in the calling thread.

The same worker runs other store work that must not hold the serving process's GIL
(:meth:`BookBuilder.call`): the prediction log's batched writes and retention
(``api.prediction_log``), which took ~11 ms of GIL a second in a thread of the API.

:func:`data_fingerprint` is what a book built now depends on in the stored observations: the
current month (the book forecasts from the last *complete* month), the latest stored month up to
the current one, and the count, events and last update of the complete months' rows. Events of
the month still counting change none of these, so they never cause a rebuild.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ml.periods import month_start
from ml.registry.store import Store
from ml.training.versioning import load_model

__all__ = ["BookBuilder", "BuiltBook", "Builder", "data_fingerprint"]

log = logging.getLogger(__name__)

#: ``builder(store, model, version)``: a module-level function (the worker imports it by name),
#: a domain's :meth:`~ml.domains.base.Domain.forecast_book`.
Builder = Callable[[Store, Any, str], Any]


@dataclass(frozen=True, slots=True)
class BuiltBook:
    """A book and where and how long it was built."""

    book: Any
    pid: int
    seconds: float


def data_fingerprint(store: Store, domain: str, now: datetime) -> tuple[Any, ...]:
    """What a book of ``domain`` built at ``now`` depends on in the stored observations."""
    month = month_start(now)
    rows, events, updated, last = store.series.completeness(domain, month)
    return (month, min(last, month) if last else None, rows, events, updated)


# --- the worker process ----------------------------------------------------------------------
_STORES: dict[str, Store] = {}


def _worker_start() -> None:
    # The API process decides when the worker stops. The worker keeps the normal priority: a
    # niced one (10) built a book 2-3x slower on a busy machine, and a model-updated event
    # waits for that build (the switch took 2.7-3.3 s instead of 1.6 s at load 6 on 2 cores).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _build(store: Store, builder: Builder, domain: str, scope: str, version: str) -> BuiltBook:
    started = time.perf_counter()
    model = load_model(store, domain, scope, version)
    book = builder(store, model, version)
    return BuiltBook(book, os.getpid(), time.perf_counter() - started)


def _call_in_worker(url: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    store = _STORES.get(url)
    if store is None:
        store = _STORES[url] = Store.from_url(url, upgrade=False)
    return fn(store, *args)


class BookBuilder:
    """Builds forecast books in one worker process (or in the caller's thread when the store
    cannot be shared). ``build`` and ``call`` block their calling thread, never holding the GIL
    while the worker works."""

    def __init__(self, store: Store, in_process: bool | None = None) -> None:
        self.store = store
        self.url = store.shareable_url()
        self.in_process = self.url is not None if in_process is None else in_process
        if self.in_process and self.url is None:
            raise ValueError("this store cannot be opened by another process")
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def build(self, builder: Builder, domain: str, scope: str, version: str) -> BuiltBook:
        """The book of ``version`` built by ``builder``; raises what the build raised."""
        return self.call(_build, builder, domain, scope, version)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(store, *args)`` in the worker process, on the worker's own store (in the calling
        thread on this store when it cannot be shared); raises what ``fn`` raised. ``fn`` is a
        module-level function and ``args`` and the result are pickled across."""
        if not self.in_process:
            return fn(self.store, *args)
        assert self.url is not None
        pool = self._executor()
        try:
            return pool.submit(_call_in_worker, self.url, fn, args).result()
        except BrokenProcessPool:
            log.warning("the book worker died; a new one starts with the next call")
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_start,
                )
            return self._pool

    def close(self) -> None:
        """Stop the worker (a build in progress finishes first)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
