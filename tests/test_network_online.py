"""Online network models: persistence start, predict-then-learn, honest scores, replay parity."""

from __future__ import annotations

import pickle
import random

import pytest

from ml.network import online
from ml.network.configs import ModelConfig
from ml.network.features import Features, supervised_rows
from ml.network.online import WARMUP_ROWS, OnlineForecaster, OnlineModel, make_regressor, replay


def config(arch: str = "river_linear", **kw) -> ModelConfig:
    base = dict(
        id=f"dl-{arch}",
        architecture=arch,
        input_fields=("dl_bitrate", "rsrp"),
        output_fields=("dl_bitrate",),
        lookback_steps=2,
        forecast_steps=1,
    )
    return ModelConfig(**{**base, **kw})


def windows(cells: int = 3, steps: int = 300, seed: int = 1) -> list[tuple[str, int, dict]]:
    """Cells whose dl_bitrate alternates high / low (persistence is always wrong), with gaps
    and missing values."""
    rng = random.Random(seed)
    out = []
    for c in range(cells):
        for t in range(steps):
            if rng.random() < 0.1:
                continue  # no window
            dl = (20_000.0 if t % 2 else 5_000.0) + rng.gauss(0, 500)
            out.append(
                (f"cell-{c}", 1000 + t, {
                    "dl_bitrate": None if rng.random() < 0.05 else dl,
                    "rsrp": -90.0 + rng.gauss(0, 2),
                })
            )  # fmt: skip
    return out


def stream(forecaster: OnlineForecaster, data, duration: int = 60):
    scored, forecasts = [], []
    for cell, index, means in sorted(data, key=lambda w: (w[1], w[0])):
        s, f = forecaster.close(cell, duration, index, means)
        scored += s
        forecasts += f
    return scored, forecasts


def test_batch_architectures_have_no_online_learner() -> None:
    with pytest.raises(ValueError, match="not an online architecture"):
        make_regressor("lightgbm")
    with pytest.raises(ValueError, match="is not online"):
        OnlineForecaster([config("lightgbm")])


@pytest.mark.parametrize("arch", ["river_linear", "river_forest", "river_tree"])
def test_a_fresh_model_is_the_persistence_forecast(arch: str) -> None:
    model = OnlineModel(config(arch), "dl_bitrate")
    feats = Features(0, {"a": 1.0}, last=1234.0)
    assert model.predict(feats) == 1234.0


def test_non_negative_fields_are_clipped() -> None:
    model = OnlineModel(config(), "dl_bitrate")
    for _ in range(50):
        model.learn(Features(0, {"a": 1.0}, last=10.0), -1000.0)
    assert model.predict(Features(0, {"a": 1.0}, last=10.0)) == 0.0


@pytest.mark.parametrize("arch", ["river_linear", "river_forest"])
def test_models_learn_what_persistence_cannot(arch: str) -> None:
    forecaster = OnlineForecaster([config(arch)])
    scored, _ = stream(forecaster, windows())
    metrics = forecaster.metrics("dl_bitrate", f"dl-{arch}")
    assert metrics["n"] == len(scored) > 500
    assert metrics["mae"] < 0.5 * metrics["baseline"]["mae"]
    assert metrics["learned"] == metrics["n"]
    assert metrics["cold"] == 3  # the first window with a value of each cell


def test_scores_use_the_forecast_made_when_the_anchor_closed() -> None:
    forecaster = OnlineForecaster([config(forecast_steps=3)])
    scored, forecasts = stream(forecaster, windows(cells=2, steps=120))
    made = {(f.cell_id, f.target): f.value for f in forecasts}
    from_anchor = [p for p in scored if (p.cell_id, p.target) in made]
    assert len(from_anchor) > 100
    assert all(p.predicted == made[(p.cell_id, p.target)] for p in from_anchor)
    # forecasts whose target window never came do not pile up
    assert all(len(v) <= 3 for v in forecaster.pending.values())


def test_forecast_intervals_come_from_the_running_rmse() -> None:
    forecaster = OnlineForecaster([config()])
    _, forecasts = stream(forecaster, windows(cells=1, steps=50))
    assert forecasts[0].lower is None
    last = forecasts[-1]
    assert 0.0 <= last.lower <= last.value <= last.upper


@pytest.mark.parametrize("steps", [1, 2])
def test_replaying_rows_reproduces_the_stream(steps: int) -> None:
    cfg = config(forecast_steps=steps)
    data = windows(cells=3, steps=150, seed=5)
    forecaster = OnlineForecaster([cfg])
    scored, _ = stream(forecaster, data)
    model = OnlineModel(cfg, "dl_bitrate")
    rows = list(supervised_rows(data, cfg, "dl_bitrate"))
    predicted = replay(model, cfg, rows)
    by_target = {(r.cell_id, r.target): p for r, p in zip(rows, predicted, strict=True)}
    assert len(by_target) == len(scored)
    for point in scored:
        assert by_target[(point.cell_id, point.target)] == pytest.approx(point.predicted)
    assert model.metrics.get() == pytest.approx(
        forecaster.models[("dl_bitrate", cfg.id)].metrics.get()
    )
    assert model.baseline.get() == forecaster.models[("dl_bitrate", cfg.id)].baseline.get()


