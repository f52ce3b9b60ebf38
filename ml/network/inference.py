"""One forecast of a cell's field from a trained (batch) network model and the cell's stored
windows: the features at the cell's latest window, the target ``forecast_steps`` later.

Online models need none of this: the stream stores their forecasts as windows close.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from ml.network.configs import ModelConfig
from ml.network.features import CellSeries, feature_names, features_at
from ml.network.training import META, windows_from_observations
from ml.periods import index_start

__all__ = ["CellForecast", "NoCellData", "forecast_cell"]


class NoCellData(LookupError):
    """The cell has no stored window with the field (or none at all)."""


@dataclass(frozen=True, slots=True)
class CellForecast:
    cell_id: str
    field: str
    period_start: datetime
    value: float
    last_value: float
    based_on: datetime


def forecast_cell(
    model: Any,
    config: ModelConfig,
    field: str,
    cell_id: str,
    observations: list[Any],
    base_window_seconds: int,
) -> CellForecast:
    """``model`` (a fitted ``NetworkCandidate``) forecasts ``field`` of ``cell_id`` from the
    cell's observation rows (``series_key``, ``period_start``, ``fields``)."""
    d = config.window_duration_seconds
    windows = windows_from_observations(observations, d, base_window_seconds)
    series = CellSeries()
    for _, index, means in sorted((w for w in windows if w[0] == cell_id), key=lambda w: w[1]):
        series.add(index, means)
    anchor = series.latest
    if anchor is None:
        raise NoCellData(f"no stored windows for cell {cell_id!r}")
    feats = features_at(series, config, field, anchor)
    if feats is None:
        raise NoCellData(f"cell {cell_id!r} never measured {field}")
    target = anchor + config.forecast_steps
    row = {
        "cell_id": cell_id,
        "anchor": anchor,
        "target": target,
        "period": index_start(target, d),
        "anchor_exists": True,
        "last": feats.last,
        **feats.x,
        field: np.nan,
    }
    frame = pd.DataFrame([row], columns=[*META, *feature_names(config, field), field])
    value = float(np.asarray(model.predict(frame), dtype=float)[0])
    return CellForecast(
        cell_id, field, index_start(target, d), value, feats.last, index_start(anchor, d)
    )
