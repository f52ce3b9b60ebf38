"""Every test that starts a broker, PostgreSQL or a Millrace process carries the ``integration``
marker, so that ``pytest -m "not integration"`` is a quick run without services."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_using_services_is_marked_integration(tmp_path: Path) -> None:
    report = tmp_path / "markers.json"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "tests.fixtures.markers", "tests"],
        cwd=ROOT, env={**os.environ, "MARKERS_REPORT": str(report)},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    items = orjson.loads(report.read_bytes())
    assert len(items) > 500  # the whole suite was collected, acceptance runs included
    assert any(i["needs"] for i in items)
    unmarked = [f"{i['id']} ({', '.join(i['needs'])})" for i in items
                if i["needs"] and "integration" not in i["markers"]]  # fmt: skip
    assert not unmarked, "not marked integration:\n" + "\n".join(unmarked)
