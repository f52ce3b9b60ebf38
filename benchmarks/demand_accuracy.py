"""Demand accuracy and interval coverage on Norway by-make, last 12 months (issue 13, items 8-9).

Data: ``norway_new_car_sales_by_make.csv`` loaded as stored observations (65 makes x 121 months,
the same store rows as ``benchmarks/retrain.py``; gaps inside a make's range are months with 0
sales, as the trainer's panel has them). Windows (no month is used twice for a choice):

- *test*: the last 12 months (2016-02 .. 2017-01, 780 make-months), scored one month ahead from
  actual lags, exactly as the trainer scores its test window;
- *validation*: the 12 months before (2015-02 .. 2016-01); hyper-parameters of the new candidate
  are chosen there (models fitted on the months before it), never on the test months.

Accuracy: every candidate's MAE (and RMSE, MAPE, R², MASE) on both windows and its ratio to
seasonal naive's MAE; the grids of ``lightgbm_change`` and ``lightgbm_ratio`` settings and of
``lightgbm_ratio_market``'s market weight (with the market growth's persistence it fitted on each
window's training rows); the ``ensemble`` (its weights chosen on the training part's last 12
months, benchmarked only); what the trainer would promote on the validation year, and the model
it promotes on the test year (best MAE of ``DemandTrainer.candidates()``), against the goal ratio
<= 0.75.

Backtest (not a choice, a check of how steady the market weight's gain is): the same yearly
split at every earlier year whose training part has 12 months of market growth (test years from
2010-02), ``lightgbm_ratio_market`` at each weight of its grid and at 0 (``lightgbm_ratio``),
one fit per year.

Intervals: the promoted algorithm, fitted on the months before the validation window (which is
then its held-out calibration window, as a trained version's test window is). From every origin
month from the last validation month to the month before the last, a forecast book is built on
the data up to that origin and every (make, origin + h) in the test window is checked: inside the
80% / 95% interval or not, and its width. Compared with today's intervals (the normal
approximation on in-sample one-step errors, ``conformal=False``, no cap) of the same model, and
of today's model (``lightgbm``); and the conformal intervals without the cap. Also one job's
wall time on Norway with today's three candidates and with the current ones.

Usage: ``.venv/bin/python benchmarks/demand_accuracy.py``; writes
``benchmarks/results/demand_accuracy.json``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from retrain import norway_store  # noqa: E402

from ml.demand.candidates import (  # noqa: E402
    GlobalGBM,
    GlobalGBMChange,
    GlobalGBMRatio,
    GlobalGBMRatioMarket,
    OnlineReplay,
    SeasonalNaive,
    ValidatedEnsemble,
)
from ml.demand.forecast import INTERVAL_CAP, build_book  # noqa: E402
from ml.demand.training import DemandTrainer, demand_panel  # noqa: E402
from ml.metrics import score  # noqa: E402
from ml.registry.store import Store  # noqa: E402
from ml.training.runner import TrainingRunner  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "demand_accuracy.json"
GOAL_RATIO = 0.75
TEST_MONTHS = 12
LEVELS = (0.8, 0.95)
GRID = [
    {"anchor": anchor, "num_leaves": leaves, "rounds": rounds}
    for anchor in ("last_month", "last_year")
    for leaves in (15, 31)
    for rounds in (150, 300)
]
#: lightgbm_ratio's settings tried (anchor last year, as lightgbm_change's choice)
RATIO_GRID = [
    {"num_leaves": leaves, "rounds": rounds} for leaves in (15, 31) for rounds in (150, 300)
]
#: lightgbm_ratio_market's market weights tried (lightgbm_ratio's default settings; 0 is
#: lightgbm_ratio itself)
MARKET_GRID = [{"market_weight": weight} for weight in (0.25, 0.5, 0.75, 1.0)]
FAR = date(2100, 1, 1)  # every stored month is complete


def grid_name(algorithm: str, params: dict[str, Any]) -> str:
    """A grid point's name in the table, e.g. ``lightgbm_ratio[num_leaves=31,rounds=150]`` (the
    trainer's default is named the same way, so it is compared with the validation choice)."""
    return f"{algorithm}[" + ",".join(f"{k}={v}" for k, v in params.items()) + "]"


