"""Shared pytest setup: fixtures for the real broker and the real PostgreSQL live in
``tests/fixtures`` and are started once per session."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest_plugins = [
    "tests.fixtures.broker",
    "tests.fixtures.postgres",
    "tests.fixtures.data",
    "tests.fixtures.markers",
]
