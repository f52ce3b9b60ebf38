"""Forecast accuracy of the network models on the Irish 5G traces (Raca et al., MMSys 2020).

Data: ``irish_5g_all_traces.csv.gz`` (188,711 rows at ~1 s, 190 cells), read by the project's
importer (``millrace.importers.irish5g``), sorted by event time (the file is ordered by trace,
not by time: replayed in file order, the share of late events is also reported). Windows: 60 s
per cell; models: the shipped configs (5 lags of the config's inputs, one window ahead) for
``dl_bitrate`` and ``rsrp``.

Two measurements, each against the persistence forecast (the cell's last measured value) on the
same points:

1. ``stream``: the partition processor over the whole replay (one partition): every online
   model (river_linear, river_forest) predicts each closed window before learning it; running
   MAE / RMSE / MAPE / R² over all scored windows. Also processing time per event and the
   size / pickling time of the checkpointed state.
2. ``test_window``: the batch trainer's split of the stored windows (time-ordered, the last
   20 % of the target windows as test): persistence, the online learners replayed over the
   training rows then predict-then-learn through the test rows, LightGBM fitted on the training
   rows, and ``ann`` / ``lstm`` when PyTorch is installed.

MAPE skips zero actuals; dl_bitrate has many near-zero windows (idle phones) that make its MAPE
huge, so WAPE (sum |e| / sum |y|) is reported too. Figures are whatever the run measures.

Usage: ``python benchmarks/network_accuracy.py [--limit N] [--no-file-order]``; writes
``benchmarks/results/network_accuracy.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightgbm  # noqa: E402
import river  # noqa: E402

from millrace.importers.base import Record  # noqa: E402
from millrace.importers.irish5g import Irish5GSource  # noqa: E402
from ml.metrics import score  # noqa: E402
from ml.network.configs import DEFAULT_CONFIGS, ModelConfig  # noqa: E402
from ml.network.domain import NetworkDomain  # noqa: E402
from ml.network.processor import NetworkProcessor  # noqa: E402
from ml.network.training import NetworkTrainer, torch_available  # noqa: E402
from ml.observations import combine  # noqa: E402
from schemas.events import NetworkMeasurementEvent  # noqa: E402

__all__ = ["load_events", "stream_accuracy", "test_window_accuracy", "main"]

DATA = Path("/work/shared/data/cellular/irish_5g_raca2020/irish_5g_all_traces.csv.gz")
RESULTS = Path(__file__).resolve().parent / "results" / "network_accuracy.json"
FIELDS = ("dl_bitrate", "rsrp")
METRICS = ("n", "mae", "rmse", "mape", "r2", "wape", "mape_excluded")
BATCH = 500


def load_events(path: Path, limit: int | None) -> tuple[list[NetworkMeasurementEvent], int]:
    """Accepted events in file order, and how many rows the importer rejected."""
    events, rejected = [], 0
    for item in Irish5GSource(path):
        if isinstance(item, Record):
            events.append(item.event)
            if limit and len(events) >= limit:
                break
        else:
            rejected += 1
    return events, rejected


def _pick(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics.get(k) for k in METRICS}


def _improvement(model: dict, baseline: dict) -> dict[str, float | None]:
    """Relative error reduction against persistence (positive: better), R² difference."""
    out: dict[str, float | None] = {}
    for k in ("mae", "rmse", "mape", "wape"):
        m, b = model.get(k), baseline.get(k)
        out[k] = None if m is None or not b else 1 - m / b
    m, b = model.get("r2"), baseline.get("r2")
    out["r2_delta"] = None if m is None or b is None else m - b
    return out


def stream_accuracy(
    events: list[NetworkMeasurementEvent], configs: list[ModelConfig]
) -> dict[str, Any]:
    processor = NetworkProcessor(configs=configs)
    started = time.perf_counter()
    for i in range(0, len(events), BATCH):
        processor.process(events[i : i + BATCH])
    elapsed = time.perf_counter() - started
    pickles = []
    for _ in range(3):
        t = time.perf_counter()
        blob = processor.dumps()
        pickles.append(time.perf_counter() - t)
    models = {}
    for (field, config_id), model in sorted(processor.forecaster.models.items()):
        mine = model.metrics.get()
        base = model.baseline.get()
        mine["wape"] = base["wape"] = None  # running metrics have no WAPE
        models[f"{field}/{config_id}"] = {
            "field": field,
            "architecture": str(processor.forecaster.configs[config_id].architecture),
            "model": _pick(mine),
            "persistence": _pick(base),
            "improvement": _improvement(mine, base),
            "cold_rows": model.cold,
        }
    return {
        "events": len(events),
        "late_events": processor.late_events,
        "seconds": round(elapsed, 2),
        "us_per_event": round(elapsed / max(len(events), 1) * 1e6, 1),
        "checkpoint_bytes": len(blob),
        "checkpoint_pickle_ms": round(min(pickles) * 1000, 1),
        "models": models,
    }


def late_share_in_file_order(events: list[NetworkMeasurementEvent]) -> dict[str, Any]:
    """Late events when the file is replayed as it is (by trace, not by time)."""
    linear = [c for c in DEFAULT_CONFIGS if c.architecture == "river_linear"]
    processor = NetworkProcessor(configs=linear)
    for i in range(0, len(events), BATCH):
        processor.process(events[i : i + BATCH])
    return {
        "late_events": processor.late_events,
        "share": round(processor.late_events / max(len(events), 1), 4),
    }


def test_window_accuracy(events: list[NetworkMeasurementEvent]) -> dict[str, Any]:
    domain = NetworkDomain(60)
    observations = list(combine(d for e in events for d in domain.observe(e)).values())
    out: dict[str, Any] = {"stored_windows": len(observations), "fields": {}}
    for field in FIELDS:
        configs = [c for c in DEFAULT_CONFIGS if field in c.output_fields]
        field_trainer = NetworkTrainer.for_scope(field)
        data = field_trainer.training_set_from(observations)
        plans = [(field_trainer, data, field_trainer.candidates())]
        for config in (c for c in configs if c.online):
            trainer = NetworkTrainer.for_scope(config.id)
            own = trainer.training_set_from(observations)
            if not own.test[["cell_id", "target"]].equals(data.test[["cell_id", "target"]]):
                raise RuntimeError(f"{config.id}: not the same test rows as {field}")
            plans.append((trainer, own, trainer.candidates()[1:]))  # persistence once
        results = {}
        for _, own, candidates in plans:
            for candidate in candidates:
                started = time.perf_counter()
                candidate.fit(own.train)
                predicted = candidate.predict(own.test)
                seconds = time.perf_counter() - started
                results[candidate.algorithm] = {
                    **_pick(score(own.y_test, predicted, scale=own.scale)),
                    "fit_predict_seconds": round(seconds, 2),
                }
        base = results["persistence"]
        for name, metrics in results.items():
            if name != "persistence":
                metrics["improvement"] = _improvement(metrics, base)
        out["fields"][field] = {
            "config": field_trainer.config.model_dump(mode="json"),
            "train_rows": len(data.train),
            "test_rows": len(data.test),
            "test_from": min(data.test_periods).isoformat(),
            "test_to": max(data.test_periods).isoformat(),
            "cells": data.segments,
            "cold_rows": data.info["cold_rows"],
            "candidates": results,
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None, help="first N accepted rows only")
    parser.add_argument("--no-file-order", action="store_true", help="skip the late-share run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    events, rejected = load_events(args.data, args.limit)
    load_seconds = time.perf_counter() - started
    file_order = None if args.no_file_order else late_share_in_file_order(events)
    events.sort(key=lambda e: (e.occurred_at, e.event_id))
    online = [c for c in DEFAULT_CONFIGS if c.online]
    result = {
        "benchmark": "network_accuracy",
        "data": {
            "file": str(args.data),
            "events": len(events),
            "rejected_rows": rejected,
            "cells": len({e.cell_id for e in events}),
            "first": events[0].occurred_at.isoformat(),
            "last": events[-1].occurred_at.isoformat(),
            "load_seconds": round(load_seconds, 1),
            "file_order_replay": file_order,
        },
        "window_seconds": 60,
        "configs": [c.model_dump(mode="json") for c in DEFAULT_CONFIGS],
        "stream": stream_accuracy(events, online),
        "test_window": test_window_accuracy(events),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "river": river.__version__,
            "lightgbm": lightgbm.__version__,
            "torch": _torch_version(),
        },
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    _print(result)
    return result


def _torch_version() -> str | None:
    if not torch_available():
        return None
    import torch

    return str(torch.__version__)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print(result: dict[str, Any]) -> None:
    print(f"events {result['data']['events']}, cells {result['data']['cells']}")
    stream = result["stream"]
    print(f"stream: {stream['us_per_event']} us/event, checkpoint {stream['checkpoint_bytes']} B")
    for key, m in stream["models"].items():
        mine, base = m["model"], m["persistence"]
        print(
            f"  {key:32s} "
            + " ".join(
                f"{k}={_fmt(mine[k])}/{_fmt(base[k])}" for k in ("n", "mae", "rmse", "mape", "r2")
            )
        )
    for field, info in result["test_window"]["fields"].items():
        print(f"test window {field}: {info['test_rows']} rows")
        for name, m in info["candidates"].items():
            print(
                f"  {name:14s} "
                + " ".join(f"{k}={_fmt(m[k])}" for k in ("mae", "rmse", "mape", "wape", "r2"))
            )


if __name__ == "__main__":
    main()
