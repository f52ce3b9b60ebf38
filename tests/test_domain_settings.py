"""The trainer runs every domain as its settings configure it, exactly as the stream does."""

from __future__ import annotations

from pathlib import Path

from millrace.settings import load_settings
from millrace.trainer import TrainerService
from ml.domains import all_domains, configured_domains
from ml.network.configs import DEFAULT_CONFIGS


def test_configured_domains_follow_the_settings() -> None:
    settings = load_settings(_env_file=None, network_window_seconds=30)
    domains = configured_domains(settings)
    assert list(domains) == [d.name for d in all_domains()]
    assert domains["network"].window_seconds == 30  # type: ignore[attr-defined]


def test_the_trainer_runs_the_domains_its_settings_configure(tmp_path: Path) -> None:
    """NETWORK_WINDOW_SECONDS reaches the trainer's jobs and hooks as it reaches the stream."""
    settings = load_settings(
        _env_file=None,
        network_window_seconds=30,
        database_url=f"sqlite:///{tmp_path / 'trainer.db'}",
        kafka_bootstrap_servers="127.0.0.1:9",  # never reached: nothing is polled
        model_dir=str(tmp_path / "models"),
    )
    service = TrainerService(settings)
    try:
        assert service.domain_set["network"].window_seconds == 30  # type: ignore[attr-defined]
        assert service.runner.domains is service.domain_set
        assert service.domains.domains == list(service.domain_set.values())
        trainer = service.runner.domains["network"].trainer(DEFAULT_CONFIGS[0].id, service.store)
        assert trainer.base_window_seconds == 30  # type: ignore[union-attr]
    finally:
        service.consumer.close()
