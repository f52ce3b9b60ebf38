"""Detection delay and false alarms of the network drift detectors (in-process, no broker).

The seeded network simulator (``millrace.importers.simulate.simulate_network``, as
``millrace simulate --domain network --drift-at ...``) is run through the stream's
``NetworkProcessor`` in 500-event batches, twice with the same seed: once with ``--drift-at``
(the drifted cells lose ``drift_rsrp_db`` dB of RSRP and their downlink bitrate is multiplied by
``drift_factor``), once without (stationary). Windows of 60 s.

Figures, per monitored field (``rsrp``, ``dl_bitrate``):

* ``delay_windows``: for each drifted cell, closed windows from the drift's first window to the
  cell's first detection (any of level / variance / error) at or after it (0 = detected in the
  drift's first window); median, p90, max, and the share of drifted cells detected at all;
* ``field_delay_windows``: windows from the drift to the field's ``cell_share`` detection (the
  one that makes the retrain request);
* ``false_alarms_per_1000``: cell detections per 1,000 stationary points (a point = one cell's
  closed window of the field), counted on the stationary run (all cells, all windows) and also
  on the drift run before the drift plus the cells that never drift;
* ``field_false_alarms``: ``cell_share`` detections (retrain requests) in the stationary run;
* ``irish_5g``: the real Irish 5G traces (188,711 measurements sorted by time, one partition;
  no ground truth): cell detections per 1,000 points, field detections, retrain requests;
* ``cost``: processor time per event, drift detectors' time per closed cell window (all
  fields).

Usage: ``python benchmarks/drift_delay.py [--cells 16 --minutes 180 --drift-minute 90
--interval 1 --seed 7]`` (the defaults; one measurement per cell per second as in the Irish
traces; online configs of ``--architecture river_linear`` only, to keep the run short);
writes the ``network`` section of ``benchmarks/results/drift_delay.json`` (other top-level
keys, e.g. ``demand``, are kept).

Demand (``--domain demand``; ``--domain all``, the default, runs both): ``simulate_demand`` (8
segments, 60 months from 2019-01, no trend, base rate 60) with a x``--demand-factor`` level
shift of a quarter of the segments from month 36 (2022-01), run through
:class:`ml.demand.processor.DemandProcessor` (catch-up mode off: a live stream) for
``--demand-seeds`` seeds; the same seeds without drift give the stationary runs. Per detector
family (``changes``: the suites of :mod:`ml.demand.changes`, also apart as ``sales_changes``
and ``error_changes``; ``input_shift`` / ``adwin``: the drift monitor; ``any``):

* ``delay_months``: per drifted segment, months from the drift month to the month of its first
  drift event at or after it (0 = at the close of the drift month); median, p90, max, and how
  many were not detected within 12 months;
* ``false_alarms_per_1000``: drift events of the stationary runs per 1,000 closed
  segment-months.

Writes the ``demand`` section of the same file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from millrace.importers.simulate import simulate_demand, simulate_network  # noqa: E402
from millrace.settings import load_settings  # noqa: E402
from ml.demand.processor import DemandProcessor  # noqa: E402
from ml.network.configs import DEFAULT_CONFIGS  # noqa: E402
from ml.network.drift import NetworkDrift  # noqa: E402
from ml.network.processor import NetworkProcessor  # noqa: E402
from ml.periods import add_months  # noqa: E402
from ml.streaming import ProcessorOutput  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "drift_delay.json"
START = datetime(2024, 3, 1, tzinfo=UTC)
WINDOW = 60


def run(args: argparse.Namespace, drift: bool) -> dict[str, Any]:
    drift_at = START + timedelta(minutes=args.drift_minute) if drift else None
    source = simulate_network(
        seed=args.seed, start=START, seconds=args.minutes * 60, cells=args.cells,
        interval=args.interval, drift_at=drift_at,
    )  # fmt: skip
    events = [r.event for r in source.records()]
    configs = [c for c in DEFAULT_CONFIGS if c.online and c.architecture == args.architecture]
    processor = NetworkProcessor(configs=configs, drift=NetworkDrift())
    detections: list[Any] = []
    drift_seconds = 0.0
    observe, close = processor.drift.observe, processor.drift.close_window
    calls = 0

    def timed_observe(*a: Any) -> Any:
        nonlocal drift_seconds, calls
        t = time.perf_counter()
        try:
            return observe(*a)
        finally:
            drift_seconds += time.perf_counter() - t
            calls += 1

    def timed_close(*a: Any) -> Any:
        nonlocal drift_seconds
        t = time.perf_counter()
        try:
            return close(*a)
        finally:
            drift_seconds += time.perf_counter() - t

    processor.drift.observe, processor.drift.close_window = timed_observe, timed_close
    started = time.perf_counter()
    for i in range(0, len(events), 500):
        detections.extend(processor.process(events[i : i + 500]).drift_events)
    elapsed = time.perf_counter() - started
    fields = sorted(processor.monitored)
    return {
        "events": len(events),
        "drifted": set(source.drifted_cells),
        "detections": detections,
        "points": calls,
        "fields": fields,
        "us_per_event": elapsed / len(events) * 1e6,
        "drift_us_per_cell_window": drift_seconds / max(1, calls / len(fields)) * 1e6,
    }


def _window(d: Any) -> int:
    return int(d.occurred_at.timestamp()) // WINDOW - 1


def figures(args: argparse.Namespace) -> dict[str, Any]:
    drifted_run, stationary = run(args, True), run(args, False)
    drift_window = int((START + timedelta(minutes=args.drift_minute)).timestamp()) // WINDOW
    first_window = int(START.timestamp()) // WINDOW
    total_windows = args.minutes
    out: dict[str, Any] = {}
    for field in drifted_run["fields"]:
        cell_det = [d for d in drifted_run["detections"] if d.scope.endswith(f"|{field}")]
        delays = []
        for cell in sorted(drifted_run["drifted"]):
            after = [_window(d) - drift_window for d in cell_det
                     if d.scope == f"{cell}|{field}" and _window(d) >= drift_window]  # fmt: skip
            if after:
                delays.append(min(after))
        field_det = [_window(d) - drift_window for d in cell_det
                     if d.scope == f"*|{field}" and _window(d) >= drift_window]  # fmt: skip
        # stationary points of the drift run: windows before the drift, and the clean cells
        clean = args.cells - len(drifted_run["drifted"])
        pre_points = (drift_window - first_window) * len(drifted_run["drifted"])
        post_clean = total_windows * clean
        false_in_drift_run = [
            d for d in cell_det if not d.scope.startswith("*|")
            and (_window(d) < drift_window or d.scope.split("|")[0] not in drifted_run["drifted"])
        ]  # fmt: skip
        st = [d for d in stationary["detections"] if d.scope.endswith(f"|{field}")]
        st_cells = [d for d in st if not d.scope.startswith("*|")]
        st_points = args.cells * total_windows
        by_detector: dict[str, int] = {}
        for d in st_cells:
            by_detector[d.detector] = by_detector.get(d.detector, 0) + 1
        out[field] = {
            "drifted_cells": len(drifted_run["drifted"]),
            "detected_cells": len(delays),
            "detected_share": len(delays) / max(1, len(drifted_run["drifted"])),
            "delay_windows": {
                "median": statistics.median(delays) if delays else None,
                "p90": sorted(delays)[int(0.9 * (len(delays) - 1))] if delays else None,
                "max": max(delays) if delays else None,
                "all": delays,
            },
            "field_delay_windows": min(field_det) if field_det else None,
            "false_alarms_per_1000": {
                "stationary_run": 1000 * len(st_cells) / st_points,
                "stationary_run_by_detector": {
                    k: 1000 * v / st_points for k, v in sorted(by_detector.items())
                },
                "drift_run_clean_points": 1000
                * len(false_in_drift_run)
                / max(1, pre_points + post_clean),
            },
            "stationary_points": st_points,
            "field_false_alarms": sum(1 for d in st if d.scope.startswith("*|")),
        }
    out["cost"] = {
        "processor_us_per_event": round(drifted_run["us_per_event"], 1),
        "drift_us_per_cell_window": round(drifted_run["drift_us_per_cell_window"], 1),
        "events_per_run": drifted_run["events"],
    }
    return out


def irish(path: Path) -> dict[str, Any]:
    """The real Irish 5G traces (sorted by time, one partition, no ground truth): how often the
    detectors fire on real mobile measurements."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from network_accuracy import load_events

    events, _ = load_events(path, None)
    events.sort(key=lambda e: e.occurred_at)
    configs = [c for c in DEFAULT_CONFIGS if c.online and c.architecture == "river_linear"]
    processor = NetworkProcessor(configs=configs)
    observe, points = processor.drift.observe, [0]

    def counted(*a: Any) -> Any:
        points[0] += 1
        return observe(*a)

    processor.drift.observe = counted
    detections: list[Any] = []
    requests: list[Any] = []
    for i in range(0, len(events), 500):
        out = processor.process(events[i : i + 500])
        detections.extend(out.drift_events)
        requests.extend(out.retrain_requests)
    cells = [d for d in detections if not d.scope.startswith("*|")]
    by: dict[str, int] = {}
    for d in detections:
        key = f"{d.scope.split('|')[1]}/{d.detector}"
        by[key] = by.get(key, 0) + 1
    return {
        "events": len(events),
        "span": [events[0].occurred_at.isoformat(), events[-1].occurred_at.isoformat()],
        "cell_field_points": points[0],
        "cell_detections": len(cells),
        "cell_detections_per_1000_points": 1000 * len(cells) / max(1, points[0]),
        "by_field_detector": dict(sorted(by.items())),
        "field_detections": len(detections) - len(cells),
        "retrain_requests": [(r.scope, r.occurred_at.isoformat()) for r in requests],
    }