def _metrics(y: np.ndarray, p: np.ndarray, scale: float | None) -> dict[str, Any]:
    m = score(y, p, scale=scale)
    return {k: m[k] for k in ("mae", "rmse", "mape", "r2", "mase")}


def accuracy(store: Store) -> tuple[dict, Any]:
    trainer = DemandTrainer()
    test = trainer.training_set(store, None, None, 12, test_periods=TEST_MONTHS)
    val_end = test.test_periods[0] - timedelta(days=1)
    val = trainer.training_set(store, None, val_end, 12, test_periods=TEST_MONTHS)
    windows = {"validation": val, "test": test}
    table: dict[str, dict] = {}

    def run(name: str, make) -> None:
        row = {}
        for label, data in windows.items():
            started = time.perf_counter()
            model = make().fit(data.train)
            metrics = _metrics(data.y_test, model.predict(data.test), data.scale)
            metrics["fit_predict_seconds"] = round(time.perf_counter() - started, 3)
            if getattr(model, "persistence", None) is not None:
                metrics["market_persistence"] = round(model.persistence, 4)
            row[label] = metrics
        table[name] = row

    run("seasonal_naive", SeasonalNaive)
    run("river_online", OnlineReplay)
    run("lightgbm", GlobalGBM)
    for params in GRID:
        name = grid_name("lightgbm_change", params)
        run(name, lambda params=params: GlobalGBMChange(**params))
    for params in RATIO_GRID:
        name = grid_name("lightgbm_ratio", params)
        run(name, lambda params=params: GlobalGBMRatio(**params))
    for params in MARKET_GRID:
        name = grid_name("lightgbm_ratio_market", params)
        run(name, lambda params=params: GlobalGBMRatioMarket(**params))
    run("ensemble", ValidatedEnsemble)
    for label in windows:
        base = table["seasonal_naive"][label]["mae"]
        for row in table.values():
            row[label]["ratio_to_seasonal_naive"] = round(row[label]["mae"] / base, 4)
    grid_names = [n for n in table if n.startswith("lightgbm_change[")]
    chosen = min(grid_names, key=lambda n: table[n]["validation"]["mae"])
    default = GlobalGBMChange()
    default_name = grid_name(
        "lightgbm_change",
        {"anchor": default.anchor, "num_leaves": default.params["num_leaves"],
         "rounds": default.rounds},
    )  # fmt: skip
    ratio_names = [n for n in table if n.startswith("lightgbm_ratio[")]
    ratio_chosen = min(ratio_names, key=lambda n: table[n]["validation"]["mae"])
    ratio_default = GlobalGBMRatio()
    ratio_default_name = grid_name(
        "lightgbm_ratio",
        {"num_leaves": ratio_default.params["num_leaves"], "rounds": ratio_default.rounds},
    )
    market_names = [n for n in table if n.startswith("lightgbm_ratio_market[")]
    market_chosen = min(market_names, key=lambda n: table[n]["validation"]["mae"])
    market_default_name = grid_name(
        "lightgbm_ratio_market", {"market_weight": GlobalGBMRatioMarket().market_weight}
    )
    ensemble = ValidatedEnsemble().fit(test.train)
    # what the trainer would promote on the validation year (its candidates, that window)
    on_validation = {}
    for candidate in trainer.candidates():
        candidate.fit(val.train)
        on_validation[candidate.algorithm] = score(val.y_test, candidate.predict(val.test))["mae"]
    # what the trainer would promote as a first version: the best of its own candidates
    promoted = {}
    for candidate in trainer.candidates():
        candidate.fit(test.train)
        promoted[candidate.algorithm] = score(test.y_test, candidate.predict(test.test))["mae"]
    best = min(promoted, key=promoted.get)
    ratio = promoted[best] / promoted["seasonal_naive"]
    report = {
        "test_months": f"{test.test_periods[0]}..{test.test_periods[-1]}",
        "test_rows": len(test.test),
        "validation_months": f"{val.test_periods[0]}..{val.test_periods[-1]}",
        "validation_rows": len(val.test),
        "candidates": table,
        "chosen_on_validation": chosen,
        "trainer_default": default_name,
        "default_is_the_validation_choice": chosen == default_name,
        "ratio_chosen_on_validation": ratio_chosen,
        "ratio_trainer_default": ratio_default_name,
        "ratio_default_is_the_validation_choice": ratio_chosen == ratio_default_name,
        "market_chosen_on_validation": market_chosen,
        "market_trainer_default": market_default_name,
        "market_default_is_the_validation_choice": market_chosen == market_default_name,
        "ensemble_weights_for_the_test_year": dict(
            zip(
                [m.algorithm for m in ensemble.members],
                ensemble.weights.round(2).tolist(),
                strict=True,
            )
        ),
        "ensemble_holdout_mae_for_the_test_year": ensemble.validation,
        "trainer_candidates_validation_mae": {k: round(v, 3) for k, v in on_validation.items()},
        "trainer_promotes_on_validation": min(on_validation, key=on_validation.get),
        "trainer_candidates_test_mae": {k: round(v, 3) for k, v in promoted.items()},
        "promoted": best,
        "promoted_ratio_to_seasonal_naive": round(ratio, 4),
        "goal_ratio": GOAL_RATIO,
        "goal_met": ratio <= GOAL_RATIO,
    }
    return report, val


