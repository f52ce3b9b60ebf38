"""Change-point scores of TCPDBench (van den Burg & Williams, 2020): F1 with a margin, and cover.

Both compare the change points a detector reported on one series with those of several human
annotators. All locations are 0-based indices of the first point of a new segment.

F1 (section 4.1 of the paper)
    The start index 0 is added to every annotator's set and to the predictions (so a detector
    that reports nothing still has one "prediction", and a series with no annotated change has
    one "true" change). A true positive is an annotated location with a prediction within
    ``margin`` points (``|tau - x| <= margin``), each prediction matched at most once: the
    annotated locations are taken in ascending order and each takes the nearest unmatched
    prediction (the smaller location on a tie). Precision is the number of true positives
    against the union of all annotators' locations divided by the number of predictions; recall
    is averaged over annotators (true positives against that annotator's set over its size).
    ``F1 = 2 P R / (P + R)``.

Cover (segmentation covering, Arbelaez et al. 2011, eq. 8)
    Change points split ``0 .. n-1`` into segments. The cover of an annotator's segmentation
    ``S`` by the predicted one ``S'`` is ``sum over A in S of |A| * max over A' in S' of
    Jaccard(A, A') / n``; the score is the mean over annotators.

Both reproduce the published "zero" (no detection) figures of TCPDBench per series
(``tests/test_changepoint_scoring.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["covering", "f_measure", "segments", "true_positives"]


def true_positives(annotated: Iterable[int], predicted: Iterable[int], margin: int = 5) -> set[int]:
    """Annotated locations matched one-to-one by a prediction within ``margin`` points."""
    free = sorted(set(predicted))
    matched: set[int] = set()
    for tau in sorted(set(annotated)):
        close = [(abs(tau - x), x) for x in free if abs(tau - x) <= margin]
        if not close:
            continue
        free.remove(min(close)[1])
        matched.add(tau)
    return matched


def f_measure(
    annotations: Mapping[str, Iterable[int]],
    predictions: Iterable[int],
    margin: int = 5,
) -> tuple[float, float, float]:
    """``(F1, precision, recall)`` of ``predictions`` against the annotators (see module doc)."""
    if not annotations:
        raise ValueError("need at least one annotator")
    per_annotator = [set(locs) | {0} for locs in annotations.values()]
    union = set().union(*per_annotator)
    predicted = set(predictions) | {0}
    precision = len(true_positives(union, predicted, margin)) / len(predicted)
    recall = sum(
        len(true_positives(locs, predicted, margin)) / len(locs) for locs in per_annotator
    ) / len(per_annotator)
    if precision + recall == 0:
        return 0.0, precision, recall
    return 2 * precision * recall / (precision + recall), precision, recall


def segments(locations: Iterable[int], n_obs: int) -> list[tuple[int, int]]:
    """Half-open ``[start, end)`` segments of ``0 .. n_obs-1`` cut at ``locations``.

    Locations outside ``1 .. n_obs-1`` cut nothing (0 starts the first segment anyway)."""
    cuts = sorted({c for c in locations if 0 < c < n_obs})
    bounds = [0, *cuts, n_obs]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _jaccard(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union


def _cover_single(predicted: list[tuple[int, int]], truth: list[tuple[int, int]], n: int) -> float:
    total = 0.0
    for seg in truth:
        total += (seg[1] - seg[0]) * max(_jaccard(seg, other) for other in predicted)
    return total / n


def covering(
    annotations: Mapping[str, Iterable[int]], predictions: Iterable[int], n_obs: int
) -> float:
    """Segmentation cover of the annotators' segmentations by the predicted one, averaged."""
    if not annotations:
        raise ValueError("need at least one annotator")
    if n_obs < 1:
        raise ValueError("n_obs must be >= 1")
    predicted = segments(predictions, n_obs)
    covers = [
        _cover_single(predicted, segments(locs, n_obs), n_obs) for locs in annotations.values()
    ]
    return sum(covers) / len(covers)
