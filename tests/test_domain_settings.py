"""The trainer runs every domain as its settings configure it, exactly as the stream does."""

from __future__ import annotations

from millrace.settings import load_settings
from ml.domains import all_domains, configured_domains


def test_configured_domains_follow_the_settings() -> None:
    settings = load_settings(_env_file=None, network_window_seconds=30)
    domains = configured_domains(settings)
    assert list(domains) == [d.name for d in all_domains()]
    assert domains["network"].window_seconds == 30  # type: ignore[attr-defined]
