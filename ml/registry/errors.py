"""What can go wrong when writing to the store, and how long to wait before trying again.

Processes that commit to the store (the stream worker, the trainer) retry a *transient* error
(the database is unreachable, restarting, or dropped the connection) with :class:`Backoff` and
never acknowledge past what is stored; any other error stops the process with a clear message,
since retrying it cannot help and skipping it would lose data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

__all__ = ["StaleCheckpoint", "Backoff", "is_transient"]


class StaleCheckpoint(RuntimeError):
    """A partition's stored offset is not the one this writer started its batch from: another
    worker committed it meanwhile (this one lost the partition). The batch is not written."""


def is_transient(exc: BaseException) -> bool:
    """True for errors that a retry of the same transaction can cure (connection lost, server
    down or starting up, serialization failure, SQLite busy); False for bad data or bad SQL."""
    if isinstance(exc, DisconnectionError | InterfaceError | OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return False


@dataclass
class Backoff:
    """Doubling waits from ``initial`` up to ``maximum`` seconds (one per wait for the store)."""

    initial: float = 0.5
    maximum: float = 10.0
    attempts: int = field(default=0, init=False)

    def next(self) -> float:
        """The wait before the next attempt (and count it)."""
        delay = min(self.maximum, self.initial * 2 ** min(self.attempts, 30))
        self.attempts += 1
        return delay
