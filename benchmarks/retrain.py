"""Retrain wall time and candidate accuracy for the demand domain.

- Dealership contracts (36 months, 39 segments): every contract is imported and folded into
  observations exactly as the stream does, then one job runs (default 80/20 split).
- Norway by-make (65 makes x 121 months): the monthly counts are loaded as observations
  directly (the same store rows the stream builds from the expanded sale events; the replay of
  those 1.35 M events is exercised by the tests), then one job runs.
- Accuracy table on Norway with the last 12 months as the test window: every candidate's MAE,
  RMSE, MAPE, R², MASE, and the MAE gain of the best over seasonal naive.

Usage: ``.venv/bin/python benchmarks/retrain.py``; writes ``benchmarks/results/retrain.json``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from millrace.importers.dealership import DealershipSource  # noqa: E402
from ml.aggregates import FieldStats  # noqa: E402
from ml.demand.training import DemandTrainer  # noqa: E402
from ml.domains import get_domain  # noqa: E402
from ml.metrics import score  # noqa: E402
from ml.observations import ObservationDelta  # noqa: E402
from ml.registry.store import Store  # noqa: E402
from ml.training.runner import TrainingRunner  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "vehicle"


def contracts_store(tmp: Path) -> Store:
    store = Store.from_url(f"sqlite:///{tmp / 'contracts.db'}")
    domain = get_domain("demand")
    source = DealershipSource(DATA / "sgivu_contracts" / "contracts_36m.csv")
    store.stream.apply_observations(d for r in source.records() for d in domain.observe(r.event))
    return store


def norway_store(tmp: Path) -> Store:
    store = Store.from_url(f"sqlite:///{tmp / 'norway.db'}")
    df = pd.read_csv(DATA / "norway_ofv" / "norway_new_car_sales_by_make.csv")
    df = df[df["Make"].notna() & (df["Make"] != "NA")]
    deltas = []
    for row in df.itertuples():
        q = int(row.Quantity)
        month = datetime(int(row.Year), int(row.Month), 1, tzinfo=UTC)
        key = f"CAR|{str(row.Make).strip().upper()}|ALL|"
        deltas.append(
            ObservationDelta("demand", key, month, q, {"sales": FieldStats(q, q, q, 1, 1)})
        )
    store.stream.apply_observations(deltas)
    return store


def timed_job(store: Store, tmp: Path) -> dict:
    runner = TrainingRunner(store, tmp / "models")
    started = time.perf_counter()
    outcome = runner.run(store.jobs.create_job("demand", "global", "manual"))
    return {
        "wall_seconds": round(time.perf_counter() - started, 3),
        "status": outcome.status,
        "version": outcome.version,
        "promoted": outcome.promoted,
        "reason": outcome.reason,
        "events": store.series.count_events("demand"),
    }


def accuracy(store: Store) -> dict:
    trainer = DemandTrainer()
    data = trainer.training_set(store, None, None, 12, test_periods=12)
    table = {}
    for candidate in trainer.candidates():
        candidate.fit(data.train)
        metrics = score(data.y_test, candidate.predict(data.test), scale=data.scale)
        table[candidate.algorithm] = {k: metrics[k] for k in ("mae", "rmse", "mape", "r2", "mase")}
    base = table["seasonal_naive"]["mae"]
    best = min(table, key=lambda k: table[k]["mae"])
    return {
        "test_months": [str(m) for m in data.test_periods],
        "test_rows": len(data.test),
        "candidates": table,
        "best": best,
        "best_mae_gain_vs_seasonal_naive": round(1 - table[best]["mae"] / base, 4),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        contracts = contracts_store(tmp)
        norway = norway_store(tmp)
        result = {
            "benchmark": "retrain",
            "contracts_36m": timed_job(contracts, tmp),
            "norway_by_make": timed_job(norway, tmp),
            "norway_accuracy_last_12_months": accuracy(norway),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    out = ROOT / "benchmarks" / "results" / "retrain.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
