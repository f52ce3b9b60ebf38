"""Network model configs: what a model forecasts, from what, on which windows, with what.

A :class:`ModelConfig` names an ``architecture``, its ``input_fields`` and ``output_fields``
(measurement names of :class:`~schemas.events.NetworkMeasurementEvent`), the window of the
per-cell aggregates (``window_duration_seconds``), how many past windows it sees
(``lookback_steps``) and how many windows ahead it forecasts (``forecast_steps``).
``hidden_size`` is only read by the neural architectures.

Architectures: ``river_linear``, ``river_forest`` and ``river_tree`` learn online in the stream
(predict, then learn); ``lightgbm``, ``ann`` and ``lstm`` are batch models rebuilt by the
trainer (``ann`` / ``lstm`` need PyTorch, an optional extra).

A config with several output fields is one model per output field; every model is identified
within its field by the config ``id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.events import NetworkMeasurementEvent

__all__ = [
    "BATCH_ARCHITECTURES",
    "DEFAULT_CONFIGS",
    "FIELDS",
    "ONLINE_ARCHITECTURES",
    "Architecture",
    "ConfigError",
    "ModelConfig",
    "configs_for_field",
    "parse_config",
]

#: Measurement fields a config may use, in the event's order.
FIELDS: tuple[str, ...] = NetworkMeasurementEvent.FIELDS


class Architecture(StrEnum):
    RIVER_LINEAR = "river_linear"
    RIVER_FOREST = "river_forest"
    RIVER_TREE = "river_tree"
    LIGHTGBM = "lightgbm"
    ANN = "ann"
    LSTM = "lstm"


#: Learn in the stream with predict-then-learn.
ONLINE_ARCHITECTURES = frozenset(
    {Architecture.RIVER_LINEAR, Architecture.RIVER_FOREST, Architecture.RIVER_TREE}
)
#: Rebuilt by the batch trainer.
BATCH_ARCHITECTURES = frozenset({Architecture.LIGHTGBM, Architecture.ANN, Architecture.LSTM})


class ConfigError(ValueError):
    """A config that cannot be used; the message names every problem."""


class ModelConfig(BaseModel):
    """One model definition of the network domain (immutable)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,55}$")
    architecture: Architecture
    input_fields: tuple[str, ...] = Field(..., min_length=1)
    output_fields: tuple[str, ...] = Field(..., min_length=1)
    window_duration_seconds: int = Field(60, ge=1, le=86_400)
    lookback_steps: int = Field(5, ge=1, le=1_000)
    forecast_steps: int = Field(1, ge=1, le=1_000)
    hidden_size: int = Field(32, ge=1, le=4_096)

    @field_validator("architecture", mode="before")
    @classmethod
    def _known_architecture(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in {a.value for a in Architecture}:
            known = ", ".join(a.value for a in Architecture)
            raise ValueError(f"unknown architecture {value!r}; known: {known}")
        return value

    @field_validator("input_fields", "output_fields")
    @classmethod
    def _known_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = []
        unknown = [f for f in value if f not in FIELDS]
        if unknown:
            problems.append(f"unknown field(s) {unknown}; known: {', '.join(FIELDS)}")
        duplicated = sorted({f for f in value if value.count(f) > 1})
        if duplicated:
            problems.append(f"duplicated field(s) {duplicated}")
        if problems:  # both at once
            raise ValueError("; ".join(problems))
        return value

    @property
    def online(self) -> bool:
        """Learns in the stream (a River architecture)."""
        return self.architecture in ONLINE_ARCHITECTURES

    def model_key(self, field: str) -> tuple[str, str]:
        """``(output field, config id)``: the model of this config for ``field``."""
        if field not in self.output_fields:
            raise KeyError(f"config {self.id!r} does not forecast {field!r}")
        return (field, self.id)


def parse_config(data: Mapping[str, Any] | ModelConfig) -> ModelConfig:
    """Validate a config (e.g. from a ``create_config`` command); :class:`ConfigError` names
    every problem on one line (``field: message; ...``)."""
    if isinstance(data, ModelConfig):
        return data
    try:
        return ModelConfig.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid model config: {problems}") from None


def configs_for_field(configs: Iterable[ModelConfig], field: str) -> list[ModelConfig]:
    """The configs forecasting ``field`` (its models), in the given order."""
    return [c for c in configs if field in c.output_fields]


def _defaults() -> tuple[ModelConfig, ...]:
    inputs = {
        "dl_bitrate": ("dl_bitrate", "ul_bitrate", "rsrp", "rsrq", "snr", "cqi"),
        "rsrp": ("rsrp", "rsrq", "snr", "cqi", "rssi"),
    }
    return tuple(
        ModelConfig(
            id=f"{output}-{arch.value}",
            architecture=arch,
            input_fields=fields,
            output_fields=(output,),
            window_duration_seconds=60,
            lookback_steps=5,
            forecast_steps=1,
        )
        for output, fields in inputs.items()
        for arch in (Architecture.RIVER_LINEAR, Architecture.RIVER_FOREST, Architecture.LIGHTGBM)
    )


#: Shipped configs: online linear, online forest and batch LightGBM for dl_bitrate and rsrp,
#: one-minute windows, five windows of lookback, one window ahead.
DEFAULT_CONFIGS: tuple[ModelConfig, ...] = _defaults()
