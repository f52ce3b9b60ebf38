"""The base of every network training candidate (batch, replayed online, optional PyTorch).

Its own module so :mod:`ml.network.training` (which chooses candidates) and
:mod:`ml.network.neural` (the PyTorch ones) both build on it without importing each other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.network.configs import ModelConfig
from ml.network.features import feature_names
from ml.network.online import NON_NEGATIVE_FIELDS

__all__ = ["NetworkCandidate"]


class NetworkCandidate:
    """A model of one ``(config, field)`` the trainer fits on a rows frame (must pickle)."""

    algorithm: str = ""

    def __init__(self, config: ModelConfig, field: str) -> None:
        self.config = config
        self.field = field
        self.features = feature_names(config, field)

    def fit(self, train: pd.DataFrame) -> NetworkCandidate:
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _clip(self, values: np.ndarray) -> np.ndarray:
        return np.clip(values, 0, None) if self.field in NON_NEGATIVE_FIELDS else values
