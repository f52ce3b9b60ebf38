"""Drift detection delay and false alarms of the demand stream processor (in-process).

Demand: ``simulate_demand`` (8 segments, 60 months from 2019-01, no trend, base rate 60) with a
x``--factor`` level shift of a quarter of the segments from ``drift_at`` (month 36, 2022-01), run
through :class:`ml.demand.processor.DemandProcessor` (catch-up mode off: a live stream), for
``--seeds`` seeds; the same seeds without drift give the stationary runs. Per detector family:

* ``delay_months``: for each drifted segment, months from the drift month to the month of the
  first drift event at or after it (0 = detected at the close of the drift month itself);
  median, 90th percentile, max, and how many segments were not detected within 12 months;
* ``false_alarms_per_1000``: drift events in the stationary runs per 1,000 closed
  segment-months.

Families: ``changes`` (the change-detector suites of :mod:`ml.demand.changes`: ``sales_*``
and ``error_*``, also reported apart as ``sales_changes`` and ``error_changes``),
``input_shift`` / ``adwin`` (the drift monitor), ``any`` (all drift events).

Usage: ``python benchmarks/drift_delay.py [--seeds 6] [--factor 2.0]``. Writes the ``demand``
key of ``benchmarks/results/drift_delay.json`` (other top-level keys, e.g. ``network``, are
kept).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from millrace.importers.simulate import simulate_demand  # noqa: E402
from millrace.settings import load_settings  # noqa: E402
from ml.demand.processor import DemandProcessor  # noqa: E402
from ml.periods import add_months  # noqa: E402
from ml.streaming import ProcessorOutput  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "drift_delay.json"
START, MONTHS, DRIFT_MONTH, SEGMENTS = date(2019, 1, 1), 60, 36, 8


FAMILIES = ("changes", "sales_changes", "error_changes", "input_shift", "adwin", "any")


def families(detector: str) -> tuple[str, ...]:
    """The families a drift event's detector counts in (besides ``any``)."""
    if detector.startswith("sales_"):
        return ("changes", "sales_changes")
    if detector.startswith("error_"):
        return ("changes", "error_changes")
    return (detector,)


def run(seed: int, drift: bool, factor: float) -> tuple[list[str], ProcessorOutput]:
    drift_at = add_months(START, DRIFT_MONTH).date() if drift else None
    source = simulate_demand(
        seed=seed, start=START, months=MONTHS, segments=SEGMENTS, trend=0.0, base_rate=60.0,
        drift_at=drift_at, drift_factor=factor,
    )  # fmt: skip
    settings = load_settings(_env_file=None).model_copy(update={"catch_up_lag_seconds": 0.0})
    processor = DemandProcessor.from_settings(settings)
    events = [record.event for record in source.records()]
    out = ProcessorOutput()
    for i in range(0, len(events), 500):
        out.extend(processor.process(events[i : i + 500]))
    return source.drifted_segments, out


def months_between(a: date, b: date) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--factor", type=float, default=2.0)
    args = parser.parse_args()
    drift_day = add_months(START, DRIFT_MONTH).date()
    delays: dict[str, list[int]] = defaultdict(list)
    missed: dict[str, int] = defaultdict(int)
    alarms: dict[str, int] = defaultdict(int)
    drifted_total = points = 0
    for seed in range(1, args.seeds + 1):
        drifted, out = run(seed, True, args.factor)
        drifted_total += len(drifted)
        for segment in drifted:
            first: dict[str, int] = {}
            for event in out.drift_events:
                month = date.fromisoformat(event.evidence["month"])
                if event.scope != segment or month < drift_day:
                    continue
                delay = months_between(drift_day, month)
                for name in (*families(event.detector), "any"):
                    first[name] = min(first.get(name, delay), delay)
            for name in FAMILIES:
                if name in first and first[name] <= 12:
                    delays[name].append(first[name])
                else:
                    missed[name] += 1
        _, quiet = run(seed, False, args.factor)
        points += SEGMENTS * (MONTHS - 1)  # closed segment-months (the last month stays open)
        for event in quiet.drift_events:
            for name in (*families(event.detector), "any"):
                alarms[name] += 1
        print(f"seed {seed}: done", file=sys.stderr)
    report = {
        "setup": {
            "simulator": "simulate_demand",
            "segments": SEGMENTS,
            "months": MONTHS,
            "drift_month": DRIFT_MONTH,
            "drift_factor": args.factor,
            "seeds": args.seeds,
            "drifted_segments": drifted_total,
            "stationary_segment_months": points,
        },  # fmt: skip
        "families": {},
    }
    for name in FAMILIES:
        ds = sorted(delays[name])
        report["families"][name] = {
            "detected": len(ds),
            "missed_within_12_months": missed[name],
            "delay_months_median": statistics.median(ds) if ds else None,
            "delay_months_p90": ds[int(0.9 * (len(ds) - 1))] if ds else None,
            "delay_months_max": max(ds) if ds else None,
            "false_alarms": alarms[name],
            "false_alarms_per_1000": round(1000 * alarms[name] / points, 2),
        }
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data["demand"] = report
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
