"""The model registry's aggregate: versions (with their artifacts) and activations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select

from ml.registry import entities as e
from ml.registry.db import Database, where_given
from ml.registry.models import Activation, ModelVersion, utcnow

__all__ = ["ModelStore"]


def _version_query(query: Select[Any], domain: str, scope: str, version: str) -> Select[Any]:
    return query.where(
        ModelVersion.domain == domain,
        ModelVersion.scope == scope,
        ModelVersion.version == version,
    )


def _versions(
    query: Select[Any], domain: str | None, scope: str | None, status: str | None
) -> Select[Any]:
    return where_given(query, ModelVersion, domain=domain, scope=scope, status=status)


def _live_query(domain: str, scope: str, at: datetime | None = None) -> Select[Any]:
    """The version of the latest activation of a scope (at or before ``at``)."""
    query = select(Activation.version).where(Activation.domain == domain, Activation.scope == scope)
    if at is not None:
        query = query.where(Activation.activated_at <= at)
    return query.order_by(Activation.activated_at.desc(), Activation.id.desc()).limit(1)


class ModelStore:
    """Model versions, their artifacts and the audit of activations."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- versions ----------------------------------------------------------------------------
    def add_version(self, **fields: Any) -> e.ModelVersionRow:
        fields.setdefault("trained_at", utcnow())
        fields.setdefault("status", "candidate")
        with self._db.session.begin() as session:
            row = ModelVersion(**fields)
            session.add(row)
            session.flush()
            return row.to_entity()

    def get_version(self, domain: str, scope: str, version: str) -> e.ModelVersionRow | None:
        with self._db.session() as session:
            query = _version_query(select(ModelVersion), domain, scope, version)
            row = session.scalars(query).one_or_none()
            return row.to_entity() if row else None

    def get_artifact(self, domain: str, scope: str, version: str) -> bytes | None:
        with self._db.session() as session:
            query = _version_query(select(ModelVersion.artifact), domain, scope, version)
            return session.scalars(query).one_or_none()

    def list_versions(
        self,
        domain: str | None = None,
        scope: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[e.ModelVersionRow]:
        query = _versions(select(ModelVersion), domain, scope, status)
        query = query.order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
        with self._db.session() as session:
            return [r.to_entity() for r in session.scalars(query.limit(limit).offset(offset))]

    def count_versions(
        self, domain: str | None = None, scope: str | None = None, status: str | None = None
    ) -> int:
        query = _versions(select(func.count(ModelVersion.id)), domain, scope, status)
        with self._db.session() as session:
            return int(session.execute(query).scalar_one())

    def live_trained_at(self) -> dict[tuple[str, str], datetime]:
        """When each scope's active version was trained, by (domain, scope); artifacts are not
        read."""
        query = select(ModelVersion.domain, ModelVersion.scope, ModelVersion.trained_at).where(
            ModelVersion.status == "active"
        )
        with self._db.session() as session:
            return {(d, s): at for d, s, at in session.execute(query)}

    # --- activations -------------------------------------------------------------------------
    def live_activation(self, domain: str, scope: str = "global") -> e.ActivationRow | None:
        """The latest activation of a scope (which version is live, since when)."""
        query = (
            select(Activation)
            .where(Activation.domain == domain, Activation.scope == scope)
            .order_by(Activation.activated_at.desc(), Activation.id.desc())
            .limit(1)
        )
        with self._db.session() as session:
            row = session.scalars(query).first()
            return row.to_entity() if row else None

    def active_version(self, domain: str, scope: str = "global") -> str | None:
        with self._db.session() as session:
            return session.scalars(_live_query(domain, scope)).first()

    def live_at(self, domain: str, scope: str, at: datetime) -> str | None:
        """The version that was live at instant ``at`` (None before the first activation)."""
        with self._db.session() as session:
            return session.scalars(_live_query(domain, scope, at)).first()

    def record_activation(
        self,
        domain: str,
        scope: str,
        version: str,
        reason: str,
        actor: str = "system",
        command_id: str | None = None,
        at: datetime | None = None,
    ) -> e.ActivationRow:
        """Make ``version`` the live one; the previous one is retired; all in one transaction."""
        at = at or utcnow()
        with self._db.session.begin() as session:
            query = _version_query(select(ModelVersion), domain, scope, version)
            target = session.scalars(query.with_for_update()).one_or_none()
            if target is None:
                raise KeyError(f"unknown version {version!r} for {domain}/{scope}")
            previous = session.scalars(_live_query(domain, scope)).first()
            for row in session.scalars(_versions(select(ModelVersion), domain, scope, "active")):
                row.status = "retired"
            target.status = "active"
            activation = Activation(
                domain=domain,
                scope=scope,
                version=version,
                previous_version=previous,
                activated_at=at,
                reason=reason,
                actor=actor,
                command_id=command_id,
            )
            session.add(activation)
            session.flush()
            return activation.to_entity()

    def activations(self, domain: str, scope: str = "global") -> list[e.ActivationRow]:
        query = (
            select(Activation)
            .where(Activation.domain == domain, Activation.scope == scope)
            .order_by(Activation.activated_at, Activation.id)
        )
        with self._db.session() as session:
            return [r.to_entity() for r in session.scalars(query)]
