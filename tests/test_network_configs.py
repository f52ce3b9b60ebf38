"""Network model configs: validation with clear errors, defaults, models per field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ml.network.configs import (
    DEFAULT_CONFIGS,
    FIELDS,
    Architecture,
    ConfigError,
    ModelConfig,
    configs_for_field,
    parse_config,
)

VALID = {
    "id": "dl-linear",
    "architecture": "river_linear",
    "input_fields": ["dl_bitrate", "rsrp"],
    "output_fields": ["dl_bitrate"],
    "window_duration_seconds": 60,
    "lookback_steps": 3,
    "forecast_steps": 2,
    "hidden_size": 16,
}


def test_a_valid_config_parses_into_an_immutable_model() -> None:
    config = parse_config(VALID)
    assert config.architecture is Architecture.RIVER_LINEAR
    assert config.input_fields == ("dl_bitrate", "rsrp")
    assert config.online
    with pytest.raises(ValidationError):
        config.lookback_steps = 9  # type: ignore[misc]
    assert parse_config(config) is config


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"architecture": "cnn"}, "unknown architecture 'cnn'; known: river_linear"),
        ({"input_fields": ["rsrp", "bogus"]}, "input_fields: unknown field(s) ['bogus']"),
        ({"output_fields": ["throughput"]}, "output_fields: unknown field(s) ['throughput']"),
        ({"output_fields": []}, "output_fields: "),
        ({"input_fields": ["rsrp", "rsrp"]}, "duplicated field(s) ['rsrp']"),
        ({"lookback_steps": 0}, "lookback_steps: Input should be greater than or equal to 1"),
        ({"forecast_steps": 0}, "forecast_steps: Input should be greater than or equal to 1"),
        ({"window_duration_seconds": 0}, "window_duration_seconds: Input should be greater"),
        ({"hidden_size": 0}, "hidden_size: "),
        ({"id": "bad id!"}, "id: String should match pattern"),
        ({"id": "x" * 57}, "id: String should match pattern"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_invalid_configs_name_the_problem(change: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**VALID, **change})
    assert expected in str(info.value)
    assert str(info.value).startswith("invalid model config: ")


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**VALID, "architecture": "cnn", "lookback_steps": 0})
    assert "architecture" in str(info.value) and "lookback_steps" in str(info.value)


def test_known_fields_are_the_event_measurements() -> None:
    assert {"rsrp", "rsrq", "snr", "cqi", "rssi", "dl_bitrate", "ul_bitrate"} <= set(FIELDS)
    assert "cell_id" not in FIELDS and "latitude" not in FIELDS


def test_defaults_are_linear_forest_and_lightgbm_for_dl_bitrate_and_rsrp() -> None:
    ids = [c.id for c in DEFAULT_CONFIGS]
    assert len(ids) == len(set(ids)) == 6
    for field in ("dl_bitrate", "rsrp"):
        models = configs_for_field(DEFAULT_CONFIGS, field)
        assert {c.architecture for c in models} == {
            Architecture.RIVER_LINEAR,
            Architecture.RIVER_FOREST,
            Architecture.LIGHTGBM,
        }
        assert all(field in c.input_fields for c in models)
    assert configs_for_field(DEFAULT_CONFIGS, "snr") == []


def test_model_key_is_per_output_field() -> None:
    config = ModelConfig(**{**VALID, "output_fields": ["dl_bitrate", "ul_bitrate"]})
    assert config.model_key("ul_bitrate") == ("ul_bitrate", "dl-linear")
    with pytest.raises(KeyError):
        config.model_key("rsrp")


def test_batch_architectures_are_not_online() -> None:
    for arch in ("lightgbm", "ann", "lstm"):
        assert not parse_config({**VALID, "architecture": arch}).online
    for arch in ("river_linear", "river_forest", "river_tree"):
        assert parse_config({**VALID, "architecture": arch}).online
