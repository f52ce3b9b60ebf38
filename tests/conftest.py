"""Shared pytest setup: fixtures for the real broker and the real PostgreSQL live in
``tests/fixtures`` and are started once per session."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest_plugins = ["tests.fixtures.broker", "tests.fixtures.postgres", "tests.fixtures.data"]


def _weight(item) -> int:
    """``long(minutes)`` of a test (``long`` alone: 1), 0 when not marked."""
    mark = item.get_closest_marker("long")
    return 0 if mark is None else int(mark.args[0]) if mark.args else 1


def pytest_collection_modifyitems(items: list) -> None:
    """The longest tests first (stable order otherwise): xdist's load scheduling hands the first
    tests out round robin, so the long runs overlap on the workers instead of ending last."""
    items.sort(key=lambda item: -_weight(item))
