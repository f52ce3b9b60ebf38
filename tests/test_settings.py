"""Settings: defaults, environment overrides, and errors that name the variable."""

import pytest

from millrace.settings import SettingsError, load_settings


def test_defaults_use_embedded_broker_and_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = load_settings(_env_file=None)
    assert settings.embedded
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.database_url.startswith("sqlite:///var/")
    assert settings.topics()["topic_dead_letter"] == "ml.dead-letter"


def test_external_kafka_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    settings = load_settings(_env_file=None)
    assert not settings.embedded
    assert settings.bootstrap_servers == "k1:9092,k2:9092"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("API_PORT", "not-a-port"),
        ("TOPIC_PARTITIONS", "0"),
        ("KAFKA_BOOTSTRAP_SERVERS", "no-port-here"),
        ("DATABASE_URL", "mysql://x"),
        ("DEGRADATION_FACTOR", "1.0"),
    ],
)
def test_invalid_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=var):
        load_settings(_env_file=None)


def test_duplicate_topic_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPIC_DEAD_LETTER", "sales.transactions")
    with pytest.raises(SettingsError, match="distinct topics"):
        load_settings(_env_file=None)


def test_env_example_lists_every_setting() -> None:
    from pathlib import Path

    from millrace.settings import Settings

    text = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    listed = {
        line.split("=", 1)[0]
        for line in text.splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert listed == {name.upper() for name in Settings.model_fields}
