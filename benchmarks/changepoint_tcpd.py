"""Online change detection on the Turing Change Point Dataset (TCPD), scored as TCPDBench does.

Data: the univariate series (``n_dim == 1``) of ``../shared/data/changepoint/tcpd`` relative to
the repository (``--data`` overrides), used in place: ``datasets/<name>/<name>.json`` (values in
``series[0].raw``, ``null`` = missing) and ``annotations.json`` (per series, per annotator, the
0-based change-point indices). 31 univariate series are present (the paper's set has 37).

Each series is fed point by point, once, in order, to the detector configuration the stream
uses (:class:`ml.drift.ChangeDetector` with its defaults; no per-series tuning). Its change
points are scored with TCPDBench's definitions (:mod:`ml.drift.scoring`): F1 with a margin of 5
(start index counted on both sides, precision against the union of annotators, recall averaged
over annotators) and the segmentation cover. The "zero" method (no detection) is scored in the
same run as a reference, next to the published default-parameter figures of TCPDBench averaged
over the same series (``benchmarks/tcpdbench_published.json``).

Location reported per detection (``--location``): ``start`` (default) is the start of the
change as estimated when it is detected, from the points seen so far (the split of the
segment test, see :mod:`ml.drift.segment`); ``index`` is the point at which it was detected
(at least ``min_size`` = 8 points later, so mostly outside the margin of 5).

Honesty note: the default parameters of the detectors were chosen on this dataset (one global
configuration, never per series), so these figures are in-sample.

Usage: ``.venv/bin/python benchmarks/changepoint_tcpd.py [--data DIR] [--location start|index]``;
writes ``benchmarks/results/changepoint_tcpd.json`` and prints a table.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.drift import ChangeDetector  # noqa: E402
from ml.drift.scoring import covering, f_measure  # noqa: E402

__all__ = ["Series", "detect", "load_series", "run", "main"]

DATA = ROOT.parent / "shared" / "data" / "changepoint" / "tcpd"
RESULTS = ROOT / "benchmarks" / "results" / "changepoint_tcpd.json"
PUBLISHED = ROOT / "benchmarks" / "tcpdbench_published.json"
MARGIN = 5
PUBLISHED_METHODS = ("binseg", "pelt", "amoc", "bocpd", "zero")


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float | None]
    annotations: dict[str, list[int]]

    @property
    def n_obs(self) -> int:
        return len(self.values)


def load_series(data: Path = DATA) -> tuple[list[Series], list[str]]:
    """The univariate series with their annotations, and the names of those left out."""
    annotations = json.loads((data / "annotations.json").read_text(encoding="utf-8"))
    series, skipped = [], []
    for path in sorted((data / "datasets").glob("*/*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        name = path.parent.name
        if doc["n_dim"] != 1:
            skipped.append(name)
            continue
        raw = doc["series"][0]["raw"]
        values = [None if v is None else float(v) for v in raw]
        series.append(Series(name=name, values=values, annotations=annotations[name]))
    return series, skipped


def detect(values: list[float | None], location: str = "start") -> list[int]:
    """Feed one series to a fresh default :class:`ChangeDetector`; the reported locations."""
    detector = ChangeDetector()
    found = []
    for x in values:
        cp = detector.update(x)
        if cp is not None:
            found.append(cp.start if location == "start" else cp.index)
    return found


def _mean(xs: list[float]) -> float:
    return math.fsum(xs) / len(xs) if xs else float("nan")


def run(data: Path = DATA, location: str = "start") -> dict[str, Any]:
    series, skipped = load_series(data)
    published = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    rows: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for s in series:
        predicted = detect(s.values, location)
        f1, precision, recall = f_measure(s.annotations, predicted, MARGIN)
        zero_f1 = f_measure(s.annotations, [], MARGIN)[0]
        rows[s.name] = {
            "n_obs": s.n_obs,
            "missing": sum(v is None for v in s.values),
            "predicted": predicted,
            "f1": f1,
            "precision": precision,
            "recall": recall,
            "cover": covering(s.annotations, predicted, s.n_obs),
            "zero_f1": zero_f1,
            "zero_cover": covering(s.annotations, [], s.n_obs),
        }
    seconds = time.perf_counter() - started
    names = list(rows)
    ref = {
        method: {
            metric: _mean(
                [v for k, v in published[metric][method].items() if k in rows and v is not None]
            )
            for metric in ("f1", "cover")
        }
        | {"n_series": sum(published["f1"][method].get(k) is not None for k in names)}
        for method in PUBLISHED_METHODS
    }
    return {
        "benchmark": "changepoint_tcpd",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "data": str(data),
        "n_series": len(rows),
        "skipped_not_univariate": skipped,
        "margin": MARGIN,
        "location": location,
        "detector": ChangeDetector().describe(),
        "average": {
            "f1": _mean([r["f1"] for r in rows.values()]),
            "cover": _mean([r["cover"] for r in rows.values()]),
            "zero_f1": _mean([r["zero_f1"] for r in rows.values()]),
            "zero_cover": _mean([r["zero_cover"] for r in rows.values()]),
            "detections_per_series": _mean([len(r["predicted"]) for r in rows.values()]),
        },
        "published_default_same_series": ref,
        "published_note": published["source"],
        "seconds": seconds,
        "series": rows,
    }


def _print(report: dict[str, Any]) -> None:
    console = Console()
    table = Table(title=f"TCPD univariate ({report['n_series']} series), margin {MARGIN}")
    for col in ("series", "n", "detections", "F1", "cover", "zero F1", "zero cover"):
        table.add_column(col, justify="left" if col == "series" else "right")
    for name, r in report["series"].items():
        table.add_row(
            name,
            str(r["n_obs"]),
            str(len(r["predicted"])),
            f"{r['f1']:.3f}",
            f"{r['cover']:.3f}",
            f"{r['zero_f1']:.3f}",
            f"{r['zero_cover']:.3f}",
        )
    avg = report["average"]
    table.add_section()
    table.add_row(
        "average",
        "",
        f"{avg['detections_per_series']:.1f}",
        f"[bold]{avg['f1']:.3f}[/bold]",
        f"[bold]{avg['cover']:.3f}[/bold]",
        f"{avg['zero_f1']:.3f}",
        f"{avg['zero_cover']:.3f}",
    )
    console.print(table)
    ref = Table(title="Published TCPDBench defaults, averaged over the same series")
    for col in ("method", "series", "F1", "cover"):
        ref.add_column(col, justify="left" if col == "method" else "right")
    ref.add_row(
        "millrace (this run)", str(report["n_series"]), f"{avg['f1']:.3f}", f"{avg['cover']:.3f}"
    )
    for method, r in report["published_default_same_series"].items():
        ref.add_row(method, str(r["n_series"]), f"{r['f1']:.3f}", f"{r['cover']:.3f}")
    console.print(ref)


def main(
    data: Path = typer.Option(DATA, help="TCPD directory (annotations.json, datasets/)."),
    location: str = typer.Option("start", help="'start' (estimated) or 'index' (detected at)."),
    output: Path = typer.Option(RESULTS, help="Where to write the JSON report."),
) -> None:
    """Run the default change detector over TCPD and score it (F1, cover)."""
    if location not in ("start", "index"):
        raise typer.BadParameter("location must be 'start' or 'index'")
    report = run(data, location)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _print(report)


if __name__ == "__main__":
    typer.run(main)