def backtest(store: Store) -> dict:
    """Ratio to seasonal naive's MAE of ``lightgbm_ratio_market`` at market weight 0 (that is
    ``lightgbm_ratio``) and at each of :data:`MARKET_GRID`'s, for every earlier 12-month test
    window (models fitted on the months before it), the validation and test years included."""
    trainer = DemandTrainer()
    months = sorted(demand_panel(store)["month"].unique())
    weights = [0.0, *(params["market_weight"] for params in MARKET_GRID)]
    years: dict[str, dict] = {}
    end_index = len(months) - 1
    while True:
        end = pd.Timestamp(months[end_index]) + pd.offsets.MonthEnd(0)
        data = trainer.training_set(store, None, end.date(), 12, test_periods=TEST_MONTHS)
        model = GlobalGBMRatioMarket().fit(data.train)
        if model.persistence is None:
            break
        naive = score(data.y_test, SeasonalNaive().predict(data.test))["mae"]
        row: dict[str, Any] = {"market_persistence": round(model.persistence, 4)}
        for weight in weights:
            model.market_weight = weight
            row[f"market_weight={weight}"] = round(
                score(data.y_test, model.predict(data.test))["mae"] / naive, 4
            )
        years[f"{data.test_periods[0]}..{data.test_periods[-1]}"] = row
        end_index -= TEST_MONTHS
    years = dict(reversed(years.items()))
    earlier = list(years)[:-2]  # the years before the validation year
    mean_change = {
        f"market_weight={w}": round(
            float(
                np.mean(
                    [
                        years[y][f"market_weight={w}"] - years[y]["market_weight=0.0"]
                        for y in earlier
                    ]
                )
            ),
            4,
        )  # fmt: skip
        for w in weights[1:]
    }
    better = {
        f"market_weight={w}": sum(
            years[y][f"market_weight={w}"] < years[y]["market_weight=0.0"] for y in earlier
        )
        for w in weights[1:]
    }
    return {
        "ratio_to_seasonal_naive_by_test_year": years,
        "years_before_validation": len(earlier),
        "mean_change_vs_weight_0_years_before_validation": mean_change,
        "years_better_than_weight_0_before_validation": better,
    }


