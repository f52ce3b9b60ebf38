"""Every test that starts a broker, PostgreSQL or a Millrace process carries the ``integration``
marker, so that ``pytest -m "not integration"`` is a quick run without services."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.fixtures.markers import COLLECTED, report

ROOT = Path(__file__).resolve().parents[1]


def _collect_in_a_subprocess(tmp_path: Path) -> list[dict]:
    """The whole suite's report, when this session collected only part of it."""
    path = tmp_path / "markers.json"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT, env={**os.environ, "MARKERS_REPORT": str(path)},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return orjson.loads(path.read_bytes())


def test_every_test_using_services_is_marked_integration(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    collected = request.config.stash.get(COLLECTED, [])
    whole = {item.path for item in collected} >= set((ROOT / "tests").glob("test_*.py"))
    items = report(collected) if whole else _collect_in_a_subprocess(tmp_path)
    assert len(items) > 500  # the whole suite was collected, acceptance runs included
    assert any(i["needs"] for i in items)
    unmarked = [f"{i['id']} ({', '.join(i['needs'])})" for i in items
                if i["needs"] and "integration" not in i["markers"]]  # fmt: skip
    assert not unmarked, "not marked integration:\n" + "\n".join(unmarked)
