"""Batch forecast scores: MAE, RMSE, MAPE, R², WAPE and MASE.

- MAPE is a 0-1 fraction over the points whose actual is not zero (a zero actual has no
  percentage error); it is ``None`` when every actual is zero.
- WAPE = sum |error| / sum |actual| (defined with zero actuals; ``None`` if all are zero).
- MASE = MAE / in-sample MAE of the seasonal-naive forecast (lag ``season``) on the training
  series; lag 1 when the training series is shorter than a season; ``None`` without one.
- R² is ``None`` with fewer than two points or a constant actual.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["score", "naive_scale"]


def naive_scale(train_series: Iterable[Sequence[float]], season: int = 12) -> float | None:
    """Mean absolute error of the seasonal-naive forecast inside the training series."""
    errors: list[np.ndarray] = []
    for series in train_series:
        y = np.asarray(series, dtype=float)
        lag = season if len(y) > season else 1
        if len(y) > lag:
            errors.append(np.abs(y[lag:] - y[:-lag]))
    if not errors:
        return None
    scale = float(np.mean(np.concatenate(errors)))
    return scale if scale > 0 else None


def score(
    y_true: Sequence[float], y_pred: Sequence[float], *, scale: float | None = None
) -> dict[str, float | None]:
    """Scores of ``y_pred`` against ``y_true``; ``scale`` (see :func:`naive_scale`) gives MASE."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    if y.shape != p.shape or y.size == 0:
        raise ValueError("y_true and y_pred must be non-empty and of the same length")
    err = p - y
    mae = float(np.mean(np.abs(err)))
    nonzero = y != 0
    mape = float(np.mean(np.abs(err[nonzero] / y[nonzero]))) if nonzero.any() else None
    total = float(np.sum(np.abs(y)))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(err**2)) / ss_tot if y.size > 1 and ss_tot > 0 else None
    return {
        "mae": mae,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": mape,
        "r2": r2,
        "wape": float(np.sum(np.abs(err))) / total if total > 0 else None,
        "mase": mae / scale if scale else None,
    }
