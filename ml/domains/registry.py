"""The domain registry: name -> Domain instance. The two shipped domains register on import;
others through :func:`register_domain` or :func:`load_domains` (the ``EXTRA_DOMAINS`` setting:
comma-separated ``module:Class``, registered by every process that loads its settings)."""

from __future__ import annotations

import importlib

from ml.domains.base import Domain

__all__ = ["register_domain", "get_domain", "all_domains", "configured_domains", "load_domains"]

_DOMAINS: dict[str, Domain] = {}


def register_domain(domain: Domain) -> Domain:
    """Add a domain; its name must be unique."""
    if domain.name in _DOMAINS and type(_DOMAINS[domain.name]) is not type(domain):
        raise ValueError(f"domain {domain.name!r} is already registered")
    _DOMAINS[domain.name] = domain
    return domain


def load_domains(spec: str) -> list[Domain]:
    """Import and register the domains named by ``spec`` (comma-separated ``module:Class``,
    each class built without arguments); raises ``ValueError`` naming a bad entry."""
    loaded = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        module_name, sep, class_name = entry.partition(":")
        if not sep or not module_name or not class_name:
            raise ValueError(f"expected module:Class, got {entry!r}")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load {entry!r}: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, Domain)):
            raise ValueError(f"{entry!r} is not a Domain subclass")
        _load_builtin()
        loaded.append(register_domain(cls()))
    return loaded


_BUILTIN_LOADED = False


def _load_builtin() -> None:
    """Register the shipped domains, once (the API asks the registry on every request)."""
    global _BUILTIN_LOADED
    if _BUILTIN_LOADED:
        return
    from ml.demand.domain import DemandDomain
    from ml.network.domain import NetworkDomain

    for domain in (DemandDomain(), NetworkDomain()):
        _DOMAINS.setdefault(domain.name, domain)
    _BUILTIN_LOADED = True


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


def configured_domains(settings: object) -> dict[str, Domain]:
    """Every registered domain as the process ``settings`` configure it
    (:meth:`Domain.configure`), by name: what the stream and the trainer run."""
    return {domain.name: domain.configure(settings) for domain in all_domains()}
