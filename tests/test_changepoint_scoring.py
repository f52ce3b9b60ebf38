"""The TCPDBench scores (ml.drift.scoring): hand-worked examples and the published "zero" figures.

The zero method (no detection at all) has the same score under any detector code, so the
published per-series zero F1 and cover of TCPDBench (``benchmarks/tcpdbench_published.json``)
pin the scorer's definitions (margin, start index, union precision, averaged recall, cover).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.drift.scoring import covering, f_measure, segments, true_positives

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "changepoint" / "tcpd"
PUBLISHED = ROOT / "benchmarks" / "tcpdbench_published.json"


def test_true_positives_match_one_to_one() -> None:
    # 23 has no free prediction left within 5 once 20 took 20; 1 and 10 take 3 and 8.
    assert true_positives({1, 10, 20, 23}, {3, 8, 20}) == {1, 10, 20}
    # one prediction cannot serve two annotated points
    assert true_positives({10, 12}, {11}) == {10}
    assert true_positives({10}, {16}) == set()  # outside the margin
    assert true_positives({10}, {15}) == {10}  # the margin is inclusive
    assert true_positives(set(), {1, 2}) == set()


def test_f1_hand_worked() -> None:
    # Annotators {10} and {}: with the start index, sets {0,10} and {0}; union {0,10}.
    # Predicting [10]: P = 2/2, R = (2/2 + 1/1)/2 = 1 -> F1 = 1.
    assert f_measure({"a": [10], "b": []}, [10])[0] == pytest.approx(1.0)
    # Predicting nothing: X = {0}; P = 1/1; R = (1/2 + 1/1)/2 = 3/4; F1 = 2*.75/1.75 = 6/7.
    f1, p, r = f_measure({"a": [10], "b": []}, [])
    assert (p, r) == (1.0, 0.75)
    assert f1 == pytest.approx(6 / 7)
    # Three annotators, one false alarm at 50: X = {0,10}; union {0,10,50}: TP {0,10} -> P = 1;
    # R = (1/1 + 2/2 + 1/2)/3 = 5/6; F1 = 2*(5/6)/(11/6) = 10/11.
    assert f_measure({"a": [], "b": [10], "c": [50]}, [10])[0] == pytest.approx(10 / 11)
    # A false alarm costs precision: X = {0, 30}, TP {0} -> P = 1/2, R = 1 -> F1 = 2/3.
    assert f_measure({"a": []}, [30])[0] == pytest.approx(2 / 3)


def test_segments_and_cover_hand_worked() -> None:
    assert segments([3, 5], 8) == [(0, 3), (3, 5), (5, 8)]
    assert segments([0, 4, 99], 6) == [(0, 4), (4, 6)]
    # Truth {0..9}; predicted [0,5) [5,10): each truth point's best overlap is 5/10 -> 0.5.
    assert covering({"a": []}, [5], 10) == pytest.approx(0.5)
    # Truth [0,5) [5,10), no prediction: each truth segment overlaps {0..9} by 5/10 -> 0.5.
    assert covering({"a": [5]}, [], 10) == pytest.approx(0.5)
    assert covering({"a": [5], "b": [5]}, [5], 10) == 1.0
    # Truth [0,6) [6,10); predicted [0,5) [5,10): 6*(5/6) + 4*(4/5), over 10 = 0.82.
    assert covering({"a": [6]}, [5], 10) == pytest.approx((6 * 5 / 6 + 4 * 4 / 5) / 10)


@pytest.mark.skipif(not DATA.is_dir(), reason="TCPD data not present")
def test_zero_method_reproduces_published_figures() -> None:
    published = json.loads(PUBLISHED.read_text())
    annotations = json.loads((DATA / "annotations.json").read_text())
    f1s, covers = [], []
    for name, want_f1 in published["f1"]["zero"].items():
        n_obs = json.loads((DATA / "datasets" / name / f"{name}.json").read_text())["n_obs"]
        f1 = f_measure(annotations[name], [])[0]
        cover = covering(annotations[name], [], n_obs)
        assert f1 == pytest.approx(want_f1, abs=1e-12), name
        assert cover == pytest.approx(published["cover"]["zero"][name], abs=1e-12), name
        f1s.append(f1)
        covers.append(cover)
    assert len(f1s) == 31
    # 0.669 is the paper's zero average over its 37 univariate series; these are the 31 here.
    assert sum(f1s) / len(f1s) == pytest.approx(0.6630, abs=5e-4)
