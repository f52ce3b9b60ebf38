"""What a domain provides to the batch trainer: a training set and candidate models."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ml.training.errors import TrainingDataError

__all__ = ["TrainingSet", "Candidate", "DomainTrainer", "check_date_range"]


class Candidate(Protocol):
    """A model the trainer can fit, score and store as an artifact (must pickle)."""

    algorithm: str
    features: list[str]

    def fit(self, train: pd.DataFrame) -> Any: ...

    def predict(self, rows: pd.DataFrame) -> np.ndarray: ...


@dataclass
class TrainingSet:
    """A time-ordered split: ``train`` before the test window, ``test`` rows inside it."""

    train: pd.DataFrame
    test: pd.DataFrame
    target: str
    #: in-sample seasonal-naive MAE of the training part (MASE denominator)
    scale: float | None
    train_periods: list[date]
    test_periods: list[date]
    segments: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def y_test(self) -> np.ndarray:
        return self.test[self.target].to_numpy(float)


class DomainTrainer(ABC):
    """The batch side of a domain."""

    #: metric the promotion gate compares (lower is better)
    metric: str = "mae"
    #: the algorithm of the domain's baseline candidate (named in a job's reason); empty: the
    #: first candidate is the baseline
    baseline: str = ""

    @abstractmethod
    def training_set(
        self,
        store: Any,
        start: date | None,
        end: date | None,
        min_periods: int,
        test_periods: int | None = None,
    ) -> TrainingSet:
        """Build the split from stored observations, or raise TrainingDataError.

        The test window is the last ``test_periods`` periods (default: the last 20%)."""

    @abstractmethod
    def candidates(self) -> list[Candidate]:
        """Fresh, unfitted candidates; the first one is the baseline."""


def check_date_range(start: date | None, end: date | None) -> None:
    """Refuse a training period whose end is not after its start (every domain's trainer)."""
    if start and end and end <= start:
        raise TrainingDataError("end_date must be after start_date")
