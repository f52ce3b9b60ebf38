"""A test-only domain, registered in the processes by the setting
``EXTRA_DOMAINS=tests.toy_domain:ToyDomain`` (no change to ``streams/`` nor ``millrace/``):
readings of a sensor, one observation per sensor per day, a batch trainer whose baseline
predicts zero and whose other candidate the mean."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from ml.aggregates import FieldStats
from ml.domains import Domain
from ml.observations import ObservationDelta
from ml.training.base import DomainTrainer, TrainingSet
from ml.training.errors import TrainingDataError
from schemas.events import BaseEvent

__all__ = ["MeanModel", "ToyDomain", "ToyReading", "ToyTrainer", "ZeroModel"]


class ToyReading(BaseEvent):
    """One reading of one sensor."""

    SCHEMA_NAME: ClassVar[str] = "toy_reading"

    sensor: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9-]+$")]
    value: Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False, strict=True)]


def day_start(when: datetime) -> datetime:
    when = when.astimezone(UTC)
    return datetime(when.year, when.month, when.day, tzinfo=UTC)


class ZeroModel:
    """The baseline: always zero."""

    algorithm = "toy-zero"
    features: list[str] = []

    def fit(self, train: pd.DataFrame) -> ZeroModel:
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(rows))


class MeanModel:
    """The training mean."""

    algorithm = "toy-mean"
    features: list[str] = []

    def __init__(self) -> None:
        self.mean = 0.0

    def fit(self, train: pd.DataFrame) -> MeanModel:
        self.mean = float(train["value"].mean())
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return np.full(len(rows), self.mean)


class ToyTrainer(DomainTrainer):
    metric = "mae"

    def training_set(
        self,
        store: Any,
        start: date | None,
        end: date | None,
        min_periods: int,
        test_periods: int | None = None,
    ) -> TrainingSet:
        rows = store.series.observations(ToyDomain.name)
        frame = pd.DataFrame(
            [
                {
                    "sensor": r.series_key,
                    "day": r.period_start.date(),
                    "value": r.fields["value"].mean,
                }
                for r in rows
                if "value" in r.fields
            ]
        )
        days = sorted(set(frame["day"])) if len(frame) else []
        if len(days) < 2:
            raise TrainingDataError(f"{len(days)} days of toy readings; need 2")
        n_test = test_periods or max(1, len(days) // 5)
        train_days, test_days = days[:-n_test], days[-n_test:]
        return TrainingSet(
            train=frame[frame["day"].isin(train_days)].reset_index(drop=True),
            test=frame[frame["day"].isin(test_days)].reset_index(drop=True),
            target="value",
            scale=None,
            train_periods=train_days,
            test_periods=test_days,
            segments=int(frame["sensor"].nunique()),
        )

    def candidates(self) -> list:
        return [ZeroModel(), MeanModel()]


class ToyDomain(Domain):
    name: ClassVar[str] = "toy"
    topic_setting: ClassVar[str] = ""
    event_model: ClassVar[type[BaseEvent]] = ToyReading

    def topic(self, settings: object) -> str:
        """Next to the dead-letter topic (tests use unique topic names per test)."""
        return str(settings.topic_dead_letter) + ".toy"  # type: ignore[attr-defined]

    def key(self, event: BaseEvent) -> str:
        assert isinstance(event, ToyReading)
        return event.sensor

    def observe(self, event: BaseEvent) -> list[ObservationDelta]:
        assert isinstance(event, ToyReading)
        fields = {"value": FieldStats.of(event.value)}
        return [ObservationDelta(self.name, event.sensor, day_start(event.occurred_at), 1, fields)]

    def trainer(self, scope: str = "global", store: object | None = None) -> DomainTrainer:
        return ToyTrainer()