def _evaluate_books(model: Any, panel: pd.DataFrame, origins: list, conformal: bool,
                    caps: tuple[float | None, ...]) -> list[dict]:  # fmt: skip
    """Coverage and width of every (make, origin + h) in the test window, for each of ``caps``
    (the same books, capped differently)."""
    actual = {
        (k, m): float(v)
        for k, m, v in zip(panel["series_key"], panel["month"], panel["sales"], strict=True)
    }
    last = panel["month"].max()
    rows: list[list[dict]] = [[] for _ in caps]
    build_seconds = []
    for origin in origins:
        started = time.perf_counter()
        built = build_book(model, panel[panel["month"] <= origin], "bench", horizon=TEST_MONTHS,
                           today=FAR, conformal=conformal)  # fmt: skip
        build_seconds.append(time.perf_counter() - started)
        ahead = (last.year - origin.year) * 12 + last.month - origin.month
        for i, cap in enumerate(caps):
            book = dataclasses.replace(built, cap=cap)
            for key in book.segments:
                parts = tuple(key.split("|"))
                for level in LEVELS:
                    prediction = book.predict(parts, ahead, level)
                    for h, point in enumerate(prediction.points, start=1):
                        y = actual.get((key, pd.Timestamp(point.month)))
                        if y is None:
                            continue
                        rows[i].append(
                            {
                                "h": h,
                                "level": level,
                                "inside": point.lower <= y <= point.upper,
                                "width": point.upper - point.lower,
                            }
                        )
    results = []
    for cap, part_rows in zip(caps, rows, strict=True):
        df = pd.DataFrame(part_rows)
        out: dict[str, Any] = {
            "method": built.method,
            "cap": cap,
            "book_build_seconds_mean": round(float(np.mean(build_seconds)), 3),
        }
        for level in LEVELS:
            part = df[df["level"] == level]
            by_h = part.groupby("h").agg(coverage=("inside", "mean"), width=("width", "mean"))
            one = part[part["h"] == 1]
            out[f"{int(level * 100)}"] = {
                "points": len(part),
                "coverage_all_horizons": round(float(part["inside"].mean()), 4),
                "coverage_1_month": round(float(one["inside"].mean()), 4),
                "mean_width_all_horizons": round(float(part["width"].mean()), 2),
                "mean_width_1_month": round(float(one["width"].mean()), 2),
                "by_horizon": {
                    int(h): {
                        "coverage": round(float(r.coverage), 4),
                        "width": round(float(r.width), 1),
                    }  # fmt: skip
                    for h, r in by_h.iterrows()
                },
            }
        results.append(out)
    return results


