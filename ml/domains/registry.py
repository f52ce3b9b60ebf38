"""The domain registry: name -> Domain instance. The two shipped domains register on import."""

from __future__ import annotations

from ml.domains.base import Domain

__all__ = ["register_domain", "get_domain", "all_domains"]

_DOMAINS: dict[str, Domain] = {}


def register_domain(domain: Domain) -> Domain:
    """Add a domain; its name must be unique."""
    if domain.name in _DOMAINS and type(_DOMAINS[domain.name]) is not type(domain):
        raise ValueError(f"domain {domain.name!r} is already registered")
    _DOMAINS[domain.name] = domain
    return domain


def _load_builtin() -> None:
    from ml.domains.demand import DemandDomain
    from ml.domains.network import NetworkDomain

    for domain in (DemandDomain(), NetworkDomain()):
        _DOMAINS.setdefault(domain.name, domain)


def get_domain(name: str) -> Domain:
    """The registered domain called ``name`` (KeyError with the known names otherwise)."""
    _load_builtin()
    try:
        return _DOMAINS[name]
    except KeyError:
        raise KeyError(f"unknown domain {name!r}; known: {sorted(_DOMAINS)}") from None


def all_domains() -> list[Domain]:
    """Every registered domain, built-ins first."""
    _load_builtin()
    return list(_DOMAINS.values())
