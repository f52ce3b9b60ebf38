"""FastTEBSTSplitter: River's TEBST splitter without deep copies grows the same trees."""

from __future__ import annotations

import copy
import pickle
import random

from river import stats, tree

from ml.network.online import MedianARFRegressor
from ml.network.splitter import FastTEBSTSplitter, copy_var


def rows(n: int = 1200, seed: int = 3) -> list[tuple[dict[str, float], float]]:
    """A piecewise target over ten features, with a level change half-way."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x = {f"f{j}": rng.gauss(0, 1) for j in range(10)}
        y = (3.0 if x["f0"] > 0.3 else -1.0) + x["f1"] * x["f2"] + rng.gauss(0, 0.3)
        out.append((x, y + (4.0 if i > n // 2 else 0.0)))
    return out


def forest(splitter: object | None) -> MedianARFRegressor:
    return MedianARFRegressor(
        n_models=3, leaf_prediction="mean", grace_period=30, max_depth=6, seed=7,
        splitter=splitter,
    )  # fmt: skip


def test_copy_var_is_an_independent_deep_copy() -> None:
    var = stats.Var()
    for x in (1.0, 4.0, 2.5):
        var.update(x)
    twin, deep = copy_var(var), copy.deepcopy(var)
    assert (twin.mean.n, twin.mean.get(), twin.get()) == (deep.mean.n, deep.mean.get(), deep.get())
    twin.update(100.0)
    assert var.mean.n == 3 and var.get() == deep.get()


def test_forest_and_tree_predictions_are_bit_identical_to_rivers_splitter() -> None:
    data = rows()
    for make in (
        forest,
        lambda s: tree.HoeffdingTreeRegressor(grace_period=30, leaf_prediction="mean", splitter=s),
    ):
        ours, rivers = make(FastTEBSTSplitter()), make(None)
        for x, y in data:
            assert ours.predict_one(x) == rivers.predict_one(x)
            ours.learn_one(x, y)
            rivers.learn_one(x, y)
        assert ours.predict_one(data[0][0]) == rivers.predict_one(data[0][0])
    assert ours.height > 2  # the last one, a single tree, did split (split evaluation ran)


def test_forest_with_the_fast_splitter_pickles_and_continues_identically() -> None:
    data = rows(600)
    live = forest(FastTEBSTSplitter())
    for x, y in data[:300]:
        live.learn_one(x, y)
    back = pickle.loads(pickle.dumps(live))
    for x, y in data[300:]:
        assert back.predict_one(x) == live.predict_one(x)
        live.learn_one(x, y)
        back.learn_one(x, y)


def test_split_suggestions_and_their_statistics_are_rivers_exactly() -> None:
    """The numeric split search (and the inlined insert, the clone) give River's candidate:
    the same merit, split point and branch statistics, bit for bit, as the data grows."""
    from river.tree.split_criterion import VarianceReductionSplitCriterion
    from river.tree.splitter import TEBSTSplitter

    rng = random.Random(17)
    ours, rivers = FastTEBSTSplitter().clone(), TEBSTSplitter()
    assert type(ours) is FastTEBSTSplitter and ours.digits == rivers.digits
    pre, criterion = stats.Var(), VarianceReductionSplitCriterion(min_samples_split=5)
    for i in range(600):
        x = rng.choice([rng.gauss(0, 3), float(rng.randint(-5, 5))])  # ties on rounded values
        y = (2.0 if x > 0.7 else -1.0) + rng.gauss(0, 0.5)
        w = rng.choice([1.0, 1.0, 2.0])
        ours.update(x, y, w)
        rivers.update(x, y, w)
        pre.update(y, w)
        if i % 37 == 0:
            a = ours.best_evaluated_split_suggestion(criterion, pre, "x")
            b = rivers.best_evaluated_split_suggestion(criterion, pre, "x")
            assert (a.merit, a.feature, a.split_info) == (b.merit, b.feature, b.split_info)
            got = [(s.mean.n, s.mean.get(), s._S, s.ddof) for s in a.children_stats or []]
            want = [(s.mean.n, s.mean.get(), s._S, s.ddof) for s in b.children_stats or []]
            assert got == want
    assert a.merit > 0
    ours.update(None, 1.0, 1.0)  # a missing value is skipped, as River's
