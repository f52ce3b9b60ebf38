"""The versions the API serves: one immutable snapshot per domain, swapped whole.

A snapshot holds the live version's row and, for a domain with a forecast book
(:meth:`ml.domains.base.Domain.forecast_book`), the book built for that version.
It is rebuilt when a model-updated event arrives (``api.updates``) and when the periodic check
finds a new live version or a change in what the book depends on (:func:`api.books.
data_fingerprint`: the complete months, not the month still counting). Books are built in a
worker process (:class:`api.books.BookBuilder`), never on the serving loop nor in a thread that
would hold its GIL. A request takes the snapshot once and answers from it alone, so one
response never mixes two versions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.books import BookBuilder, Builder, BuiltBook, data_fingerprint
from ml.domains import all_domains
from ml.registry.entities import ModelVersionRow
from ml.registry.store import Store

__all__ = ["LiveModel", "LiveModels", "forecast_books"]

log = logging.getLogger(__name__)

#: Longest horizon a prediction may ask for (months).
MAX_HORIZON = 24


@dataclass(frozen=True)
class LiveModel:
    """What a domain serves now."""

    domain: str
    version: ModelVersionRow
    #: the domain's forecast book of this version (None: the domain has none)
    book: Any
    fingerprint: tuple[Any, ...]
    loaded_at: datetime
    built: BuiltBook | None = None


def forecast_books() -> dict[str, Builder]:
    """The book builder of every registered domain that serves forecasts (by domain)."""
    return {
        domain.name: builder
        for domain in all_domains()
        if (builder := domain.forecast_book()) is not None
    }


class LiveModels:
    """Current snapshots by domain; ``refresh`` is thread-safe and cheap when nothing changed.

    ``refresh`` blocks its calling thread while a book is built (run it in a worker thread, as
    ``api.updates`` does); the thread waits on the builder's process without holding the GIL.
    ``on_check(domain)`` is called for every check, ``on_build(domain, built)`` for every book.
    """

    def __init__(
        self,
        store: Store,
        domains: tuple[str, ...] | None = None,
        books: dict[str, Builder] | None = None,
        on_change: Callable[[str, LiveModel | None], None] | None = None,
        builder: BookBuilder | None = None,
        on_check: Callable[[str], None] | None = None,
        on_build: Callable[[str, BuiltBook], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.books = books if books is not None else forecast_books()
        #: the domains served: by default those with a forecast book
        self.domains = domains if domains is not None else tuple(self.books)
        self.on_change = on_change
        self.on_check = on_check
        self.on_build = on_build
        self.builder = builder or BookBuilder(store)
        self.clock = clock
        self._current: dict[str, LiveModel | None] = {}
        self._lock = threading.Lock()
        self.errors: dict[str, str] = {}

    def get(self, domain: str) -> LiveModel | None:
        return self._current.get(domain)

    def missing(self) -> list[str]:
        """The served domains whose snapshot was never loaded (no check of their live version
        has finished yet); empty once every one was, with or without a live version."""
        return [domain for domain in self.domains if domain not in self._current]

    def refresh_all(self) -> None:
        for domain in self.domains:
            self.refresh(domain)

    def refresh(self, domain: str, force: bool = False) -> LiveModel | None:
        """Load the live version of ``domain`` if it (or its data) changed; never raises."""
        with self._lock:
            try:
                return self._refresh(domain, force)
            except Exception as exc:  # noqa: BLE001 - keep serving the previous snapshot
                log.exception("refreshing %s failed; the previous snapshot stays", domain)
                self.errors[domain] = f"{type(exc).__name__}: {exc}"
                return self._current.get(domain)

    def close(self) -> None:
        """Stop the book builder's worker process."""
        self.builder.close()

    def _refresh(self, domain: str, force: bool) -> LiveModel | None:
        if self.on_check is not None:
            self.on_check(domain)
        activation = self.store.models.live_activation(domain)
        if activation is None:
            self._set(domain, None)
            return None
        builder = self.books.get(domain)
        data = data_fingerprint(self.store, domain, self.clock()) if builder else ()
        fingerprint = (activation.version, activation.activated_at, *data)
        current = self._current.get(domain)
        if current is not None and current.fingerprint == fingerprint and not force:
            return current
        row = self.store.models.get_version(domain, activation.scope, activation.version)
        if row is None:
            raise KeyError(f"live version {activation.version} of {domain} has no row")
        built = None
        if builder is not None:
            built = self.builder.build(builder, domain, activation.scope, activation.version)
            if self.on_build is not None:
                self.on_build(domain, built)
        book = built.book if built else None
        live = LiveModel(domain, row, book, fingerprint, datetime.now(UTC), built)
        self._set(domain, live)
        self.errors.pop(domain, None)
        if built is not None:
            log.info(
                "serving %s %s (%s), book built in %.2f s by pid %d",
                domain, row.version, row.algorithm, built.seconds, built.pid,
            )  # fmt: skip
        else:
            log.info("serving %s %s (%s)", domain, row.version, row.algorithm)
        return live

    def _set(self, domain: str, live: LiveModel | None) -> None:
        old = self._current.get(domain)
        self._current[domain] = live
        changed = (old.version.version if old else None) != (live.version.version if live else None)
        if changed and self.on_change is not None:
            self.on_change(domain, live)