# --- demand -------------------------------------------------------------------------------------
DEMAND_START, DEMAND_MONTHS, DEMAND_DRIFT_MONTH, DEMAND_SEGMENTS = date(2019, 1, 1), 60, 36, 8
FAMILIES = ("changes", "sales_changes", "error_changes", "input_shift", "adwin", "any")


def families(detector: str) -> tuple[str, ...]:
    """The families a drift event's detector counts in (besides ``any``)."""
    if detector.startswith("sales_"):
        return ("changes", "sales_changes")
    if detector.startswith("error_"):
        return ("changes", "error_changes")
    return (detector,)


def demand_run(seed: int, drift: bool, factor: float) -> tuple[list[str], ProcessorOutput]:
    """One simulated demand history through the processor: drifted segments, output."""
    drift_at = add_months(DEMAND_START, DEMAND_DRIFT_MONTH).date() if drift else None
    source = simulate_demand(
        seed=seed, start=DEMAND_START, months=DEMAND_MONTHS, segments=DEMAND_SEGMENTS,
        trend=0.0, base_rate=60.0, drift_at=drift_at, drift_factor=factor,
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


def demand_figures(seeds: int, factor: float) -> dict[str, Any]:
    """The demand section (see module doc)."""
    drift_day = add_months(DEMAND_START, DEMAND_DRIFT_MONTH).date()
    delays: dict[str, list[int]] = defaultdict(list)
    missed: dict[str, int] = defaultdict(int)
    alarms: dict[str, int] = defaultdict(int)
    drifted_total = points = 0
    for seed in range(1, seeds + 1):
        drifted, out = demand_run(seed, True, factor)
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
        _, quiet = demand_run(seed, False, factor)
        # closed segment-months (the last month stays open)
        points += DEMAND_SEGMENTS * (DEMAND_MONTHS - 1)
        for event in quiet.drift_events:
            for name in (*families(event.detector), "any"):
                alarms[name] += 1
        print(f"seed {seed}: done", file=sys.stderr)
    report = {
        "setup": {
            "simulator": "simulate_demand",
            "segments": DEMAND_SEGMENTS,
            "months": DEMAND_MONTHS,
            "drift_month": DEMAND_DRIFT_MONTH,
            "drift_factor": factor,
            "seeds": seeds,
            "drifted_segments": drifted_total,
            "stationary_segment_months": points,
        },
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
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=16)
    parser.add_argument("--minutes", type=int, default=180)
    parser.add_argument("--drift-minute", type=int, default=90)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--architecture", default="river_linear")
    parser.add_argument(
        "--irish",
        type=Path,
        default=Path(__file__).resolve().parents[2]
        / "shared/data/cellular/irish_5g_raca2020/irish_5g_all_traces.csv.gz",
        help="the Irish 5G traces (skipped when absent)",
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--domain", choices=("all", "network", "demand"), default="all")
    parser.add_argument("--demand-seeds", type=int, default=6)
    parser.add_argument("--demand-factor", type=float, default=2.0)
    args = parser.parse_args()
    if args.domain in ("all", "demand"):
        report = demand_figures(args.demand_seeds, args.demand_factor)
        print(json.dumps(report, indent=2))
        if not args.no_write:
            stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
            stored["demand"] = report
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(stored, indent=2, default=str) + "\n")
    if args.domain == "demand":
        return
    result = {
        "command": "python benchmarks/drift_delay.py " + " ".join(sys.argv[1:]),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "params": {k: str(v) for k, v in vars(args).items() if k != "no_write"},
        "detectors": NetworkDrift().params(),
        **figures(args),
        "irish_5g": irish(args.irish) if args.irish.exists() else None,
    }
    print(json.dumps(result, indent=2, default=str))
    if args.no_write:
        return
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    stored["network"] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(stored, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