def test_state_pickles_and_continues_identically() -> None:
    data = sorted(windows(cells=2, steps=100), key=lambda w: (w[1], w[0]))
    a = OnlineForecaster([config(), config("river_forest")])
    half = len(data) // 2
    stream(a, data[:half])
    b = pickle.loads(pickle.dumps(a))
    assert stream(a, data[half:]) == stream(b, data[half:])


@pytest.mark.parametrize("arch", ["river_linear", "river_forest"])
def test_checkpoints_journal_rows_and_restore_the_same_regressor(
    arch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pickle of a forest between snapshots carries the journal of rows learnt since the
    last snapshot; restoring replays it, so a restored model continues exactly as the live one.
    A linear model pickles its regressor itself (no snapshot, no journal), same continuation."""
    monkeypatch.setattr(online, "JOURNAL_ROWS", 40)
    data = sorted(windows(cells=2, steps=150), key=lambda w: (w[1], w[0]))
    live = OnlineForecaster([config(arch)])
    model = live.models[("dl_bitrate", f"dl-{arch}")]
    snapshots, checkpoints, outputs = set(), [], []
    for start in range(0, len(data), 17):  # "batches", a checkpoint after each
        outputs.append(stream(live, data[start : start + 17]))
        checkpoints.append(pickle.dumps(live, protocol=pickle.HIGHEST_PROTOCOL))
        snapshots.add(model._snapshot)
        assert len(model._journal) <= 40
    if arch == "river_forest":
        assert len(snapshots) > 3  # re-snapshotted along the way, not once per batch
    else:
        assert snapshots == {None} and model._journal == []
    for at in (1, len(checkpoints) // 2, len(checkpoints) - 4):
        restored = pickle.loads(checkpoints[at - 1])
        twice = pickle.loads(pickle.dumps(pickle.loads(checkpoints[at - 1])))
        expected = [sum((o[i] for o in outputs[at:]), []) for i in (0, 1)]
        rest = data[at * 17 :]
        assert list(stream(restored, rest)) == expected
        assert list(stream(twice, rest)) == expected


def test_young_models_forecast_persistence_and_changes_are_bounded() -> None:
    model = OnlineModel(config(), "dl_bitrate")
    feats = Features(0, {"a": 1.0}, last=100.0)
    for _ in range(WARMUP_ROWS - 1):
        model.learn(feats, 150.0)
    assert model.predict(feats) == 100.0  # still warming up
    model.learn(feats, 150.0)
    assert 100.0 < model.predict(feats) <= 150.0
    # an input far outside anything seen cannot move the forecast beyond the largest change
    wild = Features(0, {"a": 1e9}, last=100.0)
    assert 50.0 <= model.predict(wild) <= 150.0


def test_tree_models_skip_windows_measured_too_rarely() -> None:
    """A forest learns, scores and forecasts only windows whose output field was measured at
    least ``tree_min`` times; the linear model takes every window; without counts (batch use)
    nothing is skipped."""
    data = sorted(windows(cells=2, steps=120), key=lambda w: (w[1], w[0]))
    # every third window of a cell is measured once, the others ten times
    counts = {(cell, index): (1 if index % 3 == 0 else 10) for cell, index, _ in data}
    configs = [config(), config("river_forest")]
    sparse = OnlineForecaster(configs, tree_min_measurements=2)
    scored, forecasts = [], []
    for cell, index, means in data:
        n = {name: counts[(cell, index)] for name in means}
        s, f = sparse.close(cell, 60, index, means, n)
        scored += s
        forecasts += f
    forest = [p for p in scored if p.config_id == "dl-river_forest"]
    linear = [p for p in scored if p.config_id == "dl-river_linear"]
    assert forest and all(p.target % 3 for p in forest)  # never a once-measured window
    assert any(p.target % 3 == 0 for p in linear)
    assert all(f.target % 3 != 1 for f in forecasts if f.config_id == "dl-river_forest")
    model = sparse.models[("dl_bitrate", "dl-river_forest")]
    assert model.metrics.n == len(forest) < len(linear)
    # the linear model is the one it would be without the rule
    every = OnlineForecaster(configs, tree_min_measurements=1)
    s_all, _ = stream(every, data)
    assert [p for p in s_all if p.config_id == "dl-river_linear"] == linear
    # no counts: nothing skipped, as tree_min 1
    plain = OnlineForecaster(configs, tree_min_measurements=2)
    assert stream(plain, data)[0] == s_all
    with pytest.raises(ValueError, match="tree_min_measurements"):
        OnlineForecaster(configs, tree_min_measurements=0)