def intervals(store: Store, val: Any, promoted: str) -> dict:
    panel = demand_panel(store)
    make = {"lightgbm_change": GlobalGBMChange, "lightgbm_ratio": GlobalGBMRatio,
            "lightgbm_ratio_market": GlobalGBMRatioMarket,
            "ensemble": ValidatedEnsemble, "lightgbm": GlobalGBM,
            "river_online": OnlineReplay, "seasonal_naive": SeasonalNaive}  # fmt: skip
    months = sorted(panel["month"].unique())
    test_start = pd.Timestamp(months[-TEST_MONTHS])
    origins = [pd.Timestamp(m) for m in months[-TEST_MONTHS - 1 : -1]]
    model = make[promoted]().fit(val.train)
    today_model = GlobalGBM().fit(val.train)
    conformal, uncapped = _evaluate_books(model, panel, origins, True, (INTERVAL_CAP, None))
    normal, normal_capped = _evaluate_books(model, panel, origins, False, (None, INTERVAL_CAP))
    (today,) = _evaluate_books(today_model, panel, origins, False, (None,))
    ratios = {}
    for level in LEVELS:
        k = f"{int(level * 100)}"
        ratios[k] = {
            "vs_same_model_normal_all_horizons": round(
                conformal[k]["mean_width_all_horizons"] / normal[k]["mean_width_all_horizons"], 4
            ),
            "vs_today_all_horizons": round(
                conformal[k]["mean_width_all_horizons"] / today[k]["mean_width_all_horizons"], 4
            ),
            "vs_today_1_month": round(
                conformal[k]["mean_width_1_month"] / today[k]["mean_width_1_month"], 4
            ),
        }
    # the example: Tesla from the last complete month, today's book vs the new one
    final = model
    tesla = {}
    today_final = GlobalGBM().fit(val.train)
    for label, m, conf, cap in (("new", final, True, INTERVAL_CAP),
                                ("today", today_final, False, None)):  # fmt: skip
        book = build_book(m, panel, "bench", horizon=2, today=FAR, conformal=conf, cap=cap)
        points = {
            f"{int(level * 100)}": [
                [round(p.value), round(p.lower), round(p.upper)]
                for p in book.predict(("CAR", "TESLA", "ALL", ""), 2, level).points
            ]
            for level in LEVELS
        }
        tesla[label] = {"method": book.method, "months_ahead_1_2": points}
    tesla["largest_month"] = int(panel[panel["series_key"] == "CAR|TESLA|ALL|"]["sales"].max())
    return {
        "model": promoted,
        "fitted_through": str(model.trained_through.date()),
        "calibration_months": f"{val.test_periods[0]}..{val.test_periods[-1]} (+ test months "
        "before each origin)",
        "origins": f"{origins[0].date()}..{origins[-1].date()}",
        "test_start": str(test_start.date()),
        "conformal": conformal,
        "conformal_uncapped": uncapped,
        "same_model_today_method": normal,
        "same_model_today_method_capped": normal_capped,
        "today_model_today_method": today,
        "width_ratio": ratios,
        "goal": "coverage within +-5 points of 80 / 95",
        "tesla": tesla,
    }


class _TodayTrainer(DemandTrainer):
    def candidates(self) -> list:
        return [SeasonalNaive(), OnlineReplay(), GlobalGBM()]


def training_time(tmp: Path) -> dict:
    out = {}
    for label, trainer in (("today_3_candidates", _TodayTrainer()), ("now", DemandTrainer())):
        store = norway_store(tmp / label)
        runner = TrainingRunner(store, tmp / label / "models")
        runner.domains = {"demand": _Domain(trainer)}
        started = time.perf_counter()
        outcome = runner.run(store.jobs.create_job("demand", "global", "manual"))
        out[label] = {
            "wall_seconds": round(time.perf_counter() - started, 3),
            "status": outcome.status,
            "reason": outcome.reason,
            "candidate_fit_seconds": {
                c.algorithm: round(c.fit_seconds, 3) for c in outcome.candidates
            },  # fmt: skip
        }
    return out


class _Domain:
    """The registered demand domain with another trainer (timing only)."""

    def __init__(self, trainer: DemandTrainer) -> None:
        from ml.domains import get_domain

        self._domain = get_domain("demand")
        self._trainer = trainer
        self.schema_major = self._domain.schema_major

    def trainer(self, scope: str, store: Store) -> DemandTrainer:
        return self._trainer


def main() -> dict:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "main").mkdir()
        store = norway_store(tmp / "main")
        acc, val = accuracy(store)
        print(json.dumps(acc, indent=2), flush=True)
        acc["backtest_market_weight"] = backtest(store)
        print(json.dumps(acc["backtest_market_weight"], indent=2), flush=True)
        inter = intervals(store, val, acc["promoted"])
        (tmp / "today_3_candidates").mkdir()
        (tmp / "now").mkdir()
        timing = training_time(tmp)
    report = {
        "benchmark": "demand_accuracy",
        "data": "norway_new_car_sales_by_make.csv (65 makes x 121 months, gaps as 0)",
        "accuracy": acc,
        "intervals": inter,
        "training_job_norway": timing,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("intervals", "training_job_norway")}, indent=2))
    return report


if __name__ == "__main__":
    main()
