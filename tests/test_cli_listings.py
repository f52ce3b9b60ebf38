"""``millrace jobs`` and ``millrace dead-letters``: rich tables of what the store holds."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from ml.registry.entities import DeadLetterRow
from ml.registry.store import Store

ROOT = Path(__file__).resolve().parents[1]


def millrace(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "millrace", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_jobs_and_dead_letters_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = Store.from_url(url)
    reason = "occurred_at 2026-12-01T13:16:00+00:00 is more than 86400 s in the future"
    payload = '{"event_id": "x", "brand": "[/bold][red]"}'  # no rich markup
    letter = DeadLetterRow("dl-1", "streams", "sales.transactions", 2, 41, "k", "future_timestamp",
                           reason, payload, len(payload), datetime.now(UTC))  # fmt: skip
    store.stream.apply_observations([], {("streams", "sales.transactions", 2): 41},
                                    dead_letters=[letter])  # fmt: skip
    job = store.jobs.create_job("demand", "global", "manual")
    store.jobs.update_job(job.id, status="completed", outcome="promoted", version="v1.0.0-1",
                          reason="first version of demand/global: ...")  # fmt: skip
    store.close()

    jobs = millrace(url, "jobs")
    assert jobs.returncode == 0, jobs.stderr
    assert "promoted" in jobs.stdout and "first version of demand/global" in jobs.stdout
    letters = millrace(url, "dead-letters", "--limit", "5")
    assert letters.returncode == 0, letters.stderr
    assert "Dead letters: 1 stored" in letters.stdout
    assert "sales.transactions[2]@41" in letters.stdout and "future_timestamp" in letters.stdout
    assert "in the" in letters.stdout and '"brand": "[/bold][red]"' in letters.stdout
    assert millrace(url, "dead-letters", "--limit", "0").returncode == 2
