"""One-step-ahead accuracy of ``OnlineDemandForecaster`` on Norway new-car sales by make.

Data: ``norway_new_car_sales_by_make.csv`` (2007-01 .. 2017-01). Makes with fewer than 24
listed months are skipped; duplicate (make, month) rows are summed. A month missing inside a
make's range means "not listed" (very few sales): it is *filled* with 0 sales through
``fill_gaps`` so the series stays consecutive, but filled months are never scored. Months are
fed in time order, all makes of a month before the next month, segment
``("CAR", make, "ALL", "")``.

Test window: the last 12 months. On every listed (make, month) in it we compare the online
prediction (made before learning that month) with the seasonal-naive forecast (the make's
value 12 months earlier, 0 if not listed). Pooled MAE / RMSE / MAPE / WAPE / R² over all test
points; MASE per make (scale: in-sample seasonal-naive MAE of the make's months before the test
window) averaged over makes. Also the wall time per ``observe_month``.

Usage: ``python benchmarks/online_accuracy.py [--learners linear,hatr,arf] [--targets log,ratio]``.
The first learner/target pair is the configuration the forecaster ships with; all pairs run
are written to ``benchmarks/results/online_accuracy.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import pickle
import statistics
import sys
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.demand.online import OnlineDemandForecaster  # noqa: E402
from ml.metrics import score  # noqa: E402

__all__ = ["load_series", "run", "main"]

DATA = Path("/work/shared/data/vehicle/norway_ofv/norway_new_car_sales_by_make.csv")
RESULTS = Path(__file__).resolve().parent / "results" / "online_accuracy.json"
MIN_MONTHS = 24
TEST_MONTHS = 12
SEASON = 12


def _index(year: int, month: int) -> int:
    return year * 12 + month - 1


def _month(index: int) -> date:
    return date(index // 12, index % 12 + 1, 1)


def load_series(path: Path = DATA) -> dict[str, dict[int, float]]:
    """``{make: {month_index: quantity}}`` for makes with at least ``MIN_MONTHS`` months."""
    series: dict[str, dict[int, float]] = defaultdict(dict)
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            index = _index(int(row["Year"]), int(row["Month"]))
            book = series[row["Make"]]
            book[index] = book.get(index, 0.0) + float(row["Quantity"])
    return {make: book for make, book in series.items() if len(book) >= MIN_MONTHS}


def run(series: dict[str, dict[int, float]], learner: str, target: str) -> dict:
    """Feed every month through a fresh forecaster; score the test window."""
    forecaster = OnlineDemandForecaster(learner=learner, target=target)
    first = min(min(book) for book in series.values())
    last = max(max(book) for book in series.values())
    test_start = last - TEST_MONTHS + 1
    online: list[float] = []
    naive: list[float] = []
    actual: list[float] = []
    per_make: dict[str, tuple[list[float], list[float], list[float]]] = defaultdict(
        lambda: ([], [], [])
    )
    calls = 0
    elapsed = 0.0
    for index in range(first, last + 1):
        for make in sorted(series):
            book = series[make]
            if index not in book:
                continue  # not listed: filled with 0 when the make's next listed month comes
            segment = ("CAR", make, "ALL", "")
            started = time.perf_counter()
            fills = forecaster.fill_gaps(segment, _month(index))
            result = forecaster.observe_month(segment, _month(index), book[index])
            elapsed += time.perf_counter() - started
            calls += 1 + len(fills)
            if index >= test_start:
                baseline = book.get(index - SEASON, 0.0)
                online.append(result.predicted)
                naive.append(baseline)
                actual.append(result.actual)
                y, p, b = per_make[make]
                y.append(result.actual)
                p.append(result.predicted)
                b.append(baseline)

    def summary(predictions: list[float], column: int) -> dict:
        pooled = score(actual, predictions)
        pooled.pop("mase")
        mases = []
        for make, columns in per_make.items():
            book = series[make]
            train = [book.get(i, 0.0) for i in range(min(book), test_start)]
            value = score(columns[0], columns[column], y_train=train, season=SEASON)["mase"]
            if value is not None:
                mases.append(value)
        pooled["mase_mean"] = statistics.fmean(mases) if mases else None
        pooled["mase_median"] = statistics.median(mases) if mases else None
        return pooled

    return {
        "learner": learner,
        "target": target,
        "online": summary(online, 1),
        "seasonal_naive": summary(naive, 2),
        "global_running_metrics_all_months": forecaster.metrics(),
        "observe_month_calls": calls,
        "seconds_per_observe_month": elapsed / calls,
        "pickled_state_bytes": len(pickle.dumps(forecaster)),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", default="linear,hatr,arf")
    parser.add_argument("--targets", default="log,ratio")
    args = parser.parse_args(argv)
    series = load_series()
    runs = [
        run(series, learner, target)
        for learner in args.learners.split(",")
        for target in args.targets.split(",")
    ]
    months = sorted({i for book in series.values() for i in book})
    report = {
        "data": str(DATA),
        "makes": len(series),
        "months": f"{_month(months[0])}..{_month(months[-1])}",
        "test_window": f"{_month(months[-TEST_MONTHS])}..{_month(months[-1])}",
        "test_points": runs[0]["online"]["n"],
        "gaps": "missing months inside a make's range filled with 0 via fill_gaps, not scored",
        "default": {"learner": runs[0]["learner"], "target": runs[0]["target"]},
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
