"""Processes that start together against a new database migrate it one after the other.

Found when the tests' processes began starting in a fraction of a second: three services
migrating one new SQLite file at once, one failed with Alembic's "expected to match one row".
"""

from __future__ import annotations

import multiprocessing

import pytest

from ml.registry.db import current_revision, upgrade

pytestmark = pytest.mark.integration

PROCESSES = 4


def _migrate(url: str, barrier) -> None:
    barrier.wait()
    upgrade(url)


def _race(url: str) -> list[int]:
    context = multiprocessing.get_context("fork")  # ml.registry is imported: all start at once
    barrier = context.Barrier(PROCESSES)
    procs = [context.Process(target=_migrate, args=(url, barrier)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return [proc.exitcode for proc in procs]


def test_sqlite_file_migrated_by_processes_at_once(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert _race(url) == [0] * PROCESSES
    assert current_revision(url) is not None


def test_postgresql_migrated_by_processes_at_once(fresh_postgres_url: str) -> None:
    assert _race(fresh_postgres_url) == [0] * PROCESSES
    assert current_revision(fresh_postgres_url) is not None
