"""Domains: each bundles an event contract, how events become observations, and (later issues)
its online model, drift statistics and batch candidates. Register a domain to add one; the
stream, trainer and API code iterate over the registry and never name a domain.
"""

from ml.domains.base import Domain
from ml.domains.registry import all_domains, configured_domains, get_domain, register_domain

__all__ = ["Domain", "all_domains", "configured_domains", "get_domain", "register_domain"]
